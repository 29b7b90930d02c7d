"""Loaded GPT and SoVITS models, shared between voices, least recently used out.

Models are keyed by the SHA-256 of their file, so voices registered with the same files (a
common GPT with several SoVITS fine-tunes, or one pair behind several voices) share one copy.
The pool holds at most ``capacity`` models; an evicted model stays alive for as long as a
running request still holds it, and is simply loaded again by the next request that needs it.

Loading happens outside the pool lock (a full-size SoVITS file takes seconds), with one lock per
key so that concurrent requests for the same file load it once while other files load in
parallel. Loaded models are used concurrently without locks: decoding keeps all its state
(KV cache, noise, sampler) in per-call tensors and never writes to the modules.

``on_evict`` is told about every model the pool lets go (outside the lock), so that what
serves a model (a batching scheduler's thread) winds down with it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class PoolStats:
    loads: int
    hits: int
    evictions: int
    loaded: tuple[str, ...]


class ModelPool(Generic[T]):
    """A thread-safe LRU of loaded models keyed by file checksum."""

    def __init__(self, capacity: int, on_evict: Callable[[T], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._on_evict = on_evict
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._loads = self._hits = self._evictions = 0

    def get(self, key: str, load: Callable[[], T]) -> T:
        """The model for ``key``, calling ``load()`` (once, even under concurrency) on a miss."""
        with self._lock:
            found = self._hit(key)
            if found is not None:
                return found
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                found = self._hit(key)
                if found is not None:
                    return found
            model = load()
            evicted: list[T] = []
            with self._lock:
                self._loads += 1
                self._items[key] = model
                self._items.move_to_end(key)
                while len(self._items) > self.capacity:
                    evicted.append(self._items.popitem(last=False)[1])
                    self._evictions += 1
                self._loading.pop(key, None)
            if self._on_evict is not None:
                for old in evicted:
                    self._on_evict(old)
            return model

    def clear(self) -> list[T]:
        """Let every model go (shutdown) and return them, for the caller to close."""
        with self._lock:
            gone = list(self._items.values())
            self._items.clear()
        return gone

    def _hit(self, key: str) -> T | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            self._hits += 1
        return found

    def stats(self) -> PoolStats:
        with self._lock:
            return PoolStats(self._loads, self._hits, self._evictions, tuple(self._items))
