"""Stage 1: the LLM brainstorms task definitions for an asymmetric subtype.

Rounds run on the same dispatcher as generation: concurrent, capped, with the failure breaker. A
round whose answer holds no usable task is replaced, so one bad answer does not end a run.

A model asked the same prompt again repeats itself, so each round's prompt differs: a topic drawn
by weight, a persona, and a few tasks already found to differ from. A task is kept only when no
kept task has the same task_key. Brainstorming for a number of tasks runs in batches of rounds
sized by the yield measured so far, and stops at the floor: when the last rounds gave too few new
tasks for what they asked, the model has little new to say and more rounds would be money spent.
"""

import collections
import itertools
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from synthgen.answers import TRUNCATED, leading_strings, parse_json
from synthgen.config import BrainstormConfig, Config
from synthgen.console import say
from synthgen.dispatch import Dispatcher, FailureWindow, request_cap
from synthgen.errors import BudgetReached
from synthgen.llm import LLMClient, RequestFailed
from synthgen.progress import Progress
from synthgen.prompts import Template, Templates
from synthgen.sampling import Weighted
from synthgen.schemas import TASK_LIST_SCHEMA
from synthgen.store import Task, TaskFile, task_file, task_key, tasks_folder

MAX_REPEATS_SHOWN = 10

def task_strings(value: Any, max_chars: int) -> list[str]:
    """The tasks in a parsed answer: {"tasks": [...]} as asked, an object holding one list under
    another key, a bare list, or an object whose values are all strings ({"Task 1": "...", ...}:
    what a model asked for a list writes when the server forces an object).

    White space is normalised; non-strings, single words (a task is a sentence: {"question": "what"}
    is not two tasks) and absurdly long items are dropped.
    """
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if isinstance(value.get("tasks"), list):
            value = value["tasks"]
        elif len(lists) == 1:
            value = lists[0]
        elif value and all(isinstance(v, str) for v in value.values()):
            value = list(value.values())
        else:
            value = []
    if not isinstance(value, list):
        return []
    tasks = (" ".join(item.split()) for item in value if isinstance(item, str))
    return [task for task in tasks if len(task.split()) >= 2 and len(task) <= max_chars]


@dataclass
class BrainstormResult:
    subtype: str
    path: Path
    wanted: Optional[int] = None  # distinct tasks the file should hold (None: a number of rounds was asked)
    known: int = 0  # distinct tasks in the file before
    rounds: int = 0  # rounds asked for (the first batch's, when brainstorming for a number of tasks)
    sent: int = 0  # rounds sent, the replacements of failed ones included
    added: int = 0
    asked: int = 0  # tasks asked for by the rounds that were answered
    new_by_round: list[int] = field(default_factory=list)  # new distinct tasks of each answered round
    rounds_failed: int = 0
    failures: list[str] = field(default_factory=list)
    stop_reason: Optional[str] = None
    exhausted: bool = False  # the yield fell below the floor
    repeated: int = 0  # tasks an answer gave that were known already
    repeats: list[str] = field(default_factory=list)  # the first few of them, as written, to show what repeats

    @property
    def barren(self) -> bool:
        """No round gave a usable task."""
        return self.rounds_failed > 0 and self.rounds_failed == self.sent

    @property
    def total(self) -> int:
        return self.known + self.added

    @property
    def yield_(self) -> Optional[float]:
        """New distinct tasks per task asked for."""
        return self.added / self.asked if self.asked else None

    def record(self) -> dict[str, Any]:
        """What a manifest keeps of it."""
        return {
            "tasks": self.total,
            "known_before": self.known,
            "wanted": self.wanted,
            "rounds": len(self.new_by_round),
            "rounds_failed": self.rounds_failed,
            "asked": self.asked,
            "new": self.added,
            "yield": None if self.yield_ is None else round(self.yield_, 4),
            "new_by_round": self.new_by_round,
            "exhausted": self.exhausted,
            "stop_reason": self.stop_reason,
            "repeated": self.repeated,
            "repeats": self.repeats,
        }


