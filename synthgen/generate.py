"""Stage 2: plan, run concurrently, validate, write, resume.

Example i of a run is planned from (seed, i) alone. Indices are sent in order; an index whose answer
is rejected stays in the rejects file and the next unused index replaces it, so the same seed and
config always give the same prompts, and a rerun skips every index already answered.
"""

import asyncio
import collections
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from synthgen import __version__
from synthgen.answers import REQUEST_FAILED, validate_answer
from synthgen.backends import Backend, open_backend
from synthgen.brainstorm import brainstorm, load_tasks, tasks_file
from synthgen.config import Config, digest
from synthgen.errors import BadInput, Interrupted, RunStopped
from synthgen.jsonl import append_writer, cut_torn_tail, read_records, write_json_atomic
from synthgen.kinds import KINDS
from synthgen.llm import RequestFailed, StopRun
from synthgen.progress import Progress
from synthgen.prompts import Templates
from synthgen.sampling import PlanItem, Planner
from synthgen.schemas import answer_schema

EXAMPLES = "examples.jsonl"
REJECTS = "rejects.jsonl"
MANIFEST = "manifest.json"
MANIFEST_EVERY = 2.0  # seconds between manifest updates during a run
# Stop when this share of the last FAILURE_WINDOW requests used up their retries.
FAILURE_WINDOW = 50
FAILURE_SHARE = 0.5
GRACE_SECONDS = 10.0  # how long an interrupted run waits for the requests in flight


def fingerprint_parts(config: Config, templates: Templates, tasks: dict[str, list[str]]) -> dict[str, str]:
    """Digests of everything that decides a run's prompts and answers, named for the user."""
    settings = config.fingerprint_data()
    parts = {name: digest(value) for name, value in settings.items()}
    parts["templates"] = digest(templates.texts())
    parts["tasks"] = digest(tasks)
    return parts


def request_cap(n: int, config: Config) -> int:
    return int(n * config.generate.request_cap_factor + 0.999999) + 10


@dataclass
class Previous:
    """What an output folder already holds."""

    manifest: dict[str, Any] = field(default_factory=dict)
    valid: set[int] = field(default_factory=set)
    rejected: set[int] = field(default_factory=set)
    per_kind: collections.Counter = field(default_factory=collections.Counter)
    reasons: collections.Counter = field(default_factory=collections.Counter)


def read_previous(out: Path) -> Previous:
    previous = Previous()
    manifest = out / MANIFEST
    if manifest.exists():
        try:
            previous.manifest = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot read {manifest}: {exc}") from None
    for name, indices in ((EXAMPLES, previous.valid), (REJECTS, previous.rejected)):
        path = out / name
        if not path.exists():
            continue
        cut_torn_tail(path)
        for record in read_records(path):
            if isinstance(record, dict) and isinstance(record.get("index"), int) and record["index"] not in indices:
                indices.add(record["index"])
                if name == EXAMPLES:
                    previous.per_kind[record.get("kind")] += 1
                else:
                    previous.reasons[record.get("reason")] += 1
    return previous


def check_same_run(previous: Previous, parts: dict[str, str], out: Path) -> None:
    """Refuse to resume a run made with other settings: its examples would not match its plan."""
    before = previous.manifest.get("fingerprint_parts")
    if not before and not previous.valid and not previous.rejected:
        return
    if not before:
        raise BadInput(f"{out} holds examples without a manifest: use another --out, or --overwrite to start over")
    differs = sorted(name for name in set(before) | set(parts) if before.get(name) != parts.get(name))
    if differs:
        raise BadInput(
            f"{out} holds a run with other settings ({', '.join(differs)} differ): "
            "use another --out, or --overwrite to start over"
        )


