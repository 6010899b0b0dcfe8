"""Rounds: plan indices sent together as a file of requests, and the file of results that comes back.

The OpenAI Batch API (batch_api.py) and `vllm run-batch` (results_files.py) both take a file of
chat-completion requests, one a line with a `custom_id`, and give back a file of results joined on
it. A round is the next indices of the plan that still want an answer, lowest first, as many as the
run still needs (N less the valid examples, less the requests still out), within the request cap:
the indices the live path would send next. Its results are recorded by the same Recorder a live
answer goes through, so validation, rejects, duplicates and the ledger are the live path's own. An
index rejected stays rejected and the next round asks the next unused index instead, as live; an
index whose request never ran (the batch expired or was cancelled first, or its line is missing
from a results file) is asked again as it is, since nothing was paid for it.

A custom_id is `<run>-r<round>-<index>`: the run's fingerprint prefix (the example ids' prefix), so
that another run's results are never taken for this one's, the round for the reader, and the index.
"""

import bisect
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Union

from synthgen.answering import PlannedRequest, Recorder, RequestRenderer, usage_of
from synthgen.backends import Backend, choose, open_backend
from synthgen.config import Config
from synthgen.console import say
from synthgen.errors import BadInput
from synthgen.ledger import Ledger, ManifestWriter
from synthgen.llm import StopRun
from synthgen.llm import Usage as ClientUsage
from synthgen.llm.chat import chat_request, read_completion
from synthgen.prompts import Templates
from synthgen.sampling import GroundedPlanner, Planner
from synthgen.store import (
    BatchJob,
    BatchRecord,
    BatchResult,
    Manifest,
    PassageIndex,
    RequestFile,
    RunFolder,
    RunState,
    Usage,
    read_results,
    request_line,
)

if TYPE_CHECKING:
    from pathlib import Path

# Error codes of a result line whose request never ran (the OpenAI Batch API's): asked again.
NOT_RUN_CODES = frozenset({"batch_expired", "batch_cancelled"})
_CUSTOM_ID = re.compile(r"([0-9a-f]+)-r(\d+)-(\d+)")


def custom_id(run_id: str, round_: int, index: int) -> str:
    return f"{run_id}-r{round_}-{index}"


def parse_custom_id(text: str) -> Optional[tuple[str, int]]:
    """(run id, plan index) of a custom_id synthgen wrote, else None."""
    match = _CUSTOM_ID.fullmatch(text)
    return (match.group(1), int(match.group(3))) if match else None


def as_runs(indices: Iterable[int]) -> list[tuple[int, int]]:
    """Ascending indices as runs [start, end): a round of 50,000 in one pair, not 50,000 numbers."""
    runs: list[tuple[int, int]] = []
    for index in indices:
        if runs and runs[-1][1] == index:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def indices_of(runs: Iterable[tuple[int, int]]) -> Iterator[int]:
    for start, end in runs:
        yield from range(start, end)


class IndexRuns:
    """Membership in a union of runs (the indices a run has asked for), by bisection."""

    def __init__(self, runs: Iterable[tuple[int, int]]):
        merged: list[tuple[int, int]] = []
        for start, end in sorted(runs):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        self._starts = [start for start, _ in merged]
        self._ends = [end for _, end in merged]

    def __contains__(self, index: int) -> bool:
        place = bisect.bisect_right(self._starts, index) - 1
        return place >= 0 and index < self._ends[place]


def next_round(finished: set[int], pending: set[int], size: int) -> list[int]:
    """The `size` lowest indices neither answered nor out."""
    chosen: list[int] = []
    index = 0
    while len(chosen) < size:
        if index not in finished and index not in pending:
            chosen.append(index)
        index += 1
    return chosen


@dataclass
class Part:
    """One requests file of a round, committed."""

    path: "Path"
    requests: int
    bytes: int
    runs: list[tuple[int, int]]


