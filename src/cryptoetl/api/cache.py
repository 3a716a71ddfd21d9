"""In-process caches for `/api/v1/data`, keyed by the data version they were computed at.

Every key starts with the `source_stats` versions the value was read under; the route reads
the current versions on each request, so an entry computed before a load is simply never asked
for again (and ages out of the LRU). Replicas each keep their own and all stay exact.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from cryptoetl.api.conditional import PageBody

V = TypeVar("V")


class LruCache(Generic[V]):
    """A least-recently-used map bounded by the total `weigh(value)` of its entries."""

    def __init__(self, budget: int, weigh: Callable[[V], int] = lambda _: 1) -> None:
        self.budget = budget
        self.weigh = weigh
        self.used = 0
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value: V) -> None:
        weight = self.weigh(value)
        if weight > self.budget:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.used -= old[1]
        self._entries[key] = (value, weight)
        self.used += weight
        while self.used > self.budget:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.used -= dropped


class DataCaches:
    """The caches of the data route: page bodies and exact counts (per data version), and
    validated query strings."""

    COUNT_ENTRIES = 4096
    QUERY_ENTRIES = 4096

    def __init__(self, body_bytes: int) -> None:
        self.bodies: LruCache[PageBody] = LruCache(body_bytes, lambda body: len(body.prefix) + 64)
        self.counts: LruCache[int] = LruCache(self.COUNT_ENTRIES)
        self.queries: LruCache[Any] = LruCache(self.QUERY_ENTRIES)
