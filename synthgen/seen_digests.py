"""The digests of the keys dedup has seen: given a chunk's digests in line order, it says which repeat.

Compiled (synthgen/_dedup_native.c), the digests are rows of a numpy table, 16 bytes each at most 70%
full, probed in C: a few tens of nanoseconds a key. Without the compiled module, a Python set of bytes
objects (about 90 bytes and a few hundred nanoseconds a key) gives the same answers.
"""

from typing import Protocol

import numpy as np

from synthgen.native import dedup_native as native

# The share of the table's rows a key may take before it doubles: linear probing stays a cache line or
# two a key up to here.
MAX_LOAD = 0.7
_NONE = np.zeros(0, np.int64)


class SeenDigests(Protocol):
    def repeats(self, digests: bytes) -> np.ndarray:
        """Add 16-byte digests, in order; the positions (int64) of those seen before, earlier in these too."""
        ...

    def __len__(self) -> int: ...


class TableDigests:
    """The digests in a numpy table of 16-byte rows, a power of two of them, added and probed in C."""

    def __init__(self, rows: int = 1 << 16):
        self.table = np.zeros((rows, 2), np.uint64)
        self.used = 0

    def __len__(self) -> int:
        return self.used

    def repeats(self, digests: bytes) -> np.ndarray:
        need = self.used + len(digests) // 16
        if need > MAX_LOAD * len(self.table):
            self._grow(need)
        positions, added = native.add(self.table, digests)  # type: ignore[union-attr]
        self.used += added
        return np.frombuffer(positions, np.int64)

    def _grow(self, need: int) -> None:
        rows = len(self.table)
        while need > MAX_LOAD * rows:
            rows *= 2
        table = np.zeros((rows, 2), np.uint64)
        native.rehash(self.table, table)  # type: ignore[union-attr]
        self.table = table


class SetDigests:
    """The digests as bytes objects in a Python set."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()

    def __len__(self) -> int:
        return len(self.seen)

    def repeats(self, digests: bytes) -> np.ndarray:
        keys = np.frombuffer(digests, "V16").tolist()
        if self.seen.isdisjoint(keys) and len(set(keys)) == len(keys):  # no repeat: C loops only
            self.seen.update(keys)
            return _NONE
        positions = []
        for position, key in enumerate(keys):
            if key in self.seen:
                positions.append(position)
            else:
                self.seen.add(key)
        return np.array(positions, np.int64)


def seen_digests(compiled: bool) -> SeenDigests:
    """The compiled table, or the set."""
    return TableDigests() if compiled else SetDigests()
