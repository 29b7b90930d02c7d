"""The decode step for wide batches (many rows): attention reads each row's own keys only.

`decode_and_sample` (batch_decode) gives every row the whole span bucket through an additive
mask, so a step reads rows x span keys and values per layer whatever the rows hold. With 128
rows of unequal lengths (and free rows inside the row bucket) that traffic dominates the step.
`decode_and_sample_wide` is the same step with `ragged_attention` (each row reads its first
`slot + 1` slots); `dispatch_step` picks it for row buckets of at least `min_rows` and leaves
narrower buckets to the regular step (whose kernels another part of the project tunes).
"""

from __future__ import annotations

from torch import Tensor

from voiceseal_models.gpt_sovits.serving.batch_decode import (
    SlotPool,
    StepFunction,
    decode_and_sample,
    sample_and_advance,
    step_logits,
)
from voiceseal_models.gpt_sovits.serving.ragged_attention import ragged_attention
from voiceseal_models.gpt_sovits.t2s_network import Text2SemanticDecoder

# From ~64 rows on, an H100 ran the wide step faster than the masked-SDPA step (2.1 against
# 2.3 ms at 64 rows, 2.3-2.6 against 3.2 ms at 128; bench/sovits_lab.py --sections step).
WIDE_MIN_ROWS = 64


def wide_logits(network: Text2SemanticDecoder, pool: SlotPool, rows: int, span: int) -> Tensor:
    """`batch_decode.step_logits` with per-row attention lengths: a row attends to slots
    0..slot (its keys sit from slot 0 of its cache row), capped at `span`."""
    lengths = pool.slot[:rows] + 1
    return step_logits(
        network, pool, rows, span, lambda q, k, v: ragged_attention(q, k, v, lengths)
    )


def decode_and_sample_wide(
    network: Text2SemanticDecoder,
    pool: SlotPool,
    rows: int,
    span: int,
    noise: Tensor | None = None,
) -> Tensor:
    """`decode_and_sample` with per-row attention lengths (same arguments and result); free
    rows inside the bucket read as many slots as their (harmless) state says."""
    return sample_and_advance(network, pool, rows, wide_logits(network, pool, rows, span), noise)


def dispatch_step(
    min_rows: int = WIDE_MIN_ROWS, narrow: StepFunction = decode_and_sample
) -> StepFunction:
    """A step function that runs `decode_and_sample_wide` for row buckets >= `min_rows` and
    `narrow` below."""

    def step(
        network: Text2SemanticDecoder, pool: SlotPool, rows: int, span: int, noise: Tensor | None
    ) -> Tensor:
        if rows >= min_rows:
            return decode_and_sample_wide(network, pool, rows, span, noise)
        return narrow(network, pool, rows, span, noise)

    return step
