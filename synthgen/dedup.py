"""Exact-string dedup over JSONL files and folders, streaming and on every core.

Memory grows with the number of distinct keys (a 16-byte digest each), never with file size.
Parser processes read chunks of lines and digest each line's key (the costly part: compiled where it
could be built, synthgen/_dedup_native.c, else msgspec) and say where each line ends; this process
keeps the digests seen, drops the lines that repeat a key and writes the rest of each chunk as it
stands, in input order: it never splits a chunk into lines. A chunk's digests travel as one bytes
object and its line ends and numbers as numpy arrays, so that no step here costs a Python call a line.
"""

import errno
import mmap
import multiprocessing
import operator
import os
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, NamedTuple, Optional, Sequence, Union

import msgspec
import numpy as np
import xxhash
from tqdm import tqdm

from synthgen.errors import UNDECODABLE, BadInput
from synthgen.files import atomic_output
from synthgen.native import dedup_native as native
from synthgen.seen_digests import seen_digests
from synthgen.store import KEYS, ExampleKey, hold_output, input_files, key_fields

CHUNK_BYTES = 4 << 20
# Below this much input, worker processes cost more than they save.
PARALLEL_FROM_BYTES = 64 << 20
# Ranges of at least this length on average are copied by the kernel (Output).
KERNEL_COPY_FROM = 4 << 10
# Jobs a worker is given ahead of the one being read: enough to keep it busy, few enough that
# digested chunks never pile up in memory.
AHEAD_PER_PROCESS = 6
# Lines of a chunk parsed in one msgspec call when each line is one object (the pure-Python path).
LINES_A_PARSE = 1000


Chunk = Union[bytes, bytearray, memoryview]  # whole lines


class _Key(ExampleKey, gc=False):
    """ExampleKey, unseen by the garbage collector (it holds only strings, so it can be in no cycle):
    the collector would otherwise walk a chunk's sixteen thousand of them again and again."""


# The decoders' and the encoder's own methods, called per line from C (map): a Python wrapper around
# them would cost a frame per line, as much as the parse itself.
_decode_key = msgspec.json.Decoder(_Key).decode
_decode_lines = msgspec.json.Decoder(_Key).decode_lines
_encode = msgspec.json.Encoder().encode
# What copy_file_range answers where it cannot copy between these two files.
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}
# Not JSON, not UTF-8, nested past msgspec's depth, or not an example.
_UNDECODABLE = (*UNDECODABLE, UnicodeDecodeError)
_NEWLINE, _RETURN, _OPEN, _CLOSE = ord("\n"), ord("\r"), ord("{"), ord("}")


@dataclass
class DedupResult:
    files: int = 0
    read: int = 0
    kept: int = 0
    removed: int = 0
    unreadable: int = 0  # lines that are not JSON
    not_examples: int = 0  # JSON lines without the fields of a stored example


class Job(NamedTuple):
    path: Path
    start: int
    end: int
    key: str
    compiled: bool  # digested by the compiled module (else msgspec)


class ChunkKeys(NamedTuple):
    """A chunk of lines, digested: what the writer needs to know of it, without its text."""

    digests: bytes  # the 16-byte digest of each example's key, in line order
    lines: Optional[np.ndarray]  # the number of the line each digest is of; None: one a line, every line
    ends: np.ndarray  # where each line ends in the chunk: line i is ends[i - 1]:ends[i]
    read: int  # lines that are not blank
    unreadable: int
    not_examples: int

    @classmethod
    def of(cls, digests: bytes, lines: np.ndarray, ends: np.ndarray, read: int, unreadable: int = 0,
           not_examples: int = 0) -> "ChunkKeys":
        """Packed small for the pipe to the writer: no line numbers where every line has a digest (the
        usual case), line ends as int32 where they fit."""
        packed_lines = None if len(lines) == len(ends) else lines  # line numbers ascend: then 0, 1, 2, ...
        packed_ends = ends.astype(np.int32) if ends.size and ends[-1] < 2**31 else ends
        return cls(digests, packed_lines, packed_ends, read, unreadable, not_examples)