def write_parts(lines: Iterable[tuple[int, bytes]], path_of: Callable[[int], "Path"], max_requests: int,
                max_bytes: int) -> list[Part]:
    """Request lines in files of at most `max_requests` lines and `max_bytes` bytes (the provider's
    limits per file), each written whole before the next is begun."""
    parts: list[Part] = []
    current: Optional[RequestFile] = None
    indices: list[int] = []
    try:
        for index, line in lines:
            if len(line) > max_bytes:
                raise BadInput(f"the request of plan index {index} is {len(line):,} bytes, more than the "
                               f"{max_bytes:,} a batch file may hold ([batch] max_file_bytes)")
            if current is not None and (current.requests >= max_requests or current.bytes + len(line) > max_bytes):
                current.commit()
                parts.append(Part(current.path, current.requests, current.bytes, as_runs(indices)))
                current, indices = None, []
            if current is None:
                current = RequestFile(path_of(len(parts)))
            current.write(line)
            indices.append(index)
        if current is not None:
            current.commit()
            parts.append(Part(current.path, current.requests, current.bytes, as_runs(indices)))
    except BaseException:
        if current is not None:
            current.abort()
        raise
    return parts


@dataclass
class ResultCounts:
    """What reading results gave."""

    lines: int = 0
    valid: int = 0
    rejected: int = 0  # answers rejected, and requests that failed: replaced by the next indices
    failed: int = 0  # of those, requests the provider or server failed without an answer
    not_run: int = 0  # expired or cancelled before they ran: asked again
    already: int = 0  # indices answered before (a file read twice, say): passed over
    unreadable: int = 0  # lines that are no result (a torn last line)
    foreign: int = 0  # results of requests this run never made (another run's file)

    def add(self, other: "ResultCounts") -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    @property
    def answered(self) -> int:
        """Results that ended a request, well or not."""
        return self.valid + self.rejected


def _message(error: Any) -> str:
    if isinstance(error, dict):
        inner = error.get("error")
        if isinstance(inner, dict):
            return _message(inner)
        return str(error.get("message") or error.get("code") or error)
    return str(error)


def classify(result: BatchResult) -> tuple[str, str]:
    """("answer", ""), ("failed", why) or ("not_run", why) for one result line. An answer is a
    2xx response with a body and no error; any other line failed, unless its request never ran."""
    error, response = result.error, result.response
    if isinstance(error, dict) and error.get("code") in NOT_RUN_CODES:
        return "not_run", _message(error)
    if error is None and response is not None and 200 <= response.status_code < 300 and isinstance(response.body, dict):
        return "answer", ""
    if error is not None:
        return "failed", _message(error)
    if response is not None and isinstance(response.body, dict) and "error" in response.body:
        return "failed", f"status {response.status_code}: {_message(response.body)}"
    return "failed", f"status {response.status_code if response is not None else 'none'}, no answer"


class RoundSession:
    """What the two ways of running rounds share: the run's books, its requests rendered as lines,
    and results recorded through the live path's Recorder."""

    def __init__(self, config: Config, templates: Templates, planner: Union[Planner, GroundedPlanner],
                 folder: RunFolder, state: RunState, header: Manifest, passages: Optional[PassageIndex] = None):
        self.config = config
        self.folder = folder
        self.state = state
        self.record = state.manifest.batch if state.manifest and state.manifest.batch else BatchRecord()
        header.batch = self.record  # the ledger's manifests carry it, as it changes
        self.ledger = Ledger(state, header)
        self.model = header.model
        self.renderer = RequestRenderer(config, templates, planner, passages)
        self.recorder = Recorder(self.ledger, state.keys, self.model, planner.seed)
        self.finished = state.finished
        self.run_id = self.recorder.run_id
        self.mode = config.llm.structured_output
        self.sampling = {"temperature": config.llm.temperature, "top_p": config.llm.top_p}
        self.client_usage = ClientUsage(structured_output={kind: self.mode for kind in config.active_kinds()})
        self.writer = ManifestWriter(folder)
        self.stop_reason: Optional[str] = None

    @property
    def n(self) -> int:
        return self.ledger.header.n

    @property
    def cap(self) -> int:
        return self.ledger.header.request_cap

    def manifest(self, status: str) -> Manifest:
        return self.ledger.manifest(status, self.stop_reason, self.client_usage)

    def save(self, status: str = "running") -> None:
        self.writer.write(self.manifest(status))

    def round_size(self, pending: int = 0) -> int:
        """How many requests the next round holds: what the run still needs, within the cap."""
        return max(0, min(self.n - self.ledger.valid - pending, self.cap - len(self.finished) - pending))

    def lines(self, indices: Iterable[int], round_: int) -> Iterator[tuple[int, bytes]]:
        """Each index's request as a line of a requests file, its body the one the live client sends."""
        for index in indices:
            request = self.renderer.render(index)
            body = chat_request(self.model, request.prompt, request.max_tokens, self.sampling, request.schema,
                                request.item.kind, self.mode)
            yield index, request_line(custom_id(self.run_id, round_, index), body)

    def add_round(self, api: str, parts: list[Part]) -> list[BatchJob]:
        """Note a round's parts in the run's batch record (the next round gets the next number)."""
        jobs = [BatchJob(api=api, round=self.record.rounds, part=number, requests=part.requests, indices=part.runs,
                         file=str(part.path)) for number, part in enumerate(parts)]
        self.record.jobs.extend(jobs)
        self.record.rounds += 1
        return jobs

    def asked(self) -> IndexRuns:
        return IndexRuns(run for job in self.record.jobs for run in job.indices)

    def read(self, path: "Path", via: str, asked: IndexRuns, on_result: Callable[[bool], None] = lambda ok: None,
             stop: Callable[[], bool] = lambda: False) -> ResultCounts:
        """Record the results of a file: each answer validated and written as a live answer is.
        Results of indices answered before, or never asked by this run, are passed over."""
        counts = ResultCounts()
        for result in read_results(path):
            if stop():
                break
            counts.lines += 1
            if result is None:
                counts.unreadable += 1
                continue
            parsed = parse_custom_id(result.custom_id)
            if parsed is None or parsed[0] != self.run_id or parsed[1] not in asked:
                counts.foreign += 1
                continue
            index = parsed[1]
            if index in self.finished:
                counts.already += 1
                continue
            outcome, why = classify(result)
            if outcome == "not_run":
                counts.not_run += 1
                continue
            request: PlannedRequest = self.renderer.render(index)
            if outcome == "failed":
                self.recorder.failure(request.item, why, Usage(http_requests=1, via=via))
                counts.failed += 1
                ok = False
            else:
                assert result.response is not None
                completion = read_completion(result.response.body)
                ok = self.recorder.answer(request, completion, usage_of(completion, via))
            self.finished.add(index)
            if ok:
                counts.valid += 1
            else:
                counts.rejected += 1
            on_result(ok)
        return counts


