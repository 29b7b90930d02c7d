"""Next-token sampling with the official GPT-SoVITS order of operations.

Order (GPT-SOVITS.md §2.4 and the fixture README "Official decoding behaviour"):

1. repetition penalty on every id already in the sequence (prompt included; each id once,
   however often it occurs): negative logits x penalty, positive / penalty. This writes into
   the caller's logits, and the official decoder then tests those *penalised* logits for EOS,
   so we keep the in-place write.
2. top-p (skipped for top_p >= 1), keeping at least the best token;
3. temperature (floored at 1e-5);
4. top-k;
5. softmax, then an "exponential race": argmax(probs / Exp(1) noise), which draws exactly
   like sampling from `probs` and consumes the random stream the same way the official code
   does (one Exp(1) per logit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

MIN_TEMPERATURE = 1e-5


@dataclass(frozen=True)
class SamplingParams:
    """User-facing sampling knobs; defaults are those of the official `TTS.run`."""

    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if not self.top_p > 0.0:
            raise ValueError(f"top_p must be > 0, got {self.top_p}")
        if self.temperature <= 0.0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.repetition_penalty <= 0.0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")


def apply_repetition_penalty_(logits: Tensor, previous: Tensor, penalty: float) -> None:
    """In place: logits (B, V) penalised at the ids in previous (B, L)."""
    if penalty == 1.0 or previous.shape[1] == 0:
        return
    index = previous.long()
    score = logits.gather(1, index)
    score = torch.where(score < 0, score * penalty, score / penalty)
    logits.scatter_(1, index, score)


def probabilities(logits: Tensor, previous: Tensor, params: SamplingParams) -> Tensor:
    """Logits (B, V) -> probabilities (B, V). Penalises `logits` in place (see module doc)."""
    apply_repetition_penalty_(logits, previous, params.repetition_penalty)
    scores = logits
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        cumulative = torch.cumsum(torch.softmax(sorted_scores, dim=-1), dim=-1)
        drop_sorted = cumulative > params.top_p
        drop_sorted[:, 0] = False
        drop = drop_sorted.scatter(1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    scores = scores / max(params.temperature, MIN_TEMPERATURE)
    k = min(params.top_k, scores.shape[-1])
    pivot = torch.topk(scores, k).values[:, -1:]
    scores = torch.where(scores < pivot, float("-inf"), scores)
    return torch.softmax(scores, dim=-1)


def draw(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Sample one id per row of probs (B, V) -> (B,) int64 via the exponential race."""
    noise = torch.empty_like(probs).exponential_(1.0, generator=generator)
    return torch.argmax(probs / noise, dim=-1)


def sample_next(
    logits: Tensor,
    previous: Tensor,
    params: SamplingParams,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One decoding draw: logits (B, V) (penalised in place), previous ids (B, L) -> (B,)."""
    return draw(probabilities(logits, previous, params), generator)
