"""The owner of what synthgen stores: each record type, a run folder's files, and who may write them.

Every file synthgen writes holds one record type, defined here once (msgspec Structs: they encode
and decode in C, and a subset type decodes only the fields a reader needs). A run folder holds a
run's examples, its rejects and its manifest; a task file holds one subtype's brainstormed tasks.
Only this module spells a file name of a run folder or a field name of a stored record.

One writer at a time: a run holds an OS lock on its folder (and on a task file while it brainstorms
into it). The OS drops the lock with the process, so a `kill -9` never leaves a stale one behind; a
second writer is refused with one line naming the first.
"""

import array
import contextlib
import datetime
import os
import re
import socket
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, TypeVar, Union

import msgspec
import xxhash

from synthgen.errors import UNDECODABLE, BadInput
from synthgen.files import AtomicFile, LineAppender, cut_torn_tail, write_atomic

# -- records -----------------------------------------------------------------------------------------


class Usage(msgspec.Struct, omit_defaults=True):
    """What one answer cost: kept with its record, so totals are rebuilt from the files after a crash."""

    http_requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # How the answer came: None live, BATCH_API through the OpenAI Batch API (which bills half),
    # RESULTS_FILE from a results file (vllm run-batch). Not summed: totals keep one Usage per way.
    via: Optional[str] = None

    def add(self, other: "Usage") -> None:
        self.http_requests += other.http_requests
        self.retries += other.retries
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


BATCH_API = "batch"
RESULTS_FILE = "results-file"


