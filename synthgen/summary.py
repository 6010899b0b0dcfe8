"""Summaries of counted values (lengths, examples per task): one definition for stats and manifests."""

import collections
import math
from typing import Any, Iterable, Mapping, Optional


def summarise(histogram: Mapping[Any, int]) -> Optional[dict[str, Any]]:
    """n, min, median, p95 (nearest rank) and max of the values a histogram counts."""
    n = sum(histogram.values())
    if not n:
        return None
    values = sorted((value, count) for value, count in histogram.items() if count)

    def at(rank: int) -> float:  # the rank-th smallest value, from 1
        seen = 0
        for value, count in values:
            seen += count
            if seen >= rank:
                return value
        return values[-1][0]

    median = at((n + 1) // 2) if n % 2 else (at(n // 2) + at(n // 2 + 1)) / 2
    return {"n": n, "min": values[0][0], "median": median, "p95": at(math.ceil(0.95 * n)), "max": values[-1][0]}


def spread(counts: Iterable[int]) -> Optional[dict[str, Any]]:
    return summarise(collections.Counter(counts))