def _field_names(key: str) -> list[str]:
    """The key's fields as store.key_fields lists them (store stays the one place that says what a key is)."""
    return key_fields(ExampleKey(kind="kind", query="query", positive="positive", negative="negative"), key)  # type: ignore[return-value]


def _fields_of(key: str) -> Callable[[ExampleKey], tuple]:
    """The key's fields as a tuple: it encodes as the same JSON array, so digests are store.example_digest's."""
    names = _field_names(key)
    if tuple(names) == ExampleKey.__struct_fields__:  # every field, in order: astuple, twice as fast
        return msgspec.structs.astuple
    return operator.attrgetter(*names)  # type: ignore[arg-type]


def canonical_key(values: Sequence[Optional[str]]) -> bytes:
    """The bytes the compiled path digests a key's field values from: per field 0x00 for null, or 0x01,
    the UTF-8 length as 8 bytes little-endian and the UTF-8 text (no text makes two keys alike).
    _dedup_native.c writes the same bytes; the pure-Python path digests msgspec's JSON of the values
    instead, as quick there (one run never mixes the two)."""
    parts = []
    for value in values:
        if value is None:
            parts.append(b"\x00")
        else:
            text = value.encode("utf-8", "surrogatepass")
            parts.append(b"\x01" + len(text).to_bytes(8, "little") + text)
    return b"".join(parts)


def digest_chunk(data: Chunk, key: str, compiled: bool) -> ChunkKeys:
    """Split a chunk of whole lines and digest each example's key: with the compiled module, or msgspec."""
    return _compiled_chunk(data, key) if compiled else _python_chunk(data, key)


def _compiled_chunk(data: Chunk, key: str) -> ChunkKeys:
    """The compiled scan digests every line it is sure of; msgspec reads the others (rare: a field
    written twice, a lone surrogate, a line that is not JSON or not an example), each as the pure-Python
    path would, so that both paths keep the same lines."""
    names = _field_names(key)
    if tuple(names) != ExampleKey.__struct_fields__[:len(names)]:  # the scan takes the first fields, in order
        raise ValueError(f"the {key} key is not the first fields of ExampleKey")
    found, numbers, digests, left, blank = native.scan(data, len(names))  # type: ignore[union-attr]
    ends, lines = np.frombuffer(found, np.int64), np.frombuffer(numbers, np.int64)
    unreadable = not_examples = 0
    if left:
        fields = operator.attrgetter(*names)
        numbered = ((n, data[ends[n - 1] if n else 0:ends[n]]) for n in np.frombuffer(left, np.int64).tolist())
        more_lines, more_digests, unreadable, not_examples = _read_one_by_one(
            numbered, lambda record: native.digest(canonical_key(fields(record))))  # type: ignore[union-attr]
        if more_lines:  # into line order
            order = np.argsort(np.concatenate([lines, more_lines]), kind="stable")
            lines = np.concatenate([lines, more_lines])[order]
            digests = np.frombuffer(digests + b"".join(more_digests), "V16")[order].tobytes()
    return ChunkKeys.of(digests, lines, ends, len(ends) - blank, unreadable, not_examples)


def _python_chunk(data: Chunk, key: str) -> ChunkKeys:
    fields = _fields_of(key)
    ends = _object_line_ends(data)
    if ends is not None:  # one object a line (almost always): parsed a thousand lines a C call
        # A thousand lines' records (a quarter of a megabyte) stay in the cache while they are hashed;
        # a whole chunk's would not.
        bounds = [0, *ends[LINES_A_PARSE - 1:-1:LINES_A_PARSE].tolist(), len(data)]
        digests: list[bytes] = []
        try:
            with memoryview(data) as view:
                for start, end in zip(bounds, bounds[1:]):
                    records = _decode_lines(view[start:end])
                    digests += map(xxhash.xxh3_128_digest, map(_encode, map(fields, records)))
        except _UNDECODABLE:  # a torn line or one that is not an example: looked at one by one
            digests = []
        if len(digests) == len(ends):  # each line holds a value at least: as many as lines, one each
            return ChunkKeys.of(b"".join(digests), np.arange(len(ends)), ends, len(ends))
    lines = bytes(data).splitlines(keepends=True)
    numbered = [(number, line) for number, line in enumerate(lines) if not line.isspace()]
    numbers, digests, unreadable, not_examples = _read_one_by_one(
        numbered, lambda record: xxhash.xxh3_128_digest(_encode(fields(record))))
    ends = np.cumsum(np.fromiter(map(len, lines), np.int64, len(lines)))
    return ChunkKeys.of(b"".join(digests), np.array(numbers, np.int64), ends, len(numbered), unreadable, not_examples)