class Brainstorm:
    """One brainstorm into one task file, which it holds locked from start to end."""

    def __init__(self, client: LLMClient, config: Config, templates: Templates, file: TaskFile,
                 show_progress: bool = True):
        self.client = client
        self.config = config
        self.settings = config.brainstorm
        self.template = templates.brainstorm[file.subtype]
        self.file = file
        self.show_progress = show_progress
        self.topics = Weighted(self.settings.topics)
        self.failures = FailureWindow()
        self.window: collections.deque[int] = collections.deque(maxlen=self.settings.yield_rounds)
        self.round_numbers = itertools.count()
        self.tasks: list[str] = []
        self.keys: set[str] = set()
        self.result = BrainstormResult(file.subtype, file.path)

    async def run(self, wanted: Optional[int] = None, rounds: Optional[int] = None) -> BrainstormResult:
        """Until the file holds `wanted` distinct tasks, or for `rounds` good rounds; either way no
        further than the floor, the request cap of each batch or the failure breaker."""
        self.file.lock.acquire("brainstorm")
        try:
            self.tasks = self.file.read()  # read again under the lock: another writer may have added some
            self.keys = {task_key(task) for task in self.tasks}
            result = self.result
            result.wanted, result.known = wanted, len(self.tasks)
            if wanted is not None and len(self.tasks) >= wanted:
                return result
            if wanted is None:
                self.progress = Progress(f"brainstorm {self.file.subtype}", rounds or self.settings.rounds, "round",
                                         self.show_progress, usage=self.client.usage)
            else:
                self.progress = Progress(f"brainstorm {self.file.subtype}", wanted, "task", self.show_progress,
                                         initial=len(self.tasks), usage=self.client.usage, per_request=False)
            with self.file.writer() as self.writer:
                async with self.progress:
                    while True:
                        batch = self._next_batch(wanted, rounds)
                        if not batch:
                            break
                        result.rounds = result.rounds or batch
                        before = result.added
                        self.dispatcher = Dispatcher(batch, request_cap(batch, self.config.generate.request_cap_factor),
                                                     self.config.generate.concurrency, tracker=self.progress)
                        await self.dispatcher.run(self._round)
                        # A stop (the floor, the breaker) may come with the batch's last answer: "complete" then.
                        if self.dispatcher.outcome != "complete" or self.dispatcher.stop_reason is not None:
                            result.stop_reason = self.dispatcher.stop_reason  # None: the request cap
                            break
                        if wanted is None:
                            break
                        if result.added == before:  # ends even with the floor off (min_yield 0)
                            result.exhausted = True
                            result.stop_reason = f"a batch of {batch} rounds gave no new task"
                            break
        finally:
            self.file.lock.release()
        return self.result

    def _next_batch(self, wanted: Optional[int], rounds: Optional[int]) -> int:
        """Rounds to send next: those asked for, or as many as the shortfall needs at the yield so far."""
        if wanted is None:
            return rounds or self.settings.rounds
        shortfall = wanted - len(self.tasks)
        if shortfall <= 0:
            return 0
        measured = self.result.yield_
        expected = self.settings.num_tasks * max(measured if measured is not None else 1.0, self.settings.min_yield, 0.01)
        return math.ceil(shortfall / expected)

    def prompt(self, number: int) -> tuple[str, str, str]:
        """Round `number`'s prompt, topic and persona (round_prompt)."""
        return round_prompt(self.template, self.settings, self.topics, self.config.generate.seed, self.file.subtype,
                            self.result.known, number, self.tasks)

    async def _round(self, index: int) -> Optional[bool]:
        result, settings = self.result, self.settings
        result.sent += 1
        prompt, topic, persona = self.prompt(next(self.round_numbers))
        try:
            completion = await self.client.complete(
                prompt,
                max_tokens=self.config.llm.max_tokens["brainstorm"],
                schema=TASK_LIST_SCHEMA,
                schema_name="task_list",
            )
        except BudgetReached as exc:  # not sent: the rounds in flight still finish
            result.sent -= 1
            self.dispatcher.stop(str(exc))
            return None
        except RequestFailed as exc:
            # As in generation, only requests that used up their retries count toward the breaker;
            # they say nothing of the model's yield.
            self._failed(f"request failed: {exc}")
            stop = self.failures.record(True, str(exc))
            if stop:
                self.dispatcher.stop(stop)
            return False
        self.failures.record(False)
        verdict = parse_json(completion)
        if verdict.reason == TRUNCATED:  # the tasks before the cut were paid for: kept
            found = task_strings(leading_strings(completion.text), settings.max_task_chars)
        else:
            found = [] if verdict.reason else task_strings(verdict.value, settings.max_task_chars)
        if not found:  # a failed round, replaced up to the cap; it says nothing of the yield
            return self._failed(verdict.reason or "no usable task in the answer")
        self._count_yield(self._keep(found, topic, persona))
        return True

    def _keep(self, found: list[str], topic: str, persona: str) -> int:
        """Append the tasks not known yet (by task_key); returns how many."""
        new = 0
        for task in found:
            key = task_key(task)
            if key in self.keys:
                self.result.repeated += 1
                if len(self.result.repeats) < MAX_REPEATS_SHOWN:
                    self.result.repeats.append(task)
            elif key:
                self.keys.add(key)
                self.tasks.append(task)
                self.writer.write(Task(kind=self.file.subtype, task=task, model=self.client.model,
                                       seed=self.config.generate.seed, topic=topic, persona=persona))
                new += 1
        self.result.added += new
        if not self.progress.per_request:
            self.progress.advance(new)
        return new

    def _count_yield(self, new: int) -> None:
        """Note an answered round's yield; stop at the floor."""
        settings = self.settings
        self.result.new_by_round.append(new)
        self.result.asked += settings.num_tasks
        self.window.append(new)
        asked = settings.num_tasks * len(self.window)
        if len(self.window) == self.window.maxlen and sum(self.window) < settings.min_yield * asked:
            self.result.exhausted = True
            self.dispatcher.stop(f"the last {len(self.window)} rounds gave {sum(self.window)} new tasks for the {asked} "
                                 f"asked for ({sum(self.window) / asked:.0%}, below the floor of "
                                 f"{settings.min_yield:.0%}): the model has little new to say")

    def _failed(self, reason: str) -> bool:
        self.result.rounds_failed += 1
        self.result.failures.append(reason)
        return False


