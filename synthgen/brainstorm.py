"""Stage 1: the LLM brainstorms task definitions for an asymmetric subtype.

Rounds run on the same dispatcher as generation: concurrent, capped, with the failure breaker. A
round whose answer holds no usable task is replaced, so one bad answer does not end a run.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from synthgen.answers import TRUNCATED, leading_strings, parse_json
from synthgen.config import Config
from synthgen.console import say
from synthgen.dispatch import Dispatcher, FailureWindow, request_cap
from synthgen.llm import LLMClient, RequestFailed
from synthgen.progress import Progress
from synthgen.prompts import Templates
from synthgen.schemas import TASK_LIST_SCHEMA
from synthgen.store import Task, TaskFile, task_file, tasks_folder


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
    rounds: int = 0  # rounds asked for
    sent: int = 0  # rounds sent, the replacements of failed ones included
    added: int = 0
    rounds_failed: int = 0
    failures: list[str] = field(default_factory=list)
    stop_reason: Optional[str] = None

    @property
    def barren(self) -> bool:
        """No round gave a usable task."""
        return self.rounds_failed > 0 and self.rounds_failed == self.sent


async def brainstorm(
    client: LLMClient,
    config: Config,
    templates: Templates,
    file: TaskFile,
    rounds: Optional[int] = None,
    show_progress: bool = True,
) -> BrainstormResult:
    """Run `rounds` good rounds concurrently, replacing failed ones up to the request cap; each round's
    new tasks are appended to the task file (locked meanwhile) as soon as it answers."""
    settings = config.brainstorm
    rounds = rounds or settings.rounds
    subtype = file.subtype
    prompt = templates.brainstorm[subtype].render({"num_tasks": str(settings.num_tasks)})
    result = BrainstormResult(subtype, file.path, rounds)
    failures = FailureWindow()
    progress = Progress(f"brainstorm {subtype}", rounds, "round", show_progress, usage=client.usage)
    dispatcher = Dispatcher(rounds, request_cap(rounds, config.generate.request_cap_factor),
                            config.generate.concurrency, tracker=progress)

    def failed(reason: str, request: bool = False) -> bool:
        result.rounds_failed += 1
        result.failures.append(reason)
        if request:  # as in generation, only requests that used up their retries count toward the breaker
            stop = failures.record(True, reason)
            if stop:
                dispatcher.stop(stop)
        return False

    async def one_round(index: int) -> bool:
        result.sent += 1
        try:
            completion = await client.complete(
                prompt,
                max_tokens=config.llm.max_tokens["brainstorm"],
                schema=TASK_LIST_SCHEMA,
                schema_name="task_list",
            )
        except RequestFailed as exc:
            return failed(f"request failed: {exc}", request=True)
        verdict = parse_json(completion)
        if verdict.reason == TRUNCATED:  # the tasks before the cut were paid for: kept
            tasks = task_strings(leading_strings(completion.text), settings.max_task_chars)
        else:
            tasks = [] if verdict.reason else task_strings(verdict.value, settings.max_task_chars)
        failures.record(False)
        if not tasks:
            return failed(verdict.reason or "no usable task in the answer")
        for task in tasks:
            if task not in seen:
                seen.add(task)
                writer.write(Task(kind=subtype, task=task, model=client.model, seed=config.generate.seed))
                result.added += 1
        return True

    file.lock.acquire("brainstorm")
    try:
        seen = set(file.read())
        with file.writer() as writer:
            async with progress:
                await dispatcher.run(one_round)
    finally:
        file.lock.release()
    result.stop_reason = dispatcher.stop_reason
    return result


async def brainstorm_subtypes(
    config: Config, subtypes: list[str], rounds: Optional[int], out: Optional[Path], show_progress: bool = True
) -> list[BrainstormResult]:
    """The brainstorm command: each subtype in turn, appending to its task file (or to out)."""
    from synthgen.backends import open_backend

    templates = Templates(Path(config.prompts) if config.prompts else None)
    tasks_dir = tasks_folder(Path(config.generate.tasks))
    files = [TaskFile(out, subtype) if out else task_file(tasks_dir, subtype) for subtype in subtypes]
    backend = open_backend(config)
    try:
        say(f"synthgen: {backend.description}")
        return [await brainstorm(backend.client, config, templates, file, rounds, show_progress) for file in files]
    finally:
        await backend.client.aclose()
