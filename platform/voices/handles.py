"""Prepared voices per process (a cache, never a source of truth)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from voiceseal.contracts import VoiceHandle


class HandleCache:
    """Prepared voices per process, keyed by the voice's stored state, least recently used out.

    A cache, never a source of truth: a miss rebuilds from the registry, so many processes can run.
    """

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str], VoiceHandle] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> VoiceHandle | None:
        with self._lock:
            h = self._items.get(key)
            if h is not None:
                self._items.move_to_end(key)
            return h

    def put(self, key: tuple[str, str], handle: VoiceHandle) -> None:
        with self._lock:
            self._items[key] = handle
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
