"""The deterministic plan: example i's kind, task, placeholders and language from (seed, i) alone."""

import random
from dataclasses import dataclass
from itertools import accumulate
from typing import Mapping, Sequence

from synthgen.config import Config
from synthgen.kinds import KINDS, LANGUAGE, SOURCE_LANGUAGE, TARGET_LANGUAGE, TASK


@dataclass(frozen=True)
class PlanItem:
    index: int
    kind: str
    task: str
    language: str
    placeholders: dict[str, str]


class _Weighted:
    """Names with cumulative weights, for random.choices."""

    def __init__(self, weights: Mapping[str, float]):
        pairs = [(name, w) for name, w in weights.items() if w > 0]
        self.names = [name for name, _ in pairs]
        self.cumulative = list(accumulate(w for _, w in pairs))

    def draw(self, rng: random.Random) -> str:
        return rng.choices(self.names, cum_weights=self.cumulative)[0]


class Planner:
    def __init__(self, config: Config, tasks: Mapping[str, Sequence[str]]):
        self.seed = config.generate.seed
        self._kinds = _Weighted(config.active_kinds())
        self._languages = _Weighted(config.languages)
        self._tasks = {kind: list(items) for kind, items in tasks.items()}
        self._values = {
            name: {p: config.value_set(name, p) for p in kind.value_sets} for name, kind in KINDS.items()
        }
        for name in self._kinds.names:
            if KINDS[name].brainstormed and not self._tasks.get(name):
                raise ValueError(f"no tasks for {name}")
        # The first items hold one of each kind in the mix, in a seeded order, the rest are drawn by
        # weight: a small trial run shows every kind, and a large one barely differs from the weights.
        self._opening = list(self._kinds.names)
        random.Random(f"synthgen:{self.seed}:opening").shuffle(self._opening)

    def item(self, index: int) -> PlanItem:
        # A string seed is hashed with SHA-512 by random.seed: stable across runs and platforms.
        rng = random.Random(f"synthgen:{self.seed}:{index}")
        kind = KINDS[self._opening[index] if index < len(self._opening) else self._kinds.draw(rng)]
        values: dict[str, str] = {}
        for placeholder in kind.placeholders:
            if placeholder == TASK:
                values[TASK] = rng.choice(self._tasks[kind.name])
            elif placeholder in (LANGUAGE, SOURCE_LANGUAGE):
                values[placeholder] = self._languages.draw(rng)
            elif placeholder == TARGET_LANGUAGE:
                values[placeholder] = self._draw_other_language(rng, values[SOURCE_LANGUAGE])
            else:
                values[placeholder] = rng.choice(self._values[kind.name][placeholder])
        task = kind.instruction or values[TASK]
        language = values.get(LANGUAGE) or values[SOURCE_LANGUAGE]
        return PlanItem(index, kind.name, task, language, values)

    def _draw_other_language(self, rng: random.Random, other: str) -> str:
        # Config validation guarantees two languages with weight, so this ends.
        while True:
            language = self._languages.draw(rng)
            if language != other:
                return language
