"""The deterministic plan: example i's kind, task, placeholders and language from (seed, i) and the
task files' content alone.

Tasks are dealt, not drawn: the j-th example of a kind gets the (j mod T)-th task of a seeded
shuffle of its T tasks, a new shuffle for each pass through them, so every task is used about
equally (at most one more time than any other) and a run of N examples uses min(N, T) of them.
"""

import random
from array import array
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

from synthgen.config import Config
from synthgen.grounded import GROUNDED
from synthgen.kinds import KINDS, LANGUAGE, SOURCE_LANGUAGE, TARGET_LANGUAGE, TASK

if TYPE_CHECKING:
    from synthgen.store import PassageIndex


@dataclass(frozen=True)
class PlanItem:
    index: int
    kind: str
    task: str  # "" where the LLM writes it (grounded in a passage)
    language: str
    placeholders: dict[str, str]
    passage: Optional[int] = None  # generate --corpus: the number of the passage the example is grounded in


class Weighted:
    """Names with cumulative weights, for random.choices."""

    def __init__(self, weights: Mapping[str, float]):
        pairs = [(name, w) for name, w in weights.items() if w > 0]
        self.names = [name for name, _ in pairs]
        self.cumulative = list(accumulate(w for _, w in pairs))

    def draw(self, rng: random.Random) -> str:
        return rng.choices(self.names, cum_weights=self.cumulative)[0]


# Changes whenever the same (seed, i, config, tasks) would give another plan item, so that a run
# planned otherwise is not resumed. 2: tasks dealt evenly (1 drew each at random).
PLAN_VERSION = "2"


class Planner:
    def __init__(self, config: Config, tasks: Mapping[str, Sequence[str]]):
        self.seed = config.generate.seed
        self._kinds = Weighted(config.active_kinds())
        self._languages = Weighted(config.languages)
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
        # Index i's kind (its place in self._kinds.names) and how many indices before i have that
        # kind: filled in order as far as the highest index asked for.
        self._kind_at = bytearray()
        self._occurrence = array("Q")
        self._seen = [0] * len(self._kinds.names)
        self._dealt: dict[tuple[str, int], list[int]] = {}

    def _rng(self, index: int) -> random.Random:
        # A string seed is hashed with SHA-512 by random.seed: stable across runs and platforms.
        return random.Random(f"synthgen:{self.seed}:{index}")

    def _draw_kind(self, index: int, rng: random.Random) -> str:
        return self._opening[index] if index < len(self._opening) else self._kinds.draw(rng)

    def _extend(self, index: int) -> None:
        position = {name: i for i, name in enumerate(self._kinds.names)}
        for i in range(len(self._kind_at), index + 1):
            k = position[self._draw_kind(i, self._rng(i))]
            self._kind_at.append(k)
            self._occurrence.append(self._seen[k])
            self._seen[k] += 1

    def _deal(self, kind: str, cycle: int) -> list[int]:
        """The order in which pass `cycle` through a kind's tasks uses them (the last few kept)."""
        order = self._dealt.get((kind, cycle))
        if order is None:
            if len(self._dealt) >= 64:
                self._dealt.clear()
            order = list(range(len(self._tasks[kind])))
            random.Random(f"synthgen:{self.seed}:tasks:{kind}:{cycle}").shuffle(order)
            self._dealt[(kind, cycle)] = order
        return order

    def _task(self, kind: str, index: int) -> str:
        if index >= len(self._kind_at):
            self._extend(index)
        tasks = self._tasks[kind]
        cycle, place = divmod(self._occurrence[index], len(tasks))
        return tasks[self._deal(kind, cycle)[place]]

    def item(self, index: int) -> PlanItem:
        rng = self._rng(index)
        kind = KINDS[self._draw_kind(index, rng)]
        values: dict[str, str] = {}
        for placeholder in kind.placeholders:
            if placeholder == TASK:
                values[TASK] = self._task(kind.name, index)
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


class GroundedPlanner:
    """generate --corpus: example i's kind, passage and placeholders from (seed, i) and the corpus
    alone. The passage is drawn uniformly among a uniformly drawn document's passages ("document",
    so one huge file does not dominate) or among all passages ("passage"); the LLM writes the task,
    unless a task set is given, from which each example's task is drawn at random."""

    def __init__(self, config: Config, passages: "PassageIndex", tasks: Optional[Mapping[str, Sequence[str]]] = None):
        """tasks: a task set per kind (generate --corpus --tasks), each example's drawn from it."""
        settings = config.generate.corpus
        self._tasks = {kind: list(items) for kind, items in (tasks or {}).items()}
        for name in settings.kinds:
            if tasks is not None and settings.kinds[name] > 0 and not self._tasks.get(name):
                raise ValueError(f"no tasks for {name}")
        self.seed = config.generate.seed
        self._kinds = Weighted(settings.kinds)
        self._languages = Weighted(settings.languages)
        self._values = {name: {p: config.value_set(name, p) for p in GROUNDED[name].placeholders if p != LANGUAGE}
                        for name in self._kinds.names}
        self._passages = passages
        self._by_document = settings.draw == "document"
        # As Planner: the first items hold one of each kind, in a seeded order.
        self._opening = list(self._kinds.names)
        random.Random(f"synthgen:{self.seed}:corpus:opening").shuffle(self._opening)

    def item(self, index: int) -> PlanItem:
        rng = random.Random(f"synthgen:{self.seed}:corpus:{index}")
        kind = self._opening[index] if index < len(self._opening) else self._kinds.draw(rng)
        if self._by_document:
            passages = self._passages.document_passages(rng.randrange(self._passages.documents))
            passage = passages[rng.randrange(len(passages))]
        else:
            passage = rng.randrange(len(self._passages))
        values = {TASK: rng.choice(self._tasks[kind])} if self._tasks else {}
        for placeholder in GROUNDED[kind].placeholders:
            if placeholder == LANGUAGE:
                values[LANGUAGE] = self._languages.draw(rng)
            else:
                values[placeholder] = rng.choice(self._values[kind][placeholder])
        return PlanItem(index, kind, values.get(TASK, ""), values[LANGUAGE], values, passage)