def _read_one_by_one(numbered: Iterable[tuple[int, Chunk]], digest: Callable[[_Key], bytes]
                     ) -> tuple[list[int], list[bytes], int, int]:
    """msgspec reads each (number, line), as the rule has it: the numbers and digests of the examples'
    lines, and how many lines were unreadable and how many not examples."""
    numbers, digests = [], []
    unreadable = not_examples = 0
    for number, line in numbered:
        try:
            record = _decode_key(line)
        except msgspec.ValidationError:
            not_examples += 1
        except _UNDECODABLE:
            unreadable += 1
        else:
            numbers.append(number)
            digests.append(digest(record))
    return numbers, digests, unreadable, not_examples


def _object_line_ends(data: Chunk) -> Optional[np.ndarray]:
    """Where each line ends, if the chunk starts with `{` and each line break is a bare \\n between
    a `}` and a `{`; else None.

    Then decode_lines, which cuts values at any JSON whitespace, reads each line as a value of its
    own: a `}`, a \\n and a `{` can follow each other only between two values (in a string the \\n
    would be escaped, in an array or object a comma or colon would stand between), so no value spans
    two lines, and as many values as lines means one a line, the values the lines give one by one.
    """
    buf = np.frombuffer(data, np.uint8)
    if data[:1] != b"{" or (buf == _RETURN).any():  # a \r alone ends a line too (bytes.splitlines)
        return None
    newlines = np.flatnonzero(buf == _NEWLINE)
    if not (buf[newlines - 1] == _CLOSE).all() or not (buf[newlines[:-1] + 1] == _OPEN).all():
        return None
    ends = newlines + 1
    return ends if ends.size and ends[-1] == len(data) else np.append(ends, len(data))  # a last line may lack its newline


def chunks(path: Path, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) byte ranges of about `size` that begin and end on line boundaries."""
    total = path.stat().st_size
    with open(path, "rb") as f:
        start = 0
        while start < total:
            f.seek(min(start + size, total))
            f.readline()
            end = min(f.tell(), total)
            yield start, end
            start = end


class _Mapped:
    """The file this process reads chunks of, mapped into memory: the chunks are read where the page
    cache holds them, not copied out first (that copy cost the parsers as much as the compiled scan)."""

    path: Optional[Path] = None
    view: Optional[memoryview] = None
    map: Optional[mmap.mmap] = None

    @classmethod
    def chunk(cls, path: Path, start: int, end: int) -> memoryview:
        """The chunk's bytes: valid until the next file is read."""
        if path != cls.path:
            cls.close()
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size:  # an empty file cannot be mapped
                    cls.map = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
                    cls.view = memoryview(cls.map)
            cls.path = path
        if cls.view is None or end > len(cls.view):
            raise BadInput(f"{path} was cut short while dedup read it")
        return cls.view[start:end]

    @classmethod
    def done(cls, start: int, end: int) -> None:
        """The chunk is digested: its pages leave this process (the page cache keeps them), so that its
        memory stays a chunk or two, not the file."""
        if cls.map is not None and hasattr(mmap, "MADV_DONTNEED"):
            start -= start % mmap.PAGESIZE
            cls.map.madvise(mmap.MADV_DONTNEED, start, end - start)

    @classmethod
    def close(cls) -> None:
        if cls.view is not None:
            cls.view.release()
        if cls.map is not None:
            cls.map.close()
        cls.path = cls.view = cls.map = None


