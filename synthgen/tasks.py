"""How many tasks a run needs, how evenly it uses them, and how diverse a set of tasks is.

The paper made 500k examples from 150k distinct task definitions, about 3.3 examples per task: the
breadth of the tasks is the recipe's strength, so a run asks for enough of them and says how
different they are.
"""

import collections
import math
import random
from typing import Any, Mapping, Sequence

from synthgen.store import task_key
from synthgen.summary import summarise

DIVERSITY_PAIRS = 20_000  # pairs of tasks sampled for the mean distance: a stable figure at any size


def needed_tasks(n: int, weights: Mapping[str, float], examples_per_task: float) -> dict[str, int]:
    """The distinct tasks each kind of the mix needs for `n` examples: ceil(n * share / examples_per_task)."""
    total = sum(weights.values())
    return {kind: math.ceil(n * weight / total / examples_per_task) for kind, weight in weights.items() if weight > 0}


def diversity(tasks: Sequence[str]) -> dict[str, Any]:
    """Two figures of how different the tasks are from each other, both from 0 (all alike) to 1.

    - jaccard_distance: the mean, over pairs of tasks, of 1 - |shared words| / |words of either|
      (all pairs up to DIVERSITY_PAIRS of them, else that many seeded random pairs);
    - distinct_2: distinct word pairs (bigrams) over all bigrams of the tasks; it falls as a set
      grows, so compare it between sets of similar size.
    """
    words = [task_key(task).split() for task in tasks]
    bigrams = [tuple(w[i:i + 2]) for w in words for i in range(len(w) - 1)]
    sets = [frozenset(w) for w in words]
    count = len(sets)
    if count < 2:
        pairs: list[tuple[int, int]] = []
    elif count * (count - 1) // 2 <= DIVERSITY_PAIRS:
        pairs = [(i, j) for i in range(count) for j in range(i + 1, count)]
    else:
        rng = random.Random(f"synthgen:diversity:{count}")
        pairs = [tuple(rng.sample(range(count), 2)) for _ in range(DIVERSITY_PAIRS)]  # type: ignore[misc]
    distance = sum(1 - len(sets[i] & sets[j]) / (len(sets[i] | sets[j]) or 1) for i, j in pairs)
    return {
        "jaccard_distance": round(distance / len(pairs), 4) if pairs else None,
        "distinct_2": round(len(set(bigrams)) / len(bigrams), 4) if bigrams else None,
    }


class TaskUses:
    """Examples per task of each kind, kept as a histogram too so its summary costs nothing to redo."""

    def __init__(self, uses: Mapping[tuple[str, str], int] = {}):
        self.counts: collections.Counter = collections.Counter()
        self.histograms: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for (kind, task), count in uses.items():
            self.counts[(kind, task)] = count
            self.histograms[kind][count] += 1

    def add(self, kind: str, task: str) -> None:
        before = self.counts[(kind, task)]
        self.counts[(kind, task)] = before + 1
        histogram = self.histograms[kind]
        if before:
            histogram[before] -= 1
        histogram[before + 1] += 1

    def summary(self, kind: str) -> dict[str, Any]:
        """Distinct tasks used, and examples per task: min, median, max."""
        figures = summarise(self.histograms.get(kind, {}))
        if figures is None:
            return {"used": 0}
        return {"used": figures["n"], "min": figures["min"], "median": figures["median"], "max": figures["max"]}
