"""One decode step for a continuous batch: every row its own request, position and cache slot.

`Text2SemanticDecoder.decode_step` shares one text length and one position across the batch
(the official batch decoder left-pads texts and needs equal prompts). A continuous batch
mixes requests that joined at different steps with different texts and prompts, so here
every row keeps its own layout `[text ; prompt ; generated]` from slot 0 of its own cache row
and its own position. `decode_and_sample` runs the network on the first `rows` rows over the
first `span` slots and samples the next tokens, with fixed shapes only and no host
synchronisation, so that one (rows, span) bucket can be captured in a CUDA graph and replayed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from voiceseal_models.gpt_sovits.graph_capture import CAPTURE_LOCK
from voiceseal_models.gpt_sovits.serving.sampler import RowSampling, sample_rows
from voiceseal_models.gpt_sovits.t2s_network import Text2SemanticDecoder

_log = logging.getLogger(__name__)


@dataclass
class SlotPool:
    """Device state of all decode rows (R rows, C slots each), preallocated once.

    Attributes:
        kv: (L, 2, R, H, C, D/H) keys ([:, 0]) and values ([:, 1]); a row's slot s holds
            sequence position s.
        tokens: (R,) int64, the token each row feeds next.
        pos: (R,) int64, its audio position (prompt length + index of the generated token).
        slot: (R,) int64, the cache slot its keys/values go to (text length + `pos`).
        fresh: (R,) bool, True for a row admitted this step: its logits come from the prompt
            pass (`fresh_logits`), and its position does not advance.
        fresh_logits: (R, V) float32.
        sampling: per-row sampling parameters and state.
        out: (R, 2) int64, per step: the sampled token and the EOS flag (one host copy).
    """

    kv: Tensor
    tokens: Tensor
    pos: Tensor
    slot: Tensor
    fresh: Tensor
    fresh_logits: Tensor
    sampling: RowSampling
    out: Tensor
    row_index: Tensor
    key_index: Tensor

    @classmethod
    def allocate(
        cls, network: Text2SemanticDecoder, rows: int, capacity: int, *, device: torch.device,
        dtype: torch.dtype,
    ) -> SlotPool:  # fmt: skip
        c = network.config
        shape = (c.n_layer, 2, rows, c.n_head, capacity, c.head_dim)

        def ints() -> Tensor:
            return torch.zeros(rows, dtype=torch.int64, device=device)

        return cls(
            kv=torch.zeros(shape, device=device, dtype=dtype),
            tokens=ints(),
            pos=ints(),
            slot=ints(),
            fresh=torch.zeros(rows, dtype=torch.bool, device=device),
            fresh_logits=torch.zeros(rows, c.vocab_size, dtype=torch.float32, device=device),
            sampling=RowSampling.empty(rows, c.vocab_size, device),
            out=torch.zeros(rows, 2, dtype=torch.int64, device=device),
            row_index=torch.arange(rows, device=device),
            key_index=torch.arange(capacity, device=device),
        )

    @property
    def rows(self) -> int:
        return self.kv.shape[2]

    @property
    def capacity(self) -> int:
        return self.kv.shape[4]

    @property
    def device(self) -> torch.device:
        return self.kv.device

    @property
    def nbytes(self) -> int:
        return self.kv.numel() * self.kv.element_size()


#: Attention of one query per row: q (rows, H, D/H), keys and values (rows, H, span, D/H) ->
#: (rows, H, D/H).
Attention = Callable[[Tensor, Tensor, Tensor], Tensor]


def step_logits(
    network: Text2SemanticDecoder,
    pool: SlotPool,
    rows: int,
    span: int,
    attend: Attention | None = None,
) -> Tensor:
    """The network part of `decode_and_sample` in plain PyTorch: feeds `pool.tokens` of rows
    0..rows-1 at their own `pos`/`slot`, writes their keys/values into the pool and returns the
    next-token logits (rows, V) float32. Each row attends to its slots 0..slot (all within the
    first `span`): by default through SDPA with a mask over the span, or through `attend`
    (which must honour each row's own length)."""
    c = network.config
    tokens, pos, slot = pool.tokens[:rows], pool.pos[:rows], pool.slot[:rows]
    position = network.ar_audio_position
    emb = network.ar_audio_embedding(tokens)
    x = (emb + position.alpha * position.pe.index_select(0, pos).to(emb.dtype))[:, None]
    if attend is None:
        # An additive mask in the model's dtype, built once per step (a boolean one would be
        # converted inside every layer's attention call).
        allowed = pool.key_index[None, :span] <= slot[:, None]
        bias = torch.zeros(rows, 1, 1, span, dtype=x.dtype, device=x.device)
        bias.masked_fill_(~allowed[:, None, None, :], float("-inf"))

        def attend(q: Tensor, keys: Tensor, values: Tensor) -> Tensor:
            return F.scaled_dot_product_attention(q[:, :, None], keys, values, attn_mask=bias)[
                :, :, 0
            ]

    row_index = pool.row_index[:rows]
    for i, layer in enumerate(network.h.blocks):
        attention = layer.self_attn
        fused = F.linear(x[:, 0], attention.in_proj_weight, attention.in_proj_bias)
        qkv = fused.view(rows, 3, c.n_head, c.head_dim)
        # (2, R, H, C, D/H) seen as (R, C, 2, H, D/H): one (row, slot) pair addresses the key
        # and value of every head, so a single indexed write stores both.
        pool.kv[i].permute(1, 3, 0, 2, 4).index_put_((row_index, slot), qkv[:, 1:])
        keys, values = pool.kv[i, 0, :rows, :, :span], pool.kv[i, 1, :rows, :, :span]
        x = layer.finish(x, attend(qkv[:, 0], keys, values)[:, :, None])
    return network.ar_predict_layer(x[:, 0]).float()


def sample_and_advance(
    network: Text2SemanticDecoder, pool: SlotPool, rows: int, logits: Tensor, noise: Tensor | None
) -> Tensor:
    """The sampling part of `decode_and_sample`: fresh rows take their prompt logits, every row
    samples with its own parameters, positions/slots/tokens advance. Returns `pool.out[:rows]`."""
    c = network.config
    tokens, pos, slot = pool.tokens[:rows], pool.pos[:rows], pool.slot[:rows]
    fresh = pool.fresh[:rows]
    logits = torch.where(fresh[:, None], pool.fresh_logits[:rows], logits)
    sampled, hit_eos = sample_rows(logits, pool.sampling.head(rows), c.eos, noise)
    advance = (~fresh).long()
    # Free rows keep advancing too; clamping keeps their (ignored) writes inside the cache.
    pos.add_(advance).clamp_(max=network.ar_audio_position.pe.shape[0] - 1)
    slot.add_(advance).clamp_(max=pool.capacity - 1)
    fresh.fill_(False)
    tokens.copy_(sampled)
    out = pool.out[:rows]
    out[:, 0] = sampled
    out[:, 1] = hit_eos.long()
    return out


def decode_and_sample(
    network: Text2SemanticDecoder,
    pool: SlotPool,
    rows: int,
    span: int,
    noise: Tensor | None = None,
) -> Tensor:
    """Advance rows 0..rows-1 by one token.

    Each row feeds `pool.tokens` at its own `pos`/`slot`, attends to its slots 0..slot (all
    within the first `span`), and samples with its own parameters; fresh rows use their prompt
    logits instead. Free rows inside the bucket compute harmless values that nobody reads.

    Args:
        network: the decoder (eval mode, same device and dtype as the pool).
        pool: device state, updated in place (cache slots, tokens, positions, sampling).
        rows: batch bucket (rows 0..rows-1 run).
        span: length bucket (slots 0..span-1 are read); must exceed every active row's slot.
        noise: (rows, V) Exp(1) draws, or None for the counter-based noise.
    Returns:
        `pool.out[:rows]`: (rows, 2) int64, the sampled token and the EOS flag per row.
    """
    return sample_and_advance(network, pool, rows, step_logits(network, pool, rows, span), noise)


StepFunction = Callable[[Text2SemanticDecoder, SlotPool, int, int, Tensor | None], Tensor]


def compiled_step() -> StepFunction:
    """`decode_and_sample` through `torch.compile` (Inductor fuses the residual adds, layer
    norms, activations and sampling arithmetic into fewer kernels). Rows and span are
    compiled as dynamic sizes, so the buckets share one compilation (plus one for a single
    row, which the compiler specialises).

    Off by default because it did not pay on an H100 (bench/gpu.py --only compile, fp16,
    batch 1): 308 kernels per step instead of 377, but 1.22 ms of GPU time instead of 1.06,
    761 instead of 853 tokens/s, and 99 s of compilation at warm-up."""
    step: StepFunction = torch.compile(decode_and_sample, dynamic=True)
    return step


def fused_step(network: Text2SemanticDecoder, max_rows: int | None = None) -> StepFunction:
    """`decode_and_sample` in Triton kernels (`triton_step`): for buckets of up to `max_rows`
    rows (default `triton_step.TUNING.network_rows`, where they beat cuBLAS on an H100) the
    network runs in ~5 launches per layer instead of ~15, the residual adds and LayerNorms
    fused into the matmuls; wider buckets run the eager network. The sampling and position
    updates are one launch instead of ~100 at every width. Imports Triton (ImportError where
    it is missing)."""
    from voiceseal_models.gpt_sovits.serving import triton_step

    plan = triton_step.FusedStep(network)
    limit = triton_step.TUNING.network_rows if max_rows is None else max_rows

    def step(
        net: Text2SemanticDecoder, pool: SlotPool, rows: int, span: int, noise: Tensor | None
    ) -> Tensor:
        if net is not network:
            raise ValueError("this fused step was built for another network")
        if rows <= limit:
            logits = plan.logits(pool, rows, span)
            return triton_step.sample_and_advance(net, pool, rows, logits, noise, plan.pdl)
        logits = step_logits(net, pool, rows, span)
        return triton_step.sample_and_advance(net, pool, rows, logits, noise)

    return step


def select_step(
    network: Text2SemanticDecoder,
    device: torch.device,
    *,
    compile_step: bool = False,
    fused: bool | None = None,
    fused_max_rows: int | None = None,
    check_capacity: int = 96,
) -> StepFunction:
    """The step a scheduler runs: the fused Triton step (`fused=True` requires it; None takes it
    on CUDA when Triton imports and its self-check on this network passes, unless
    `compile_step` asks for `torch.compile`), else `torch.compile` when asked, else the eager
    `decode_and_sample`. The self-check reads `check_capacity` cache slots (a span bucket of
    the caller's, so that it launches kernel variants the caller compiled already)."""
    if fused is None:
        fused = (
            not compile_step and device.type == "cuda" and fused_available(network, check_capacity)
        )
    if fused:
        if device.type != "cuda":
            raise ValueError(f"the fused step needs a CUDA device, got {device}")
        return fused_step(network, fused_max_rows)
    return compiled_step() if compile_step else decode_and_sample


def fused_available(network: Text2SemanticDecoder, capacity: int = 96) -> bool:
    """Triton imports, the network's shapes are supported and the fused logits match the eager
    ones on random cache contents (`triton_step.self_check`). Logged, never raised."""
    try:
        from voiceseal_models.gpt_sovits.serving.triton_step import self_check
    except ImportError as exc:
        _log.info("fused decode step unavailable (%s); using the eager step", exc)
        return False
    try:
        error = self_check(network, capacity=capacity)
    except (RuntimeError, ValueError) as exc:
        _log.warning("fused decode step failed its self-check (%s); using the eager step", exc)
        return False
    _log.info("fused decode step self-check: relative logit error %.2e", error)
    return True


class StepGraphs:
    """CUDA graphs of `decode_and_sample`, one per (rows, span) bucket, sharing one memory pool.

    Capturing runs the step (warm-up) and so scribbles over the pool: capture every bucket
    before the first request is admitted (`Scheduler.warm_up` does).
    """

    def __init__(
        self, network: Text2SemanticDecoder, pool: SlotPool, step: StepFunction | None = None
    ) -> None:
        if pool.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA pool, got one on {pool.device}")
        self.network = network
        self.pool = pool
        self.step = step or decode_and_sample
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, Tensor]] = {}
        self._memory = torch.cuda.graph_pool_handle()

    def capture(self, rows: int, span: int) -> None:
        device = self.pool.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            self.step(self.network, self.pool, rows, span, None)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with CAPTURE_LOCK, torch.cuda.graph(graph, pool=self._memory):
            out = self.step(self.network, self.pool, rows, span, None)
        self.graphs[(rows, span)] = (graph, out)

    def __contains__(self, bucket: tuple[int, int]) -> bool:
        return bucket in self.graphs

    def replay(self, rows: int, span: int) -> Tensor:
        """Run the captured step; returns `pool.out[:rows]` (see `decode_and_sample`)."""
        graph, out = self.graphs[(rows, span)]
        graph.replay()
        return out
