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
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Sequence

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


class TaskDealer:
    """Tasks dealt, not drawn (see the module's note). Needs each index's kind, from `kind_of`,
    in order up to the highest index asked for; holds a byte and 8 bytes an index."""

    def __init__(self, prefix: str, tasks: Mapping[str, Sequence[str]], kinds: Sequence[str],
                 kind_of: Callable[[int], str]):
        """prefix: the seed of the shuffles, with the kind and the pass appended."""
        self._prefix = prefix
        self._tasks = {kind: list(items) for kind, items in tasks.items()}
        self._kinds = list(kinds)
        self._position = {name: i for i, name in enumerate(kinds)}
        self._kind_of = kind_of
        # Index i's kind (its place in kinds) and how many indices before i have that kind.
        self._kind_at = bytearray()
        self._occurrence = array("Q")
        self._seen = [0] * len(kinds)
        self._dealt: dict[tuple[str, int], list[int]] = {}

    def _extend(self, index: int) -> None:
        for i in range(len(self._kind_at), index + 1):
            k = self._position[self._kind_of(i)]
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
            random.Random(f"{self._prefix}:{kind}:{cycle}").shuffle(order)
            self._dealt[(kind, cycle)] = order
        return order

    def kind(self, index: int) -> str:
        """Index `index`'s kind, as kind_of gave it (kept: asked again, it costs nothing)."""
        if index >= len(self._kind_at):
            self._extend(index)
        return self._kinds[self._kind_at[index]]

    def task(self, kind: str, index: int) -> str:
        """The task of index `index`, whose kind is `kind`."""
        if index >= len(self._kind_at):
            self._extend(index)
        tasks = self._tasks[kind]
        cycle, place = divmod(self._occurrence[index], len(tasks))
        return tasks[self._deal(kind, cycle)[place]]


class Planner:
    def __init__(self, config: Config, tasks: Mapping[str, Sequence[str]]):
        self.seed = config.generate.seed
        self._kinds = Weighted(config.active_kinds())
        self._languages = Weighted(config.languages)
        self._values = {
            name: {p: config.value_set(name, p) for p in kind.value_sets} for name, kind in KINDS.items()
        }
        for name in self._kinds.names:
            if KINDS[name].brainstormed and not tasks.get(name):
                raise ValueError(f"no tasks for {name}")
        # The first items hold one of each kind in the mix, in a seeded order, the rest are drawn by
        # weight: a small trial run shows every kind, and a large one barely differs from the weights.
        self._opening = list(self._kinds.names)
        random.Random(f"synthgen:{self.seed}:opening").shuffle(self._opening)
        self._dealer = TaskDealer(f"synthgen:{self.seed}:tasks", tasks, self._kinds.names,
                                  lambda i: self._draw_kind(i, self._rng(i)))

    def _rng(self, index: int) -> random.Random:
        # A string seed is hashed with SHA-512 by random.seed: stable across runs and platforms.
        return random.Random(f"synthgen:{self.seed}:{index}")

    def kind_of(self, index: int) -> str:
        """Index `index`'s kind alone (item(index).kind, for less: the dealer keeps every index's kind)."""
        return self._dealer.kind(index)

    def _draw_kind(self, index: int, rng: random.Random) -> str:
        return self._opening[index] if index < len(self._opening) else self._kinds.draw(rng)

    def item(self, index: int) -> PlanItem:
        rng = self._rng(index)
        kind = KINDS[self._draw_kind(index, rng)]
        values: dict[str, str] = {}
        for placeholder in kind.placeholders:
            if placeholder == TASK:
                values[TASK] = self._dealer.task(kind.name, index)
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


# As PLAN_VERSION, for generate --corpus, with the [generate.corpus] settings that decide its plan.
# 2: a given task set is dealt evenly (1 drew each example's task at random).
GROUNDED_PLAN_VERSION = "2"
GROUNDED_PLAN_SETTINGS = {"draw", "kinds", "languages"}


class GroundedPlanner:
    """generate --corpus: example i's kind, passage and placeholders from (seed, i) and the corpus
    alone. The passage is drawn uniformly among a uniformly drawn document's passages ("document",
    so one huge file does not dominate) or among all passages ("passage"); the LLM writes the task,
    unless a task set is given, whose tasks are then dealt as Planner deals them."""

    def __init__(self, config: Config, passages: "PassageIndex", tasks: Optional[Mapping[str, Sequence[str]]] = None):
        """tasks: a task set per kind (generate --corpus --tasks), dealt to the examples of the kind."""
        settings = config.generate.corpus
        for name in settings.kinds:
            if tasks is not None and settings.kinds[name] > 0 and not tasks.get(name):
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
        self._dealer = TaskDealer(f"synthgen:{self.seed}:corpus:tasks", tasks, self._kinds.names,
                                  lambda i: self._draw_kind(i, self._rng(i))) if tasks is not None else None

    def _rng(self, index: int) -> random.Random:
        return random.Random(f"synthgen:{self.seed}:corpus:{index}")

    def kind_of(self, index: int) -> str:
        """Index `index`'s kind alone (item(index).kind, for less)."""
        if self._dealer is not None:
            return self._dealer.kind(index)
        return self._draw_kind(index, self._rng(index))

    def _draw_kind(self, index: int, rng: random.Random) -> str:
        return self._opening[index] if index < len(self._opening) else self._kinds.draw(rng)

    def item(self, index: int) -> PlanItem:
        rng = self._rng(index)
        kind = self._draw_kind(index, rng)
        if self._by_document:
            passages = self._passages.document_passages(rng.randrange(self._passages.documents))
            passage = passages[rng.randrange(len(passages))]
        else:
            passage = rng.randrange(len(self._passages))
        values = {TASK: self._dealer.task(kind, index)} if self._dealer is not None else {}
        for placeholder in GROUNDED[kind].placeholders:
            if placeholder == LANGUAGE:
                values[LANGUAGE] = self._languages.draw(rng)
            else:
                values[placeholder] = rng.choice(self._values[kind][placeholder])
        return PlanItem(index, kind, values.get(TASK, ""), values[LANGUAGE], values, passage)
