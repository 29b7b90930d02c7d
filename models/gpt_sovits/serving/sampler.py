"""Batched next-token sampling with per-row parameters, in fixed shapes (CUDA-graph safe).

Every row of a continuous batch belongs to a different request, so every knob is a tensor
with one entry per row. The arithmetic follows `voiceseal_models.gpt_sovits.sampling` (the
official order: repetition penalty, top-p, temperature, top-k, softmax, exponential race), with
three differences that keep the shapes fixed:

* the repetition penalty reads a (B, V) "seen" mask instead of the id history (each id is
  penalised once however often it occurs, so the two are the same);
* "EOS may not win yet" masks the EOS logit with -inf instead of dropping the column (it then
  has probability 0 and can be neither the argmax nor the draw);
* top-k takes its pivot from the sorted scores that top-p already needs (one sort per step).

Noise for the exponential race comes either from the caller (per-row `torch.Generator`s,
which reproduces `Text2Semantic.generate` draw for draw) or from `counter_noise`, a
counter-based hash of (seed, step, id) that needs no generator state and can live inside a
captured graph: a request then draws the same tokens whatever batch it shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

MIN_TEMPERATURE = 1e-5
# The official decoder never lets EOS win during its first 11 steps (>= 0.4 s of audio).
MIN_STEPS_BEFORE_EOS = 11
_MASK32 = 0xFFFFFFFF
# Multipliers below 2**31 keep every product of a 32-bit value below 2**63 (no int64 overflow).
_HASH_MUL = 0x45D9F3B
_SEED_MUL = 0x2C1B3C6D
_ID_MUL = 0x297A2D39


@dataclass
class RowSampling:
    """Per-row sampling state (B rows), updated in place by `sample_rows`.

    Attributes:
        top_k: (B,) int64, >= 1.
        top_p: (B,) float32; >= 1 disables top-p for the row.
        temperature: (B,) float32 (floored at 1e-5).
        penalty: (B,) float32 repetition penalty (1 disables).
        seen: (B, V) bool, ids already in the row's sequence (prompt included).
        ignore_eos: (B,) bool, True to never produce EOS (forced lengths, for benchmarks).
        seed: (B,) int64 in [0, 2**32): counter-noise key.
        step: (B,) int64: counter-noise counter (the request's decoding step).
    """

    top_k: Tensor
    top_p: Tensor
    temperature: Tensor
    penalty: Tensor
    seen: Tensor
    ignore_eos: Tensor
    seed: Tensor
    step: Tensor

    @classmethod
    def empty(cls, rows: int, vocab: int, device: torch.device) -> RowSampling:
        return cls(
            top_k=torch.ones(rows, dtype=torch.int64, device=device),
            top_p=torch.ones(rows, dtype=torch.float32, device=device),
            temperature=torch.ones(rows, dtype=torch.float32, device=device),
            penalty=torch.ones(rows, dtype=torch.float32, device=device),
            seen=torch.zeros(rows, vocab, dtype=torch.bool, device=device),
            ignore_eos=torch.zeros(rows, dtype=torch.bool, device=device),
            seed=torch.zeros(rows, dtype=torch.int64, device=device),
            step=torch.zeros(rows, dtype=torch.int64, device=device),
        )

    def head(self, rows: int) -> RowSampling:
        """Views of the first `rows` rows (a batch bucket)."""
        return RowSampling(
            self.top_k[:rows],
            self.top_p[:rows],
            self.temperature[:rows],
            self.penalty[:rows],
            self.seen[:rows],
            self.ignore_eos[:rows],
            self.seed[:rows],
            self.step[:rows],
        )


def _hash32(x: Tensor) -> Tensor:
    """A 32-bit integer mixer (xorshift-multiply) on int64 tensors holding values < 2**32."""
    x = ((x ^ (x >> 16)) * _HASH_MUL) & _MASK32
    x = ((x ^ (x >> 16)) * _HASH_MUL) & _MASK32
    return x ^ (x >> 16)


def counter_noise(seed: Tensor, step: Tensor, vocab: int) -> Tensor:
    """Exp(1) noise (B, vocab) float32 that depends only on (seed, step, id) per row.

    24 bits of each hash give a uniform u in (0, 1) that float32 holds exactly; -log(u) is the
    exponential draw. Pure tensor arithmetic: no generator state, capturable in a CUDA graph.
    """
    key = _hash32(((seed & _MASK32) * _SEED_MUL + (step & _MASK32)) & _MASK32)
    ids = torch.arange(vocab, device=seed.device, dtype=torch.int64)
    bits = _hash32(key[:, None] ^ ((ids[None, :] * _ID_MUL) & _MASK32))
    uniform = ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))
    return -torch.log(uniform)


def sample_rows(
    logits: Tensor, state: RowSampling, eos: int, noise: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Draw one token per row.

    Args:
        logits: (B, V) raw logits (any float dtype; sampling runs in float32).
        state: the rows' parameters; `seen` and `step` are advanced in place.
        eos: the EOS id (V - 1).
        noise: (B, V) Exp(1) draws, or None for `counter_noise(state.seed, state.step)`.
    Returns:
        tokens (B,) int64 and eos (B,) bool: the official stop test, "the argmax of the
        penalised logits or the draw is EOS" (always False during the first 11 steps and with `ignore_eos`).
    """
    scores = logits.float()
    b, vocab = scores.shape
    penalty = state.penalty[:, None]
    penalised = torch.where(scores < 0, scores * penalty, scores / penalty)
    scores = torch.where(state.seen, penalised, scores)
    no_eos = state.ignore_eos | (state.step < MIN_STEPS_BEFORE_EOS)
    eos_column = torch.arange(vocab, device=scores.device) == eos
    scores = scores.masked_fill(eos_column[None, :] & no_eos[:, None], float("-inf"))
    argmax_eos = scores.argmax(dim=-1) == eos

    sorted_scores, order = torch.sort(scores, dim=-1, descending=True)
    cumulative = torch.cumsum(torch.softmax(sorted_scores, dim=-1), dim=-1)
    # top_p >= 1 skips the filter, as the official code does: the cumulative sum can round
    # above 1 and would otherwise drop tail ids.
    drop_sorted = (cumulative > state.top_p[:, None]) & (state.top_p[:, None] < 1.0)
    drop_sorted[:, 0] = False
    drop = drop_sorted.scatter(1, order, drop_sorted)
    temperature = state.temperature.clamp(min=MIN_TEMPERATURE)[:, None]
    scores = scores.masked_fill(drop, float("-inf")) / temperature
    # The k-th best score: the same values topk would return, read from the sorted scores.
    sorted_kept = sorted_scores.masked_fill(drop_sorted, float("-inf")) / temperature
    usable = vocab - no_eos.long()  # the official decoder drops the EOS column early on
    k = torch.minimum(state.top_k, usable).clamp(min=1)
    pivot = sorted_kept.gather(1, (k - 1)[:, None])
    scores = torch.where(scores < pivot, float("-inf"), scores)
    probs = torch.softmax(scores, dim=-1)

    if noise is None:
        noise = counter_noise(state.seed, state.step, vocab)
    tokens = torch.argmax(probs / noise, dim=-1)
    hit_eos = (argmax_eos | (tokens == eos)) & ~no_eos
    state.seen.scatter_(
        1, tokens[:, None], torch.ones(b, 1, dtype=torch.bool, device=tokens.device)
    )
    state.step.add_(1)
    return tokens, hit_eos
