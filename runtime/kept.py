"""A small least-recently-used store for things that are costly to make and kept between calls (a reference
image's prefix cache, the app's checker variants), without a fixed function to memoize as lru_cache needs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

V = TypeVar("V")


def kept(store: OrderedDict, key: Hashable, make: Callable[[], V], limit: int) -> V:
    """store[key], made by make() when missing; the least recently used entry goes beyond `limit`."""
    if key not in store:
        store[key] = make()
        if len(store) > limit:
            store.popitem(last=False)
    store.move_to_end(key)
    return store[key]