class Generation:
    def __init__(
        self,
        config: Config,
        backend: Backend,
        templates: Templates,
        planner: Planner,
        out: Path,
        n: int,
        cap: int,
        parts: dict[str, str],
        previous: Previous,
        show_progress: bool = True,
        brainstormed: Optional[dict[str, float]] = None,
    ):
        self.config = config
        self.backend = backend
        self.client = backend.client
        self.templates = templates
        self.planner = planner
        self.out = out
        self.n = n
        self.cap = cap
        self.parts = parts
        self.fingerprint = digest(parts)
        self.previous = previous
        self.show_progress = show_progress
        self.brainstormed = brainstormed if brainstormed and brainstormed["http_requests"] else None
        self.schemas = {name: answer_schema(kind.answer) for name, kind in KINDS.items()}

        self.valid = len(previous.valid)
        self.per_kind = collections.Counter(previous.per_kind)
        self.reasons = collections.Counter(previous.reasons)
        self.finished = previous.valid | previous.rejected  # indices a resumed run skips
        self.requests = len(self.finished)  # logical requests: one per planned index sent
        self.in_flight = 0
        self.next_index = 0
        self.stop_reason: Optional[str] = None
        self.interrupted = False
        self._workers: list[asyncio.Task] = []
        self.recent_failures: collections.deque = collections.deque(maxlen=FAILURE_WINDOW)
        self.last_failure = ""
        self.started = time.monotonic()
        self._slot_freed = asyncio.Event()
        self._manifest_lock = threading.Lock()
        self._manifest_final = False

    # -- the plan ------------------------------------------------------------------------------

    def _done(self) -> bool:
        return self.interrupted or self.stop_reason is not None or self.valid >= self.n or self.requests >= self.cap

    def _can_send(self) -> bool:
        return self._done() or self.valid + self.in_flight < self.n

    def _take(self) -> int:
        while self.next_index in self.finished:
            self.next_index += 1
        index = self.next_index
        self.next_index += 1
        self.requests += 1
        self.in_flight += 1
        return index

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        count = min(self.config.generate.concurrency, max(1, self.n - self.valid))
        self.out.mkdir(parents=True, exist_ok=True)
        self.examples = append_writer(self.out / EXAMPLES)
        self.rejects = append_writer(self.out / REJECTS)
        self.progress = Progress(
            "generate", self.n, "ex", self.show_progress, initial=min(self.valid, self.n), usage=self.client.usage
        )
        loop = asyncio.get_running_loop()
        signals = self._catch_interrupts(loop)
        self.write_manifest("running")  # before the first request: examples never lack their run's fingerprint
        ticker = asyncio.create_task(self._write_manifest_often())
        status = "stopped"
        try:
            async with self.progress:
                self._workers = [asyncio.create_task(self._worker()) for _ in range(count)]
                try:
                    done, _ = await asyncio.wait(self._workers, return_when=asyncio.FIRST_EXCEPTION)
                finally:
                    for task in self._workers:
                        task.cancel()
                    await asyncio.gather(*self._workers, return_exceptions=True)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
            if self.valid >= self.n:
                status = "complete"
            elif self.interrupted:
                status = "interrupted"
        except StopRun as exc:
            self.stop_reason = str(exc)
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
            ticker.cancel()
            self.examples.close()
            self.rejects.close()
            self.write_manifest(status)
        if self.stop_reason:
            raise RunStopped(self.stop_reason)
        if status == "interrupted":
            raise Interrupted()

    def _catch_interrupts(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        """Ctrl+C (or SIGTERM): stop sending, let requests in flight finish for a grace period.

        A second one cancels them at once. Either way what was written stays, and the manifest is
        written before the process exits.
        """
        caught = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self._interrupt, loop)
                caught.append(signum)
            except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
                pass
        return caught

    def _interrupt(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.interrupted:
            self._cancel_workers()
            return
        self.interrupted = True
        say(f"\ninterrupted: waiting up to {GRACE_SECONDS:g} s for {self.in_flight} requests in flight "
            "(interrupt again to stop at once)")
        loop.call_later(GRACE_SECONDS, self._cancel_workers)
        self._wake_workers()

    def _wake_workers(self) -> None:
        """Wake the workers waiting for a free slot (a pulse: set wakes every waiter, clear re-arms)."""
        self._slot_freed.set()
        self._slot_freed.clear()

    def _cancel_workers(self) -> None:
        for task in self._workers:
            task.cancel()

    async def _worker(self) -> None:
        # One event loop, no await between the check and the take: no lock is needed.
        while True:
            while not self._can_send():
                await self._slot_freed.wait()
            if self._done():
                return
            index = self._take()
            self.progress.sent()
            try:
                ok = await self._request(self.planner.item(index))
            finally:
                self.in_flight -= 1
                self._wake_workers()
            self.progress.done(ok)

    async def _request(self, item: PlanItem) -> bool:
        kind = KINDS[item.kind]
        prompt = self.templates.generate[item.kind].render(item.placeholders)
        try:
            completion = await self.client.complete(
                prompt,
                max_tokens=self.config.llm.max_tokens[item.kind],
                schema=self.schemas[item.kind],
                schema_name=item.kind,
            )
        except RequestFailed as exc:
            self._reject(item, REQUEST_FAILED, str(exc), "", None)
            self._note_failure(True, str(exc))
            return False
        self._note_failure(False)
        verdict = validate_answer(completion, kind.answer)
        if verdict.reason:
            self._reject(item, verdict.reason, verdict.detail, completion.text, completion.finish_reason)
            return False
        query, positive, negative = kind.normalise(verdict.value)
        self.examples.write(
            {
                "id": f"{self.fingerprint[:10]}-{item.index}",
                "index": item.index,
                "kind": item.kind,
                "task": item.task,
                "language": item.language,
                "query": query,
                "positive": positive,
                "negative": negative,
                "placeholders": item.placeholders,
                "raw": verdict.value,
                "model": self.client.model,
                "seed": self.planner.seed,
            }
        )
        self.valid += 1
        self.per_kind[item.kind] += 1
        return True

    def _reject(self, item: PlanItem, reason: str, detail: str, text: str, finish_reason: Optional[str]) -> None:
        self.rejects.write(
            {
                "index": item.index,
                "kind": item.kind,
                "reason": reason,
                "detail": detail,
                "finish_reason": finish_reason,
                "text": text,
                "model": self.client.model,
                "seed": self.planner.seed,
            }
        )
        self.reasons[reason] += 1

    def _note_failure(self, failed: bool, message: str = "") -> None:
        self.recent_failures.append(failed)
        if failed:
            self.last_failure = message
            window = self.recent_failures
            if len(window) >= 20 and sum(window) >= FAILURE_SHARE * len(window):
                self.stop_reason = (
                    f"most requests fail ({sum(window)} of the last {len(window)} used up their retries); "
                    f"last error: {message}"
                )

    # -- the manifest --------------------------------------------------------------------------

    async def _write_manifest_often(self) -> None:
        while True:
            await asyncio.sleep(MANIFEST_EVERY)
            # The snapshot is taken here; the write and its fsync, which a busy disk can stretch to
            # seconds, run in a thread so that requests keep flowing meanwhile.
            await asyncio.to_thread(self._write_manifest, self.manifest("running"))

    def write_manifest(self, status: str) -> None:
        self._write_manifest(self.manifest(status))

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        # A final manifest waits for a write in flight in the thread, and no "running" one follows it.
        with self._manifest_lock:
            if not self._manifest_final:
                self._manifest_final = manifest["status"] != "running"
                write_json_atomic(self.out / MANIFEST, manifest)

    def manifest(self, status: str) -> dict[str, Any]:
        before = self.previous.manifest
        usage = self.client.usage
        rejected_total = sum(self.reasons.values())

        def summed(key: str, now: float) -> Any:
            return (before.get(key) or 0) + now

        manifest = {
            "synthgen_version": __version__,
            "status": status,
            "stop_reason": self.stop_reason,
            "fingerprint": self.fingerprint,
            "fingerprint_parts": self.parts,
            "backend": self.backend.name,
            "model": self.client.model,
            "model_digest": self.backend.model_digest,
            "endpoint": self.backend.endpoint,
            "seed": self.planner.seed,
            "n": self.n,
            "request_cap": self.cap,
            "requests": self.valid + rejected_total,
            "valid": self.valid,
            "rejected_total": rejected_total,
            "rejected": dict(sorted(self.reasons.items())),
            "per_kind": dict(sorted(self.per_kind.items())),
            "http_requests": summed("http_requests", usage.http_requests),
            "retries": summed("retries", usage.retries),
            "prompt_tokens": summed("prompt_tokens", usage.prompt_tokens),
            "completion_tokens": summed("completion_tokens", usage.completion_tokens),
            "cooldown_seconds": round(summed("cooldown_seconds", usage.cooldown_seconds), 3),
            "wall_seconds": round(summed("wall_seconds", time.monotonic() - self.started), 3),
            "sessions": (before.get("sessions") or 0) + 1,
            "structured_output": dict(usage.structured_output),
            "brainstorm": self.brainstormed or before.get("brainstorm"),
            "config": self.config.model_dump(mode="json", exclude={"llm": {"api_key"}}),
        }
        return manifest


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_all_tasks(config: Config) -> dict[str, list[str]]:
    """The tasks of every brainstormed kind in the mix ([] where there are none yet)."""
    tasks_dir = Path(config.generate.tasks)
    return {
        name: load_tasks(tasks_file(tasks_dir, name), name)
        for name in config.active_kinds()
        if KINDS[name].brainstormed
    }


async def brainstorm_missing(
    config: Config, backend: Backend, templates: Templates, tasks: dict[str, list[str]], show_progress: bool
) -> None:
    """A kind in the mix with no tasks yet is brainstormed first."""
    for name, known in tasks.items():
        if known:
            continue
        path = tasks_file(Path(config.generate.tasks), name)
        say(f"no tasks for {name} in {path} yet: brainstorming them first")
        result = await brainstorm(backend.client, config, templates, name, path, show_progress=show_progress)
        tasks[name] = load_tasks(path, name)
        if not tasks[name]:
            raise RunStopped(f"the brainstorm for {name} gave no usable task ({'; '.join(result.failures[:3])})")


def prepare_folder(out: Path) -> None:
    """Make the output folder, or say in one line why it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise BadInput(f"cannot write to {out}: {exc.strerror or exc}") from None


def remove_run(out: Path) -> None:
    for name in (EXAMPLES, REJECTS, MANIFEST):
        (out / name).unlink(missing_ok=True)


async def generate(
    config: Config, n: int, out: Path, overwrite: bool = False, show_progress: bool = True,
    max_requests: Optional[int] = None,
) -> Generation:
    templates = Templates(Path(config.prompts) if config.prompts else None)
    tasks = load_all_tasks(config)
    prepare_folder(out)
    if overwrite:
        remove_run(out)
    previous = read_previous(out)
    if all(tasks.values()):  # refuse a mismatched resume before anything is printed or sent
        check_same_run(previous, fingerprint_parts(config, templates, tasks), out)
    backend = open_backend(config)
    try:
        say(f"synthgen {__version__}: {backend.description}")
        await brainstorm_missing(config, backend, templates, tasks, show_progress)
        brainstormed = backend.client.usage.take_counts()  # kept apart: the manifest's counts are generation's
        parts = fingerprint_parts(config, templates, tasks)
        check_same_run(previous, parts, out)
        if previous.valid or previous.rejected:
            say(f"resuming {out}: {len(previous.valid)} valid and {len(previous.rejected)} rejected already there")
        generation = Generation(
            config, backend, templates, Planner(config, tasks), out, n, max_requests or request_cap(n, config), parts, previous,
            show_progress, brainstormed,
        )
        await generation.run()
        return generation
    finally:
        await backend.client.aclose()