class Example(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One stored example, whatever its kind (generated or imported)."""

    id: str
    index: Optional[int] = None  # its place in the plan (generated) or in the source (imported)
    kind: str
    task: str  # the instruction the query side is trained with
    language: str
    query: str
    positive: str
    negative: Optional[str]
    placeholders: dict[str, str]
    raw: dict[str, Any]  # the LLM's answer as validated, or an imported row as it was
    model: str
    seed: Optional[int]
    source: Optional[str] = None  # imported examples: where they came from
    usage: Optional[Usage] = None  # generated examples: what the answer cost
    # Added by curate: hard negatives mined from the other documents of the kind (best first), and
    # what curation changed and why (a false negative swapped with its positive, with the scores).
    negatives: Optional[list[str]] = None
    curation: Optional[dict[str, Any]] = None
    # Generated from a corpus (generate --corpus): the passage that is the example's positive (or
    # its query side, for long-short), and its document.
    passage_id: Optional[str] = None
    doc_id: Optional[str] = None

    def all_negatives(self) -> list[str]:
        """The generated negative, then the mined ones."""
        return ([self.negative] if self.negative is not None else []) + (self.negatives or [])


# The texts of an example, in the order a trainer takes them.
TEXT_FIELDS = ("query", "positive", "negative")


class ExampleKey(msgspec.Struct):
    """The fields the dedup keys are made of; a reader that needs only these skips the rest."""

    kind: str
    query: str
    positive: str
    negative: Optional[str] = None


class Reject(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An answer that did not become an example, kept for audit and counted by reason."""

    index: int
    kind: str
    reason: str
    detail: str
    finish_reason: Optional[str] = None
    text: str = ""
    model: str
    seed: Optional[int]
    usage: Optional[Usage] = None


class Task(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A brainstormed task definition of one subtype, with the topic and persona its round was given."""

    kind: str
    task: str
    model: str
    seed: Optional[int] = None
    topic: Optional[str] = None
    persona: Optional[str] = None


class ShardOf(msgspec.Struct):
    """generate --shard K/M: the run folder holds the plan indices i with i % count == index."""

    index: int
    count: int
    plan_n: int  # the whole plan's n; the shard's own is its share of it


class ShardReport(msgspec.Struct, kw_only=True):
    """What one shard gave a merge (synthgen merge): its state, and what it still owes."""

    index: int
    folder: str
    status: str
    valid: int
    target: int  # its share of the plan's n
    unasked: int  # plan indices below n of its residue no request was sent for yet


class MergeReport(msgspec.Struct, kw_only=True):
    """A merged run's shards: those merged, those missing, and the examples one shard repeated of another."""

    count: int
    merged: list[ShardReport] = []
    missing: list[int] = []
    duplicates: int = 0  # examples already in an earlier shard, moved to the rejects as duplicate


class BatchJob(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One part of a round of requests sent as a file: a batch at the provider (api "openai"), or a
    requests file for `vllm run-batch` (api "files"), and how far it got."""

    api: str
    round: int
    part: int = 0
    requests: int
    indices: list[tuple[int, int]]  # the plan indices it asks for, as runs [start, end)
    file: str  # the requests file written
    input_file_id: Optional[str] = None  # the Batch API: the file uploaded ...
    batch_id: Optional[str] = None  # ... and the batch made of it
    status: str = "written"  # then the provider's: validating, in_progress, ..., completed, expired, ...
    completed: int = 0  # requests the provider says it ran, and failed
    failed: int = 0
    output_file_id: Optional[str] = None
    error_file_id: Optional[str] = None
    errors: list[str] = []  # why the provider failed the batch as a whole
    cancel_requested: bool = False  # synthgen batch cancel
    collected: bool = False  # its results are in the run's examples and rejects

    @property
    def at_provider(self) -> bool:
        """Sent to the Batch API and not collected yet: its requests may run (and be billed) there,
        so they are not asked again until its results are in."""
        return self.api == "openai" and self.input_file_id is not None and not self.collected


class BatchRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The rounds of a run whose requests went as files (generate --batch, --write-requests)."""

    rounds: int = 0  # rounds written so far; the next one is numbered this
    jobs: list[BatchJob] = []

    def at_provider(self) -> list[BatchJob]:
        return [job for job in self.jobs if job.at_provider]


class Manifest(msgspec.Struct, kw_only=True):
    """A run's settings and totals, rewritten atomically during the run and at its end.

    Every field has a default, so a manifest written by an older version still reads.
    """

    synthgen_version: str = ""
    status: str = ""
    stop_reason: Optional[str] = None
    fingerprint: str = ""
    fingerprint_parts: dict[str, str] = {}
    backend: str = ""
    model: str = ""
    model_digest: Optional[str] = None
    endpoint: str = ""  # the base URL (several: comma-separated) or the model file
    # With several endpoints, by base URL, over every session: requests, answered, failed, benched,
    # http_requests, retries and tokens (counted by the client: requests in flight at a kill -9 are missed).
    endpoints: dict[str, dict[str, int]] = {}
    seed: Optional[int] = None
    n: int = 0
    request_cap: int = 0
    requests: int = 0
    valid: int = 0
    rejected_total: int = 0
    rejected: dict[str, int] = {}
    per_kind: dict[str, int] = {}
    http_requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cooldown_seconds: float = 0.0
    wall_seconds: float = 0.0
    sessions: int = 0
    structured_output: dict[str, str] = {}
    brainstorm: Optional[dict[str, Any]] = None
    # Per brainstormed kind: tasks available and needed, their diversity, and examples per task used.
    tasks: dict[str, dict[str, Any]] = {}
    # generate --corpus: the corpus folder, its digest, passages and documents.
    corpus: Optional[dict[str, Any]] = None
    shard: Optional[ShardOf] = None  # generate --shard K/M: which part of the plan this folder holds
    shards: Optional[MergeReport] = None  # synthgen merge: the shards this run was joined from
    # The share of the counts above whose answers came another way than live, by way (Usage.via):
    # "batch" (the OpenAI Batch API, billed at half price) and "results-file" (vllm run-batch).
    via: dict[str, Usage] = {}
    # generate --batch, --write-requests, --read-results: the rounds and batches, with their ids.
    batch: Optional[BatchRecord] = None
    # When a price is known: the price, its source, the budget, and what the run spent (brainstorm
    # and generation, every session) at that price.
    cost: Optional[dict[str, Any]] = None
    config: dict[str, Any] = {}


class IndexedRecord(msgspec.Struct):
    """What resuming (and merging) needs of an example or a reject line."""

    index: int
    kind: str
    reason: Optional[str] = None
    task: Optional[str] = None
    usage: Optional[Usage] = None


_encode = msgspec.json.Encoder().encode
_example_decoder = msgspec.json.Decoder(Example)
_key_decoder = msgspec.json.Decoder(ExampleKey)
_task_decoder = msgspec.json.Decoder(Task)
_indexed_decoder = msgspec.json.Decoder(IndexedRecord)
_manifest_decoder = msgspec.json.Decoder(Manifest)
_reject_decoder = msgspec.json.Decoder(Reject)


def encode(record: Any) -> bytes:
    """A record as one line of compact JSON (no newline). msgspec never writes NaN: JSON stays JSON."""
    return _encode(record)


def decode_example(line: bytes) -> Example:
    """Raises msgspec.ValidationError (JSON, not an example) or msgspec.DecodeError (not JSON)."""
    return _example_decoder.decode(line)


def decode_key(line: bytes) -> ExampleKey:
    return _key_decoder.decode(line)


def pretty_json(value: Any) -> bytes:
    """A record or report as indented JSON for people: the manifest, curate's report."""
    return msgspec.json.format(_encode(value), indent=2) + b"\n"


def manifest_json(manifest: Manifest) -> bytes:
    return pretty_json(manifest)


# -- the lock ----------------------------------------------------------------------------------------

LOCK_NAME = ".synthgen.lock"
OWNER_NAME = ".synthgen.owner.json"


class _Owner(msgspec.Struct):
    command: str
    pid: int
    host: str
    started: str


class Lock:
    """An exclusive OS lock (filelock) held by this process; its owner is written beside it.

    The owner file says who holds the lock; it is only ever read by a process refused the lock,
    so one left behind by a killed process is harmless and is replaced by the next holder.
    """

    def __init__(self, lock_path: Path, owner_path: Path, what: str):
        self.lock_path = lock_path
        self.owner_path = owner_path
        self.what = what
        self._lock: Any = None

    def acquire(self, command: str) -> None:
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.lock_path), timeout=0)
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except Timeout:
            raise BadInput(f"{self.what} is in use by {self._holder()}: wait for it to end, or use another one") from None
        except OSError as exc:
            raise BadInput(f"cannot lock {self.what}: {exc.strerror or exc}") from None
        self._lock = lock
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        owner = _Owner(command, os.getpid(), socket.gethostname(), started)
        try:
            write_atomic(self.owner_path, _encode(owner))
        except BadInput:
            self.release()
            raise

    def release(self) -> None:
        if self._lock is None:
            return
        self.owner_path.unlink(missing_ok=True)
        self._lock.release()
        self._lock = None
        # The lock file itself stays: removing it would let a third process lock a new file
        # while a second still waits on the old one.

    def _holder(self) -> str:
        try:
            owner = msgspec.json.decode(self.owner_path.read_bytes(), type=_Owner)
        except (OSError, *UNDECODABLE):
            return "another synthgen process"
        return f"synthgen {owner.command} (pid {owner.pid} on {owner.host}, started {owner.started})"

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def folder_lock(folder: Path) -> Lock:
    return Lock(folder / LOCK_NAME, folder / OWNER_NAME, str(folder))


class HeldFolder:
    """A folder some command writes into, locked for as long as it writes.

    Made if missing; if this command made it and leaves nothing in it, it is removed again, so an
    early failure leaves no empty folder behind.
    """

    def __init__(self, folder: Path, command: str):
        self.folder = folder
        self.created = not folder.exists()
        if folder.exists() and not folder.is_dir():
            raise BadInput(f"{folder} is a file, not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"cannot write to {folder}: {exc.strerror or exc}") from None
        self.lock = folder_lock(folder)
        try:
            self.lock.acquire(command)
        except BadInput:
            self._remove_if_unused()
            raise

    def release(self) -> None:
        self.lock.release()
        self._remove_if_unused()

    def _remove_if_unused(self) -> None:
        if not self.created:
            return
        try:
            (self.folder / LOCK_NAME).unlink(missing_ok=True)
            self.folder.rmdir()  # only succeeds when empty
        except OSError:
            pass

    def __enter__(self) -> "HeldFolder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def hold_output(path: Path, command: str) -> HeldFolder:
    """Lock the folder an output file goes into (dedup, export, import): refused while a run holds it."""
    return HeldFolder(path.parent, command)


# -- a run folder ------------------------------------------------------------------------------------

def ledger_records(path: Path, decoder: Any, cut: bool = True) -> Iterator[tuple[bytes, Any]]:
    """(line, record) for each line of an append-only ledger that decodes; a torn last line (a kill
    mid-write) is cut off first (unless `cut` is false: a reader that must not write), and other
    lines that are no record are passed over."""
    if cut:
        cut_torn_tail(path)
    with open(path, "rb") as f:
        for line in f:
            try:
                yield line, decoder.decode(line)
            except UNDECODABLE:
                continue


EXAMPLES_NAME = "examples.jsonl"
REJECTS_NAME = "rejects.jsonl"
MANIFEST_NAME = "manifest.json"
MINED_SUFFIX = "-mined"
SHARDS_SUFFIX = "-shards"
BATCH_FOLDER = "batch"  # the request files of generate --batch, and the results it downloads
REQUESTS_NAME = "requests.jsonl"  # --read-results writes the next round here unless told otherwise


@dataclass
class RunState:
    """What a run folder already holds: what a resumed run skips, and the totals it goes on from."""

    manifest: Optional[Manifest] = None
    valid: set[int] = field(default_factory=set)
    rejected: set[int] = field(default_factory=set)
    per_kind: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    keys: set[bytes] = field(default_factory=set)  # the dedup key digests of the examples
    task_uses: dict[tuple[str, str], int] = field(default_factory=dict)  # examples per (kind, task)
    usage: Usage = field(default_factory=Usage)
    via: dict[str, Usage] = field(default_factory=dict)  # the part of usage that came another way than live
    # Per kind, the answers that reported completion tokens, and those tokens (a dry run's measured mean).
    answers: dict[str, int] = field(default_factory=dict)
    answer_tokens: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> set[int]:
        """The indices answered, well or not: never asked again."""
        return self.valid | self.rejected

    @property
    def empty(self) -> bool:
        return not self.valid and not self.rejected

    def add_example(self, line: bytes, record: Union["IndexedRecord", Example]) -> bool:
        """Count an example line of the run; False (nothing counted) when its index already is."""
        if record.index is None or record.index in self.valid:
            return False
        self.valid.add(record.index)
        self.per_kind[record.kind] = self.per_kind.get(record.kind, 0) + 1
        self._add_usage(record)
        self.keys.add(example_digest(decode_key(line)))
        used = (record.kind, record.task or "")
        self.task_uses[used] = self.task_uses.get(used, 0) + 1
        return True

    def add_reject(self, record: Union["IndexedRecord", Reject]) -> bool:
        """Count a reject of the run; False (nothing counted) when its index already is."""
        if record.index in self.rejected:
            return False
        self.rejected.add(record.index)
        reason = record.reason or "unknown"
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        self._add_usage(record)
        return True

    def _add_usage(self, record: Union["IndexedRecord", Example, Reject]) -> None:
        if record.usage is None:
            return
        add_usage(self.usage, self.via, record.usage)
        if record.usage.completion_tokens:
            self.answers[record.kind] = self.answers.get(record.kind, 0) + 1
            self.answer_tokens[record.kind] = self.answer_tokens.get(record.kind, 0) + record.usage.completion_tokens


class RunFolder:
    """A generate run's folder: examples.jsonl, rejects.jsonl, manifest.json, and its lock."""

    def __init__(self, path: Path):
        self.path = path
        self.examples = path / EXAMPLES_NAME
        self.rejects = path / REJECTS_NAME
        self.manifest = path / MANIFEST_NAME
        self._held: Optional[HeldFolder] = None

    def open(self, command: str = "generate") -> "RunFolder":
        """Make and lock the folder; BadInput when it cannot be written or another run holds it."""
        self._held = HeldFolder(self.path, command)
        return self

    def close(self) -> None:
        if self._held is not None:
            self._held.release()
            self._held = None

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def mined(self) -> Path:
        """Where `generate --corpus` writes the run's examples with their corpus-mined negatives: a
        curated folder beside the run, OUT-mined (inside it, a walk of OUT would read every example
        twice)."""
        path = self.path.resolve() if not self.path.name else self.path
        return path.with_name(path.name + MINED_SUFFIX)

    @property
    def batch_folder(self) -> Path:
        return self.path / BATCH_FOLDER

    @property
    def requests(self) -> Path:
        """Where a round of requests for `vllm run-batch` goes when no file is named."""
        return self.path / REQUESTS_NAME

    def round_part(self, round_: int, part: int) -> Path:
        """The requests file of one part of a round sent to the Batch API."""
        return self.batch_folder / f"round-{round_:03d}-part-{part:03d}.jsonl"

    def downloaded(self, batch_id: str, which: str) -> Path:
        """Where a batch's output or error file is downloaded before it is read."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", batch_id)
        return self.batch_folder / f"{safe}-{which}.jsonl"

    def remove_batch_files(self, paths: Iterable[Path]) -> None:
        """Request and result files a collected batch no longer needs (the batch folder too, once empty)."""
        for path in paths:
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.batch_folder.rmdir()

    def download_file(self, path: Path) -> AtomicFile:
        """A download into the batch folder, in place only once whole (commit)."""
        return AtomicFile(path)

    def remove_run(self) -> None:
        for path in (self.examples, self.rejects, self.manifest, self.requests):
            path.unlink(missing_ok=True)
        if self.batch_folder.is_dir():
            self.remove_batch_files(self.batch_folder.glob("*.jsonl"))

    def read_manifest(self) -> Optional[Manifest]:
        if not self.manifest.exists():
            return None
        try:
            return _manifest_decoder.decode(self.manifest.read_bytes())
        except (OSError, *UNDECODABLE) as exc:
            raise BadInput(f"cannot read {self.manifest}: {exc}") from None

    def read_state(self, readonly: bool = False) -> RunState:
        """Read what an earlier run left; a torn last line (a kill mid-write) is cut off first, unless
        `readonly` (a dry run, which may look at a folder another run is writing)."""
        state = RunState(manifest=self.read_manifest())
        for line, record in self.example_records(cut=not readonly):
            state.add_example(line, record)
        for _, record in self.reject_records(cut=not readonly):
            state.add_reject(record)
        return state

    def example_records(self, cut: bool = True) -> Iterator[tuple[bytes, "IndexedRecord"]]:
        """(line, what resuming needs of it) for each example line; a torn last line is cut off first
        (unless not `cut`: ledger_records)."""
        return ledger_records(self.examples, _indexed_decoder, cut) if self.examples.exists() else iter(())

    def reject_records(self, cut: bool = True) -> Iterator[tuple[bytes, "IndexedRecord"]]:
        return ledger_records(self.rejects, _indexed_decoder, cut) if self.rejects.exists() else iter(())

    @property
    def shards(self) -> Path:
        """Where the shards of the run OUT are written (generate --shard, --ray): OUT-shards, beside
        the run (inside it, a walk of OUT would read every example twice)."""
        path = self.path.resolve() if not self.path.name else self.path
        return path.with_name(path.name + SHARDS_SUFFIX)

    def shard_folder(self, index: int, count: int) -> Path:
        """Shard index/count's own folder: OUT-shards/<index>-of-<count>."""
        return self.shards / f"{index}-of-{count}"

    def merged_output(self) -> "KeptAndDropped":
        """The folder locked, and a merged run's examples and rejects written under temporary names,
        committed with its manifest (synthgen merge): on an error, nothing replaced."""
        return KeptAndDropped(self.path, "merge", self.examples, self.rejects, self.manifest)

    def example_writer(self) -> LineAppender:
        return LineAppender(self.examples, _encode)

    def reject_writer(self) -> LineAppender:
        return LineAppender(self.rejects, _encode)

    def write_manifest(self, manifest: Manifest) -> None:
        write_atomic(self.manifest, manifest_json(manifest))


def add_usage(total: Usage, via: dict[str, Usage], usage: Usage) -> None:
    """Count one record's usage in the run's total, and in its way's when it did not come live."""
    total.add(usage)
    if usage.via is not None:
        via.setdefault(usage.via, Usage()).add(usage)


# -- batch request and result files -----------------------------------------------------------------
# The OpenAI Batch API's line shapes, which `vllm run-batch` reads and writes too.

CHAT_COMPLETIONS_URL = "/v1/chat/completions"


class BatchRequest(msgspec.Struct):
    """One line of a requests file: a chat completion to run, and the id its result comes back under."""

    custom_id: str
    method: str
    url: str
    body: dict[str, Any]


class BatchResponse(msgspec.Struct):
    status_code: int = 0
    request_id: Optional[str] = None
    body: Any = None  # a chat.completion object, or an error object


class BatchResult(msgspec.Struct):
    """One line of a batch's output or error file: the result of the request with this custom_id."""

    custom_id: str
    id: Optional[str] = None
    response: Optional[BatchResponse] = None
    error: Any = None  # why it failed without an answer (a string, or {"code", "message"})


_result_decoder = msgspec.json.Decoder(BatchResult)


def request_line(custom_id: str, body: dict[str, Any]) -> bytes:
    """One line of a requests file, newline included."""
    return _encode(BatchRequest(custom_id, "POST", CHAT_COMPLETIONS_URL, body)) + b"\n"


class RequestFile:
    """A requests file written under a temporary name and moved into place whole (commit), so a
    file that is uploaded or given to `vllm run-batch` is never half written."""

    def __init__(self, path: Path):
        self.path = path
        self._file = AtomicFile(path)
        self.requests = 0
        self.bytes = 0

    def write(self, line: bytes) -> None:
        self._file.file.write(line)
        self.requests += 1
        self.bytes += len(line)

    def commit(self) -> None:
        self._file.commit()

    def abort(self) -> None:
        self._file.abort()


def read_results(path: Path) -> Iterator[Optional[BatchResult]]:
    """Each line of a results file (a batch's output or error file, or vllm run-batch's output) as a
    result, None for a line that is none (a torn last line of a run that was killed, say). The file
    is the user's or the provider's: it is read, never cut."""
    return decoded_lines(path, _result_decoder)


# -- dedup keys --------------------------------------------------------------------------------------

KEYS = ("example", "query")


def key_fields(record: Union[Example, ExampleKey], key: str) -> list[Optional[str]]:
    """example: kind + query + positive + negative; query: kind + query."""
    fields: list[Optional[str]] = [record.kind, record.query]
    if key == "example":
        fields += [record.positive, record.negative]
    return fields


def example_digest(record: Union[Example, ExampleKey], key: str = "example") -> bytes:
    """A 16-byte digest of the key: the JSON array of its fields, so no choice of text makes two keys equal."""
    return xxhash.xxh3_128_digest(_encode(key_fields(record, key)))


# -- task files --------------------------------------------------------------------------------------

_NOT_WORD = re.compile(r"[\W_]+")


def task_key(task: str) -> str:
    """What makes two tasks the same one: their words, whatever the case, accents' encoding,
    punctuation and spacing ("Find recipes, for leftovers." is "find recipes for leftovers")."""
    return _NOT_WORD.sub(" ", unicodedata.normalize("NFKC", task).casefold()).strip()



def task_file(tasks_dir: Path, subtype: str) -> "TaskFile":
    return TaskFile(tasks_dir / f"{subtype}.jsonl", subtype)


class TaskFile:
    """One subtype's tasks, one Task a line; locked while a brainstorm appends to it."""

    def __init__(self, path: Path, subtype: str):
        self.path = path
        self.subtype = subtype
        self.lock = Lock(path.with_name(f".{path.name}.lock"), path.with_name(f".{path.name}.owner.json"), str(path))
        self.skipped = 0  # lines of the last read that were not tasks of this subtype's file

    def read(self) -> list[str]:
        """The distinct tasks of the subtype (the first of those with one task_key), in file order;
        [] when there is no file."""
        if self.path.is_dir():
            raise BadInput(f"cannot read tasks file {self.path}: it is a folder")
        if not self.path.exists():
            return []
        seen: dict[str, str] = {}
        self.skipped = 0
        try:
            with open(self.path, "rb") as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        record = _task_decoder.decode(line)
                    except UNDECODABLE:
                        self.skipped += 1
                        continue
                    if record.kind != self.subtype:
                        self.skipped += 1
                    elif record.task.strip():
                        seen.setdefault(task_key(record.task), record.task)
        except OSError as exc:
            raise BadInput(f"cannot read tasks file {self.path}: {exc.strerror or exc}") from None
        return list(seen.values())

    def records(self) -> list[Task]:
        """The records of read()'s tasks, in the same order."""
        texts = self.read()
        if not texts:
            return []
        wanted = set(texts)
        found: dict[str, Task] = {}
        with open(self.path, "rb") as f:
            for line in f:
                try:
                    record = _task_decoder.decode(line)
                except UNDECODABLE:
                    continue
                if record.kind == self.subtype and record.task in wanted:
                    found.setdefault(record.task, record)
        return [found[text] for text in texts]

    def writer(self) -> LineAppender:
        return LineAppender(self.path, _encode)


def tasks_folder(path: Path) -> Path:
    """The folder of task files; BadInput when the path names a file."""
    if path.exists() and not path.is_dir():
        raise BadInput(f"--tasks must be a folder of task files, and {path} is a file")
    return path


# -- a curated folder --------------------------------------------------------------------------------


class Dropped(Example, kw_only=True, omit_defaults=True):
    """An example curation dropped: the example whole, why, and the evidence."""

    reason: str
    evidence: dict[str, Any] = {}


_dropped_decoder = msgspec.json.Decoder(Dropped)


def dropped(example: Example, reason: str, evidence: dict[str, Any]) -> Dropped:
    return Dropped(**msgspec.structs.asdict(example), reason=reason, evidence=evidence)


DROPPED_NAME = "dropped.jsonl"
REPORT_NAME = "report.json"


class DroppedTask(Task, kw_only=True, omit_defaults=True):
    """A task curation dropped, and the kept task it nearly repeats."""

    reason: str
    duplicate_of: str


RELABEL_NAME = "relabel.jsonl"


class Judgement(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The LLM's judgement of an example's retrieved documents (relabelling): one line of relabel.jsonl
    for each example judged, so a rerun asks again only for what is not there.

    Indices are into the documents as the caller listed them (retrieval order), not as shown.
    """

    id: str
    digest: str  # of the task, query and documents judged: a changed candidate is judged again
    grades: list[int] = []  # 0 (unrelated) to 3 (answers fully), one per document
    best: int = -1  # the top-graded document (the positive when it is one of them)
    positive_index: int = -1  # where the example's own positive was
    verdict: str  # kept, relabelled, dropped, or unjudged (never written to the file)
    shown: list[int] = []  # the documents in the order the LLM saw them
    reason: Optional[str] = None  # unjudged: why (the last answer's rejection reason, the request cap)
    detail: str = ""
    model: str = ""
    usage: Optional[Usage] = None  # every answer it took, retries included


_judgement_decoder = msgspec.json.Decoder(Judgement)


def read_judgements(path: Path) -> dict[tuple[str, str], Judgement]:
    """The judgements of a relabel ledger by (id, digest), the last one of each; a torn last line (a
    kill mid-write) is cut off first, and other lines that are no judgement are passed over."""
    found: dict[tuple[str, str], Judgement] = {}
    if not path.exists():
        return found
    for _, judgement in ledger_records(path, _judgement_decoder):
        found[(judgement.id, judgement.digest)] = judgement
    return found


def judgement_writer(path: Path) -> LineAppender:
    return LineAppender(path, _encode)


def write_records(path: Path, records: Iterable[msgspec.Struct]) -> None:
    """A JSONL file of these records, written atomically."""
    write_atomic(path, b"".join(_encode(record) + b"\n" for record in records))


def write_report(path: Path, report: Union[dict[str, Any], msgspec.Struct]) -> None:
    write_atomic(path, pretty_json(report))


class CuratedFolder:
    """What `synthgen curate` writes: the kept examples, the dropped ones and the report, all three
    replaced together at the end (a failed run leaves the folder as it was)."""

    def __init__(self, path: Path):
        self.path = path
        self.examples = path / EXAMPLES_NAME
        self.dropped = path / DROPPED_NAME
        self.report = path / REPORT_NAME

    def open(self) -> "CuratedOutput":
        return CuratedOutput(self)

    def read_report(self) -> Optional[dict[str, Any]]:
        """curate's report.json, or None when the folder has none (it is no curated folder)."""
        if not self.report.is_file():
            return None
        try:
            report = msgspec.json.decode(self.report.read_bytes())
        except (OSError, *UNDECODABLE) as exc:
            raise BadInput(f"cannot read {self.report}: {exc}") from None
        if not isinstance(report, dict):
            raise BadInput(f"{self.report} is not a curate report")
        return report

    def dropped_examples(self) -> Iterator[Dropped]:
        """The dropped examples, in order; a line that is none is passed over (the file is read, never cut)."""
        return records_of(self.dropped, _dropped_decoder) if self.dropped.is_file() else iter(())


class Spool:
    """Examples set aside between two passes, in a temporary file (removed on close): what a stage
    that must see every example before it decides holds instead of the examples themselves. Read in
    order, or one by its number (its line's place is kept: 8 bytes an example, whatever its length)."""

    def __init__(self, folder: Optional[Path] = None):
        """folder: where the file goes (None: the system's temporary folder)."""
        fd, name = tempfile.mkstemp(dir=folder, prefix=".spool.", suffix=".jsonl")
        self.path = Path(name)
        self.file = os.fdopen(fd, "w+b")
        self._ends = array.array("Q")  # where each example's line ends

    def __len__(self) -> int:
        return len(self._ends)

    def add(self, example: Example) -> int:
        """Set the example aside; returns its number."""
        line = _encode(example) + b"\n"
        self.file.write(line)
        self._ends.append((self._ends[-1] if self._ends else 0) + len(line))
        return len(self._ends) - 1

    def __iter__(self) -> Iterator[Example]:
        self.file.flush()
        self.file.seek(0)
        for line in self.file:
            yield decode_example(line)

    def get(self, number: int) -> Example:
        self.file.flush()
        start = self._ends[number - 1] if number else 0
        return decode_example(os.pread(self.file.fileno(), self._ends[number] - start, start))

    def close(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


_Output = TypeVar("_Output", bound="KeptAndDropped")


class KeptAndDropped:
    """The open output of a command that keeps some records and drops others (curate, corpus
    ingest): the folder locked, both files written under temporary names, committed at once with
    the report; on an error, nothing replaced."""

    def __init__(self, folder: Path, command: str, kept: Path, dropped: Path, report: Path):
        self._held = HeldFolder(folder, command)
        self._kept = AtomicFile(kept)
        self._dropped = AtomicFile(dropped)
        self._report = report

    def keep(self, record: msgspec.Struct) -> None:
        self._kept.file.write(_encode(record) + b"\n")

    def keep_line(self, line: bytes) -> None:
        """A record kept as it was read (a line ending in a newline)."""
        self._kept.file.write(line)

    def drop(self, record: msgspec.Struct) -> None:
        self._dropped.file.write(_encode(record) + b"\n")

    def drop_line(self, line: bytes) -> None:
        self._dropped.file.write(line)

    def commit(self, report: Union[dict[str, Any], msgspec.Struct]) -> None:
        self._kept.commit()
        self._dropped.commit()
        write_report(self._report, report)

    def __enter__(self: _Output) -> _Output:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is not None:
            self._kept.abort()
            self._dropped.abort()
        self._held.release()


class CuratedOutput(KeptAndDropped):
    """The open output of one curate run, and the spools its stages hold examples in."""

    def __init__(self, folder: CuratedFolder):
        super().__init__(folder.path, "curate", folder.examples, folder.dropped, folder.report)
        self.folder = folder
        self._spools: list[Spool] = []

    def spool(self) -> Spool:
        self._spools.append(Spool(self.folder.path))
        return self._spools[-1]

    def __exit__(self, kind: object, *exc: object) -> None:
        for spool in self._spools:
            spool.close()
        super().__exit__(kind, *exc)


# -- a corpus: the user's documents as passages (synthgen corpus ingest) --------------------------------

PASSAGES_NAME = "passages.jsonl"


class Passage(msgspec.Struct, kw_only=True):
    """One passage of a user's document: what generate --corpus grounds an example in."""

    id: str  # "<doc_id>-<n>": the document's n-th passage, counting those dropped too (ids stay put)
    doc_id: str
    source: str  # the document's path, relative to the folder ingested (or as given, for a file)
    offset: int  # where the passage starts in the document's text, in characters
    text: str


class DroppedPassage(Passage, kw_only=True):
    """A passage ingest left out, and why: a duplicate (with the kept passage it repeats)."""

    reason: str
    duplicate_of: Optional[str] = None


class CorpusFolder:
    """What `synthgen corpus ingest` writes: passages.jsonl (passages of a document together, the
    documents in path order), dropped.jsonl (passages left out) and manifest.json (the settings,
    the counts, and each file skipped with its reason), replaced together at the end."""

    def __init__(self, path: Path):
        self.path = path
        self.passages = path / PASSAGES_NAME
        self.dropped = path / DROPPED_NAME
        self.manifest = path / MANIFEST_NAME

    def open(self) -> "KeptAndDropped":
        """Passages kept, dropped, and the manifest, written as curate writes its output."""
        return KeptAndDropped(self.path, "corpus ingest", self.passages, self.dropped, self.manifest)

    def index(self) -> "PassageIndex":
        return PassageIndex(self)

    def read_manifest(self) -> dict[str, Any]:
        if not self.passages.is_file() or not self.manifest.is_file():
            raise BadInput(f"{self.path} is not a corpus: run `synthgen corpus ingest DOCS --out {self.path}` first")
        try:
            return dict(msgspec.json.decode(self.manifest.read_bytes()))
        except (*UNDECODABLE, TypeError, ValueError):
            raise BadInput(f"{self.manifest} is not a corpus manifest") from None

    def __iter__(self) -> Iterator[Passage]:
        """The passages in order (the folder must be a corpus)."""
        self.read_manifest()
        decoder = msgspec.json.Decoder(Passage)
        with open(self.passages, "rb") as f:
            for number, line in enumerate(f, 1):
                try:
                    yield decoder.decode(line)
                except UNDECODABLE as exc:
                    raise BadInput(f"{self.passages}:{number}: not a passage ({exc})") from None


class _PassageDocument(msgspec.Struct):
    doc_id: str


class PassageIndex:
    """A corpus's passages by number, for a plan that draws them: where each line starts and where
    each document's passages start (16 bytes a passage at most, whatever its length), and a digest
    of the whole file, which a run's fingerprint holds."""

    def __init__(self, folder: CorpusFolder):
        folder.read_manifest()
        self.path = folder.passages
        self._starts = array.array("Q")
        self._document_starts = array.array("Q")
        hasher = xxhash.xxh3_128()
        decoder = msgspec.json.Decoder(_PassageDocument)
        position, last = 0, None
        with open(self.path, "rb") as f:
            for number, line in enumerate(f):
                hasher.update(line)
                try:
                    doc_id = decoder.decode(line).doc_id
                except UNDECODABLE as exc:
                    raise BadInput(f"{self.path}:{number + 1}: not a passage ({exc})") from None
                if doc_id != last:
                    self._document_starts.append(number)
                    last = doc_id
                self._starts.append(position)
                position += len(line)
        self._starts.append(position)
        self._document_starts.append(len(self))
        self.digest = hasher.hexdigest()
        if not len(self):
            raise BadInput(f"{folder.path} holds no passages")
        self._file = open(self.path, "rb")

    def __len__(self) -> int:
        return len(self._starts) - 1

    @property
    def documents(self) -> int:
        return len(self._document_starts) - 1

    def document_passages(self, document: int) -> range:
        """The numbers of the passages of the document-th document."""
        return range(self._document_starts[document], self._document_starts[document + 1])

    def __iter__(self) -> Iterator[Passage]:
        decoder = msgspec.json.Decoder(Passage)
        with open(self.path, "rb") as f:
            for line in f:
                yield decoder.decode(line)

    def __getitem__(self, number: int) -> Passage:
        start = self._starts[number]
        return msgspec.json.decode(os.pread(self._file.fileno(), self._starts[number + 1] - start, start), type=Passage)

    def close(self) -> None:
        self._file.close()


# -- reading stored examples -------------------------------------------------------------------------

# Files a folder walk passes over: audit trails, not examples.
_NOT_EXAMPLE_FILES = frozenset({REJECTS_NAME, DROPPED_NAME, RELABEL_NAME})


def input_files(paths: Iterable[Path], exclude: Optional[Path] = None) -> list[Path]:
    """The JSONL files named, and those found below the folders named, in a stable order.

    `exclude` (an output file) is passed over in a folder walk; a file named outright is read even
    when it is the output too (it is replaced atomically, after it has been read).
    """
    files: list[Path] = []
    resolved_exclude = exclude.resolve() if exclude else None
    for path in paths:
        if path.is_dir():
            files.extend(sorted(
                p for p in path.rglob("*.jsonl")
                if p.is_file() and p.name not in _NOT_EXAMPLE_FILES and p.resolve() != resolved_exclude
            ))
        elif path.is_file():
            files.append(path)
        else:
            raise BadInput(f"no such file or folder: {path}")
    unique: dict[Path, None] = {}
    for file in files:
        unique.setdefault(file, None)
    return list(unique)


def example_files(paths: Iterable[Path], exclude: Optional[Path] = None) -> list[Path]:
    paths = list(paths)
    files = input_files(paths, exclude=exclude)
    if not files:
        raise BadInput("no JSONL file in " + ", ".join(str(p) for p in paths))
    return files


@dataclass
class ReadCounts:
    files: int = 0
    lines: int = 0
    examples: int = 0
    unreadable: int = 0  # lines that are not JSON (or not UTF-8)
    not_examples: int = 0  # JSON lines that are not stored examples

    def skipped(self) -> str:
        """", unreadable 2, not examples 1" or "" when every line was an example."""
        parts = []
        if self.unreadable:
            parts.append(f"unreadable {self.unreadable}")
        if self.not_examples:
            parts.append(f"not examples {self.not_examples}")
        return "".join(f", {part}" for part in parts)

    def require_examples(self, what: Iterable[Path]) -> None:
        """BadInput when no line of the input was an example: a binary, empty or foreign file."""
        if not self.examples:
            names = ", ".join(str(p) for p in what)
            raise BadInput(f"no stored example in {names} ({self.lines} lines{self.skipped()})")


def read_example_lines(
    files: list[Path], counts: ReadCounts, desc: str = "read", show_progress: bool = False
) -> Iterator[tuple[bytes, Example]]:
    """(raw line ending in a newline, example) for every stored example of the files, in order;
    everything else is counted in `counts`."""
    from tqdm import tqdm

    total = sum(f.stat().st_size for f in files)
    counts.files = len(files)
    with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=None if show_progress else True) as bar:
        for path in files:
            with open(path, "rb") as f:
                for line in f:
                    bar.update(len(line))
                    if not line.strip():
                        continue
                    counts.lines += 1
                    try:
                        example = _example_decoder.decode(line)
                    except msgspec.ValidationError:
                        counts.not_examples += 1
                        continue
                    except (*UNDECODABLE, UnicodeDecodeError):
                        counts.unreadable += 1
                        continue
                    counts.examples += 1
                    yield (line if line.endswith(b"\n") else line + b"\n"), example


def read_examples(
    files: list[Path], counts: ReadCounts, desc: str = "read", show_progress: bool = False
) -> Iterator[Example]:
    """Every stored example of the files, in order; everything else is counted in `counts`."""
    for _, example in read_example_lines(files, counts, desc, show_progress):
        yield example


SYNTHETIC = "synthetic"


def source_of(example: Example) -> str:
    """The source an example came from: imported data names it, synthetic data has none."""
    return example.source or SYNTHETIC


def run_files_beside(path: Path) -> tuple[Optional[Manifest], Optional[Path]]:
    """The manifest (if readable) and the rejects file (if any) of the run folder holding `path`."""
    folder = path if path.is_dir() else path.parent
    run = RunFolder(folder)
    try:
        manifest = run.read_manifest()
    except BadInput:
        manifest = None
    return manifest, (run.rejects if run.rejects.is_file() else None)


def records_of(path: Path, decoder: Any) -> Iterator[Any]:
    """Each line of a file that decodes as the decoder's record; other lines are passed over. For
    reading what another command wrote (a report reads, never cuts a torn line: ledger_records does)."""
    return (record for record in decoded_lines(path, decoder) if record is not None)


def decoded_lines(path: Path, decoder: Any) -> Iterator[Optional[Any]]:
    """Each non-blank line of a file decoded, None for one that is not the decoder's record; read,
    never cut."""
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                yield decoder.decode(line)
            except UNDECODABLE:
                yield None


def read_rejects(path: Path) -> Iterator[Reject]:
    """The rejected answers of a rejects file, in order (lines that are none passed over)."""
    return records_of(path, _reject_decoder)


class _Reason(msgspec.Struct):
    reason: str


_reason_decoder = msgspec.json.Decoder(_Reason)


def reject_reasons(path: Path) -> Iterator[str]:
    """The reason of each line of a rejects file ("unreadable line" for a line that has none)."""
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                yield _reason_decoder.decode(line).reason
            except UNDECODABLE:
                yield "unreadable line"
