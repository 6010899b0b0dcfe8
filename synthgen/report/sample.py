"""A bounded, seeded sample of a stream (reservoir sampling, Algorithm L): what the report's example
browser holds, whatever the size of the dataset. The same seed and stream give the same sample;
memory is the bound, never the stream's length, and the random draws grow with the log of the
stream's length (Algorithm L skips ahead), so a million examples cost the sample almost nothing."""

import math
import random
from typing import Generic, Iterator, Optional, TypeVar

Item = TypeVar("Item")


class Reservoir(Generic[Item]):
    """offer() before building an item (most are never kept, so most are never built), then put()."""

    def __init__(self, size: int, seed: object):
        self.size = size
        self.seen = 0
        self._items: list[tuple[int, Item]] = []  # (place in the stream, item)
        self._rng = random.Random(f"synthgen:report:{seed}")
        self._w = 1.0
        self._next = size - 1  # the place of the next item kept once the reservoir is full
        if size:
            self._skip()

    def _draw(self) -> float:
        return min(max(1.0 - self._rng.random(), 1e-300), 1.0 - 1e-16)  # in (0, 1): both logs finite

    def _skip(self) -> None:
        self._w *= math.exp(math.log(self._draw()) / self.size)
        self._next += math.floor(math.log(self._draw()) / math.log1p(-min(self._w, 1.0 - 1e-16))) + 1

    def offer(self) -> Optional[int]:
        """The slot the next item of the stream goes to, or None when it is not kept."""
        place = self.seen
        self.seen += 1
        if place < self.size:
            return place
        if place != self._next:
            return None
        self._skip()
        return self._rng.randrange(self.size)

    def put(self, slot: int, item: Item) -> None:
        if slot == len(self._items):
            self._items.append((self.seen, item))
        else:
            self._items[slot] = (self.seen, item)

    def add(self, item: Item) -> None:
        slot = self.offer()
        if slot is not None:
            self.put(slot, item)

    def __iter__(self) -> Iterator[Item]:
        """The items kept, in stream order."""
        return (item for _, item in sorted(self._items, key=lambda pair: pair[0]))

    def __len__(self) -> int:
        return len(self._items)
