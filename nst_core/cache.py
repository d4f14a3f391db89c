"""LoadOnce: a thread-safe LRU whose values are loaded once, outside its lock, bounded in entries or bytes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

V = TypeVar("V")


class LoadOnce(Generic[V]):
    """key -> value, each loaded once by the first caller; others asking for the same key wait for that load,
    others asking for other keys do not.  Bounded by ``max_entries`` and/or ``max_bytes`` (with ``size``),
    dropping the least recently used; a failed load is not kept, so the next caller tries again.  A value
    larger than ``max_bytes`` on its own is returned but not kept."""

    def __init__(self, max_entries: int | None = None, max_bytes: int | None = None,
                 size: Callable[[V], int] = lambda v: 0):
        self.max_entries, self.max_bytes, self.size = max_entries, max_bytes, size
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, Future] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self._total = 0
        self.loads = 0
        self.hits = 0

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._total

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def keys(self) -> list[Hashable]:
        """The kept keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        with self._lock:
            future = self._items.get(key)
            owner = future is None
            if owner:
                future = self._items[key] = Future()
            else:
                self._items.move_to_end(key)
                self.hits += 1
        if not owner:
            return future.result()
        try:
            value = load()
        except BaseException as e:
            with self._lock:
                self._items.pop(key, None)
            future.set_exception(e)
            raise
        future.set_result(value)
        nbytes = self.size(value)
        with self._lock:
            self.loads += 1
            if key in self._items:
                if self.max_bytes is not None and nbytes > self.max_bytes:
                    del self._items[key]  # would evict everything else and still not fit
                else:
                    self._sizes[key] = nbytes
                    self._total += nbytes
                    self._evict(keep=key)
        return value

    def _evict(self, keep: Hashable) -> None:
        def over() -> bool:
            return ((self.max_entries is not None and len(self._items) > self.max_entries)
                    or (self.max_bytes is not None and self._total > self.max_bytes))
        for key in list(self._items):
            if not over():
                break
            if key != keep and self._items[key].done():
                del self._items[key]
                self._total -= self._sizes.pop(key, 0)