def _digest_job(job: Job) -> ChunkKeys:
    with _Mapped.chunk(job.path, job.start, job.end) as chunk:
        digested = digest_chunk(chunk, job.key, job.compiled)
    _Mapped.done(job.start, job.end)
    return digested


def _parse(jobs: Connection) -> None:
    """A parser: digest each job that comes down the pipe and send back its ChunkKeys (or the error)."""
    try:
        while (job := jobs.recv()) is not None:
            try:
                outcome: object = _digest_job(job)
            except Exception as error:  # the reader hears of it and stops
                outcome = error
            jobs.send(outcome)
    except (EOFError, OSError, KeyboardInterrupt):  # the reader is gone: failed, or stopped by the user
        pass


class Workers:
    """Worker processes that digest chunks: job i goes to worker i % n, over a pipe that the calling
    thread alone feeds and reads, so results come back in job order.

    Not multiprocessing.Pool: it reads results in a helper thread that must win the GIL from the busy
    writer for each chunk's digests, and its workers spent more time blocked sending than parsing.
    """

    def __init__(self, processes: int):
        self.conns: list[Connection] = []
        self.procs: list[multiprocessing.Process] = []
        for _ in range(processes):
            ours, theirs = multiprocessing.Pipe()
            proc = multiprocessing.Process(target=_parse, args=(theirs,), daemon=True)
            proc.start()
            theirs.close()
            self.conns.append(ours)
            self.procs.append(proc)

    def digested(self, jobs: list[Job]) -> Iterator[ChunkKeys]:
        """Each job's ChunkKeys, in job order."""
        n = len(self.conns)
        ahead = AHEAD_PER_PROCESS * n
        for i, job in enumerate(jobs[:ahead]):
            self.conns[i % n].send(job)
        for i in range(len(jobs)):
            conn = self.conns[i % n]
            outcome = conn.recv()
            if i + ahead < len(jobs):
                conn.send(jobs[i + ahead])
            if isinstance(outcome, Exception):
                raise outcome
            yield outcome

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)  # the end
            except OSError:  # the worker is gone
                pass
            conn.close()
        for proc in self.procs:
            proc.join(timeout=1)
            if proc.is_alive():  # an error cut the run short: busy with a chunk nobody will read
                proc.terminate()
                proc.join()


def kept_ranges(chunk: ChunkKeys, repeated: np.ndarray) -> tuple[list[tuple[int, int]], int]:
    """The byte ranges of the chunk to write, and how many lines they hold.

    The chunk is written whole but for the lines without a key (blank, unreadable, not an example)
    and the `repeated` lines, whose key an earlier line had: the runs of lines between those. numpy
    passes only: at ten million lines, a Python step a line would cost as much as the parsing.
    """
    ends = chunk.ends
    if chunk.lines is None and not repeated.size:  # every line is kept (almost always)
        return [(0, int(ends[-1]))], len(ends)
    keep = np.zeros(len(ends), bool)
    keep[slice(None) if chunk.lines is None else chunk.lines] = True
    keep[repeated] = False
    kept = np.flatnonzero(keep)
    if not kept.size:
        return [], 0
    # Runs of consecutive line numbers, each written as one range: from its first line's start (the
    # end of the line before it) to its last line's end.
    breaks = np.flatnonzero(np.diff(kept) != 1)
    first, last = kept[np.concatenate(([0], breaks + 1))], kept[np.concatenate((breaks, [kept.size - 1]))]
    starts = np.where(first > 0, ends[first - 1], 0)
    return list(zip(starts.tolist(), ends[last].tolist())), int(kept.size)