def refuse_batches_at_provider(manifest: Optional[Manifest], out: "Path", doing: str) -> None:
    """A run whose batches may still run at the provider is collected before anything else is done
    with it: asking their indices again, or starting over, would pay twice."""
    jobs = manifest.batch.at_provider() if manifest and manifest.batch else []
    if jobs:
        requests = sum(job.requests for job in jobs)
        raise BadInput(f"{out} has {len(jobs)} batches ({requests:,} requests) at the Batch API not collected yet: "
                       f"run the same command with --batch to collect them before {doing} "
                       f"(`synthgen batch cancel {out}` stops them first)")


@dataclass
class BatchOptions:
    """generate --batch, or --write-requests / --read-results: how the run's rounds travel."""

    api: bool = False  # the OpenAI Batch API
    write_requests: Optional["Path"] = None
    read_results: Optional["Path"] = None


class NoEndpoint:
    """The client of a run whose requests go as files with no endpoint configured: it sends nothing."""

    def __init__(self, model: str):
        self.model = model
        self.usage = ClientUsage()

    async def complete(self, prompt: str, *, max_tokens: int, schema: Optional[dict[str, Any]],
                       schema_name: str) -> Any:
        raise StopRun("no endpoint is configured: the run's requests go as files")

    async def aclose(self) -> None:
        pass


def files_backend(config: Config) -> Backend:
    """--write-requests / --read-results: the endpoint when one is configured (for a brainstorm the
    run needs), else a client that sends nothing."""
    if choose(config) == "openai":
        return open_backend(config)
    model = config.llm.model
    return Backend("files", NoEndpoint(model), f"requests and results files (vllm run-batch), model {model}", "")


def check_tasks_without_endpoint(tasks: dict[str, list[str]], needed: dict[str, int]) -> None:
    """With no endpoint to brainstorm with, a run's requests use the tasks there are: a kind with none
    cannot be asked for."""
    for name, known in tasks.items():
        if not known:
            raise BadInput(f"no {name} tasks to write requests with, and no endpoint to brainstorm them: run "
                           f"`synthgen brainstorm --subtype {name}` against an endpoint, write the task file by hand, "
                           "or leave the kind out of --kinds")
        if len(known) < needed[name]:
            say(f"{name}: {len(known)} tasks, fewer than the {needed[name]} this n needs, and no endpoint to "
                "brainstorm more: the run goes on with them")