def round_prompt(template: Template, settings: BrainstormConfig, topics: Weighted, seed: int, subtype: str, known: int,
                 number: int, tasks: Sequence[str]) -> tuple[str, str, str]:
    """Round `number`'s prompt, topic and persona: drawn from the seed, the subtype, the tasks known
    when the brainstorm began (`known`), and the round, so a later brainstorm into the same file
    draws anew; it shows some of `tasks` (those found so far) to differ from."""
    rng = random.Random(f"synthgen:{seed}:brainstorm:{subtype}:{known}:{number}")
    topic = topics.draw(rng)
    persona = rng.choice(settings.personas)
    shown = rng.sample(tasks, min(settings.shown_tasks, len(tasks)))
    prompt = template.render({
        "num_tasks": str(settings.num_tasks),
        "topic": topic,
        "persona": persona,
        "known_tasks": "\n".join(f"- {task}" for task in shown) or "- (none yet)",
    })
    return prompt, topic, persona


async def brainstorm(
    client: LLMClient,
    config: Config,
    templates: Templates,
    file: TaskFile,
    rounds: Optional[int] = None,
    show_progress: bool = True,
    wanted: Optional[int] = None,
) -> BrainstormResult:
    """Brainstorm into `file` until it holds `wanted` distinct tasks, or for `rounds` good rounds
    ([brainstorm] rounds when neither is given); new tasks are appended as each round answers."""
    return await Brainstorm(client, config, templates, file, show_progress).run(wanted, rounds)


async def brainstorm_subtypes(
    config: Config, subtypes: list[str], rounds: Optional[int], out: Optional[Path], show_progress: bool = True,
    wanted: Optional[int] = None,
) -> list[BrainstormResult]:
    """The brainstorm command: each subtype in turn, appending to its task file (or to out) until it
    holds `wanted` tasks, or for `rounds` rounds."""
    from synthgen.backends import open_backend

    templates = Templates(Path(config.prompts) if config.prompts else None)
    tasks_dir = tasks_folder(Path(config.generate.tasks))
    files = [TaskFile(out, subtype) if out else task_file(tasks_dir, subtype) for subtype in subtypes]
    backend = open_backend(config)
    try:
        say(f"synthgen: {backend.description}")
        return [await brainstorm(backend.client, config, templates, file, rounds, show_progress, wanted)
                for file in files]
    finally:
        await backend.client.aclose()
