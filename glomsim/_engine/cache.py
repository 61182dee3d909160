"""One small bounded cache, shared by the engine's caches (stacked nets, idle plans)."""

from __future__ import annotations

import math
import threading


class BoundedCache:
    """A thread-safe mapping that keeps at most ``max_items`` entries and ``max_bytes``
    in all (each entry's size from ``sizeof``), dropping the oldest first.

    ``lock`` is reentrant, so a caller may hold it across a read and a write that must
    not interleave with another thread's (the plan pool takes one plan from a list).
    """

    def __init__(self, max_items: int, max_bytes: float = math.inf, sizeof=None):
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._sizeof = sizeof or (lambda value: 0)
        self._data: dict = {}
        self.lock = threading.RLock()

    def get(self, key, default=None):
        with self.lock:
            return self._data.get(key, default)

    def put(self, key, value) -> None:
        """Store ``value`` as the newest entry, then drop the oldest while over a bound."""
        with self.lock:
            self._data.pop(key, None)
            self._data[key] = value
            while len(self._data) > self.max_items or (
                self._data and self.nbytes() > self.max_bytes
            ):
                self._data.pop(next(iter(self._data)))

    def pop(self, key, default=None):
        with self.lock:
            return self._data.pop(key, default)

    def nbytes(self) -> int:
        with self.lock:
            return sum(self._sizeof(v) for v in self._data.values())

    def keys(self) -> list:
        with self.lock:
            return list(self._data)

    def clear(self) -> None:
        with self.lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
