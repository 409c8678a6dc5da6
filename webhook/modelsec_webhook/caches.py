"""A cache bounded by the bytes it holds, not by its number of entries.

The webhook's caches are keyed by what requests carry, and requests are chosen by whoever
creates workloads: a count bound lets 4,096 entries of 1 MiB each grow the process by
gigabytes. Here every entry is charged an estimate of its size (key and value) and the
oldest entries go first once the budget is reached. Lookups stay one dict access; sizes
are computed only when an entry is stored, by a function that knows the entry's shape
(:func:`deep_size` is the generic, slower fallback).
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

ENTRY_OVERHEAD = 200  # the dict slot, the tuple of (value, size), small objects around it


def deep_size(value: Any, _depth: int = 0) -> int:
    """An estimate of the memory ``value`` holds: strings, bytes and the containers and
    dataclasses around them, recursively (bounded depth; shared objects counted again,
    which only overestimates)."""
    if isinstance(value, (str, bytes)):
        return sys.getsizeof(value)
    if _depth > 8:
        return 64
    if isinstance(value, (tuple, list, frozenset, set)):
        return sys.getsizeof(value) + sum(deep_size(v, _depth + 1) for v in value)
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(deep_size(k, _depth + 1) + deep_size(v, _depth + 1)
                                          for k, v in value.items())
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return 64 + sum(deep_size(getattr(value, name), _depth + 1) for name in fields)
    slots = getattr(value, "__dict__", None)
    if slots is not None:
        return 64 + deep_size(slots, _depth + 1)
    return sys.getsizeof(value)


class BoundedCache(Generic[K, V]):
    """``get``/``put`` with a byte budget; first in, first out."""

    def __init__(self, max_bytes: int, size_of: Callable[[K, V], int] | None = None) -> None:
        self.max_bytes = max_bytes
        self.size_of = size_of or (lambda key, value: deep_size(key) + deep_size(value))
        self.entries: dict[K, tuple[V, int]] = {}
        self.bytes = 0

    def get(self, key: K) -> V | None:
        found = self.entries.get(key)
        return None if found is None else found[0]

    def put(self, key: K, value: V) -> None:
        size = self.size_of(key, value) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return  # larger than the whole budget: not worth keeping
        previous = self.entries.pop(key, None)
        if previous is not None:
            self.bytes -= previous[1]
        while self.entries and self.bytes + size > self.max_bytes:
            oldest = next(iter(self.entries))
            self.bytes -= self.entries.pop(oldest)[1]
        self.entries[key] = (value, size)
        self.bytes += size

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.entries)
