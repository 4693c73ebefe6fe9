"""A small least-recently-used store for things that are costly to make and kept between calls (a reference
image's prefix cache, the app's checker variants), without a fixed function to memoize as lru_cache needs;
bounded by count, and by size where its entries are large."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

V = TypeVar("V")


def kept(store: OrderedDict, key: Hashable, make: Callable[[], V], limit: int,
         weigh: Callable[[V], int] | None = None, budget: int = 0) -> V:
    """store[key], made by make() when missing; the least recently used entries go beyond `limit` entries, or,
    with `weigh`, beyond `budget` (bytes, say) in all. The entry just made always stays."""
    if key not in store:
        store[key] = make()
        while len(store) > limit or (weigh is not None and len(store) > 1
                                     and sum(map(weigh, store.values())) > budget):
            store.popitem(last=False)
    store.move_to_end(key)
    return store[key]