class Output:
    """The output file, written from byte ranges of the input files, in the order given.

    Long ranges are copied by the kernel, page cache to page cache, never through this process
    (copy_file_range, Linux): several times quicker than reading and writing them. A call costs
    about what reading and writing 3 KB does, so short ranges are read and written; so is
    everything where the kernel cannot copy (another file system, another OS).
    """

    def __init__(self, sink: IO[bytes]):
        self.sink = sink
        self.kernel_copy = hasattr(os, "copy_file_range")

    def write(self, path: Path, start: int, ranges: list[tuple[int, int]]) -> None:
        """Write the byte ranges (from `start`) of `path`, then a newline if the last one lacks it."""
        last = start + ranges[-1][1] - 1  # the last byte written
        with open(path, "rb") as f:
            fd = f.fileno()
            if self.kernel_copy and sum(b - a for a, b in ranges) >= KERNEL_COPY_FROM * len(ranges):
                ranges = self._copy(fd, start, ranges)
            if ranges:
                first = ranges[0][0]
                data = memoryview(os.pread(fd, ranges[-1][1] - first, start + first))
                self.sink.write(b"".join([data[a - first:b - first] for a, b in ranges]))
            if os.pread(fd, 1, last) != b"\n":  # a file's last line may lack its newline
                self.sink.write(b"\n")
        self.sink.flush()  # the sink's buffer stays empty between writes: the kernel's copies go after it

    def _copy(self, fd: int, start: int, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Copy the ranges in the kernel; returns what is left to write where it cannot."""
        self.sink.flush()
        out = self.sink.fileno()
        for i, (a, b) in enumerate(ranges):
            while a < b:
                try:
                    copied = os.copy_file_range(fd, out, b - a, start + a)
                except OSError as error:
                    if error.errno not in _NO_KERNEL_COPY:
                        raise
                    self.kernel_copy = False
                    copied = 0
                if not copied:  # nothing was copied (or the file ended early): write the rest
                    return [(a, b), *ranges[i + 1:]]
                a += copied
        return []


def dedup(paths: list[Path], out: Path, key: str = "example", show_progress: bool = True,
          processes: Optional[int] = None, chunk_bytes: int = CHUNK_BYTES,
          compiled: Optional[bool] = None) -> DedupResult:
    """Keep the first line of each key. `compiled`: digest and keep the keys with the compiled module
    (the default where it was built) or in pure Python (the same output)."""
    if key not in KEYS:
        raise BadInput(f"--key must be one of {', '.join(KEYS)}")
    files = input_files(paths, exclude=out)
    if not files:
        raise BadInput("no JSONL file in " + ", ".join(str(p) for p in paths))
    if compiled is None:
        compiled = native is not None
    result = DedupResult(files=len(files))
    total = sum(f.stat().st_size for f in files)
    jobs = [Job(file, start, end, key, compiled) for file in files for start, end in chunks(file, chunk_bytes)]
    if processes is None:
        processes = (os.cpu_count() or 1) if total >= PARALLEL_FROM_BYTES else 1
    workers = Workers(processes) if processes > 1 else None
    seen = seen_digests(compiled)
    try:
        with hold_output(out, "dedup"), atomic_output(out) as sink, tqdm(
            total=total, unit="B", unit_scale=True, desc="dedup", disable=None if show_progress else True
        ) as bar:
            digested = workers.digested(jobs) if workers else map(_digest_job, jobs)
            output = Output(sink)
            for job, chunk in zip(jobs, digested):
                repeats = seen.repeats(chunk.digests)
                ranges, kept = kept_ranges(chunk, repeats if chunk.lines is None else chunk.lines[repeats])
                result.read += chunk.read
                result.unreadable += chunk.unreadable
                result.not_examples += chunk.not_examples
                result.kept += kept
                result.removed += chunk.read - chunk.unreadable - chunk.not_examples - kept
                if ranges:
                    output.write(job.path, job.start, ranges)
                bar.update(job.end - job.start)
            if not result.kept:  # nothing was an example: a wrong, empty or binary file; nothing is written
                names = ", ".join(str(f) for f in files)
                raise BadInput(f"no stored example in {names} ({result.read} lines, unreadable {result.unreadable}, "
                               f"not examples {result.not_examples})")
    finally:
        if workers is not None:
            workers.close()
        _Mapped.close()  # read here when there are no workers
    return result
