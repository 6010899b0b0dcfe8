"""Stage 1: the LLM brainstorms task definitions for an asymmetric subtype."""

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from synthgen.answers import TRUNCATED, leading_strings, parse_json
from synthgen.config import Config
from synthgen.errors import BadInput
from synthgen.jsonl import append_writer, read_records
from synthgen.llm import LLMClient, RequestFailed
from synthgen.progress import Progress
from synthgen.prompts import Templates
from synthgen.schemas import TASK_LIST_SCHEMA


def tasks_file(tasks_dir: Path, subtype: str) -> Path:
    return tasks_dir / f"{subtype}.jsonl"


def load_tasks(path: Path, subtype: str) -> list[str]:
    """The distinct tasks of a subtype in a task file, in file order; [] when there is none."""
    if not path.exists():
        return []
    seen: dict[str, None] = {}
    try:
        for record in read_records(path):
            if isinstance(record, dict) and record.get("kind") == subtype and isinstance(record.get("task"), str):
                seen.setdefault(record["task"], None)
    except OSError as exc:
        raise BadInput(f"cannot read tasks file {path}: {exc.strerror or exc}") from None
    return list(seen)


def task_strings(value: Any, max_chars: int) -> list[str]:
    """The tasks in a parsed answer: {"tasks": [...]} as asked, an object holding one list under
    another key, a bare list, or an object whose values are all strings ({"Task 1": "...", ...}:
    what a model asked for a list writes when the server forces an object).

    White space is normalised; non-strings, empty and absurdly long items are dropped.
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
    return [task for task in tasks if task and len(task) <= max_chars]


@dataclass
class BrainstormResult:
    subtype: str
    path: Path
    rounds: int = 0
    added: int = 0
    rounds_failed: int = 0
    failures: list[str] = field(default_factory=list)


async def brainstorm(
    client: LLMClient,
    config: Config,
    templates: Templates,
    subtype: str,
    path: Path,
    rounds: Optional[int] = None,
    show_progress: bool = True,
) -> BrainstormResult:
    """Run the rounds concurrently; each round's new tasks are appended as soon as it answers."""
    rounds = rounds or config.brainstorm.rounds
    settings = config.brainstorm
    prompt = templates.brainstorm[subtype].render({"num_tasks": str(settings.num_tasks)})
    seen = set(load_tasks(path, subtype))
    result = BrainstormResult(subtype, path, rounds)
    limit = asyncio.Semaphore(config.generate.concurrency)

    async def one_round() -> None:
        async with limit:
            progress.sent()
            try:
                completion = await client.complete(
                    prompt,
                    max_tokens=config.llm.max_tokens["brainstorm"],
                    schema=TASK_LIST_SCHEMA,
                    schema_name="task_list",
                )
            except RequestFailed as exc:
                result.rounds_failed += 1
                result.failures.append(f"request failed: {exc}")
                progress.done(ok=False)
                return
        verdict = parse_json(completion)
        if verdict.reason == TRUNCATED:
            tasks = task_strings(leading_strings(completion.text), settings.max_task_chars)
        else:
            tasks = [] if verdict.reason else task_strings(verdict.value, settings.max_task_chars)
        if not tasks:
            result.rounds_failed += 1
            result.failures.append(verdict.reason or "no usable task in the answer")
        for task in tasks:
            if task not in seen:
                seen.add(task)
                writer.write({"kind": subtype, "task": task, "model": client.model, "seed": config.generate.seed})
                result.added += 1
        progress.done(ok=bool(tasks))

    progress = Progress(f"brainstorm {subtype}", rounds, "round", show_progress, usage=client.usage)
    with append_writer(path) as writer:
        async with progress:
            await asyncio.gather(*(one_round() for _ in range(rounds)))
    return result


async def brainstorm_subtypes(
    config: Config, subtypes: list[str], rounds: Optional[int], out: Optional[Path], show_progress: bool = True
) -> list[BrainstormResult]:
    """The brainstorm command: each subtype in turn, appending to its task file (or to out)."""
    from synthgen.backends import open_backend
    from synthgen.generate import say

    templates = Templates(Path(config.prompts) if config.prompts else None)
    backend = open_backend(config)
    try:
        say(f"synthgen: {backend.description}")
        results = []
        for subtype in subtypes:
            path = out or tasks_file(Path(config.generate.tasks), subtype)
            results.append(await brainstorm(backend.client, config, templates, subtype, path, rounds, show_progress))
        return results
    finally:
        await backend.client.aclose()
