"""Per-voice prompt cache and a GPU-memory-bounded model LRU.

A voice costs a HuBERT pass (prompt tokens), a BERT pass (prompt text) and a reference
embedding (`ge`) to prepare; `VoiceCache` keeps those tensors so that a repeated voice costs
nothing. (Its KV prefix cannot be reused: the official layout puts the target text between the
prompt text and the prompt tokens, and text attends to all text.) `ModelLRU` keeps loaded
model pairs and evicts the least recently used when a new one would not fit the budget.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch
from torch import Tensor, nn

T = TypeVar("T")


@dataclass(frozen=True)
class PreparedVoice:
    """Everything per voice that decoding needs besides the target text.

    Attributes:
        prompt_semantic: (Ty,) int64 semantic ids of the reference audio.
        prompt_phones: (Tp,) int64 phoneme ids of the reference text.
        prompt_bert: (1024, Tp) BERT features of the reference text.
        ge: (1, gin, 1) SoVITS style vector (mean over the references).
    """

    prompt_semantic: Tensor
    prompt_phones: Tensor
    prompt_bert: Tensor
    ge: Tensor

    def to(self, device: torch.device | str) -> PreparedVoice:
        """The same voice with every tensor on `device`."""
        return PreparedVoice(
            prompt_semantic=self.prompt_semantic.to(device),
            prompt_phones=self.prompt_phones.to(device),
            prompt_bert=self.prompt_bert.to(device),
            ge=self.ge.to(device),
        )

    @property
    def nbytes(self) -> int:
        return sum(
            t.numel() * t.element_size()
            for t in (self.prompt_semantic, self.prompt_phones, self.prompt_bert, self.ge)
        )


class VoiceCache:
    """LRU of `PreparedVoice` bounded by entry count and bytes."""

    def __init__(self, max_entries: int = 1024, max_bytes: int = 1 << 30) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError(
                f"max_entries and max_bytes must be >= 1, got {max_entries}, {max_bytes}"
            )
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[Hashable, PreparedVoice] = OrderedDict()
        self.hits = self.misses = 0

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable, prepare: Callable[[], PreparedVoice]) -> PreparedVoice:
        """The cached voice, or `prepare()`'s, stored (evicting the least recently used)."""
        if key in self._entries:
            self.hits += 1
            self._entries.move_to_end(key)
            return self._entries[key]
        self.misses += 1
        voice = prepare()
        if voice.nbytes > self.max_bytes:
            raise ValueError(f"voice {key!r} needs {voice.nbytes} bytes > cache {self.max_bytes}")
        self._entries[key] = voice
        while len(self._entries) > self.max_entries or self.nbytes > self.max_bytes:
            self._entries.popitem(last=False)
        return voice


def module_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def gpu_budget(fraction: float, device: torch.device | str = "cuda") -> int:
    """`fraction` of the device's total memory, in bytes (for `ModelLRU`)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    _, total = torch.cuda.mem_get_info(torch.device(device))
    return int(total * fraction)


class ModelLRU(Generic[T]):
    """Loaded models keyed by checkpoint, evicted least-recently-used past `budget_bytes`.

    Args:
        budget_bytes: what all loaded models may hold (e.g. `gpu_budget(0.5)`).
        size_of: bytes a loaded model holds (e.g. `module_bytes` of its networks plus its
            scheduler's KV pool).
        on_evict: called with each evicted model (stop its scheduler, drop references).
    """

    def __init__(
        self,
        budget_bytes: int,
        size_of: Callable[[T], int],
        on_evict: Callable[[Hashable, T], None] | None = None,
    ) -> None:
        if budget_bytes < 1:
            raise ValueError(f"budget_bytes must be >= 1, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self._size_of, self._on_evict = size_of, on_evict
        self._models: OrderedDict[Hashable, tuple[T, int]] = OrderedDict()

    @property
    def used_bytes(self) -> int:
        return sum(size for _, size in self._models.values())

    def keys(self) -> list[Hashable]:
        """Least recently used first."""
        return list(self._models)

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key][0]
        model = load()
        size = self._size_of(model)
        if size > self.budget_bytes:
            raise MemoryError(f"model {key!r} needs {size} bytes > budget {self.budget_bytes}")
        while self._models and self.used_bytes + size > self.budget_bytes:
            old_key, (old, _) = self._models.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict(old_key, old)
        self._models[key] = (model, size)
        if self._models and torch.cuda.is_available():
            torch.cuda.empty_cache()  # hand evicted weights back before the next load
        return model
