"""Exact-string dedup over JSONL files and folders, streaming and on every core.

Memory grows with the number of distinct keys (a 16-byte digest each), never with file size.
Parser processes read, parse and hash chunks of lines (the costly part), find the repeats inside a
chunk and say where each line ends; owner processes each keep the keys of one share of the digest
space and tell which lines repeat a key of an earlier chunk; this process drops those and writes the
rest of each chunk as it stands, in input order: it never splits a chunk into lines. A chunk's line
ends and numbers travel as numpy arrays, so that no step here costs a Python call a line.
"""

import errno
import itertools
import multiprocessing
import operator
import os
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Callable, Iterator, NamedTuple, Optional, Sequence, Union

import msgspec
import numpy as np
import xxhash
from tqdm import tqdm

from synthgen.errors import BadInput
from synthgen.files import atomic_output
from synthgen.store import KEYS, ExampleKey, hold_output, input_files, key_fields

CHUNK_BYTES = 4 << 20
# Below this much input, worker processes cost more than they save.
PARALLEL_FROM_BYTES = 64 << 20
# Ranges of at least this length on average are copied by the kernel (Output).
KERNEL_COPY_FROM = 4 << 10
# Jobs a worker is given ahead of the one being read: enough to keep it busy, few enough that
# digested chunks never pile up in memory.
AHEAD_PER_PROCESS = 2
# Lines of a chunk parsed in one call when each line is one object (digest_chunk).
LINES_A_PARSE = 1000


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
_UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError)  # not JSON, not UTF-8, or not an example
_NEWLINE, _OPEN, _CLOSE = ord("\n"), ord("{"), ord("}")


@dataclass
class DedupResult:
    files: int = 0
    read: int = 0
    kept: int = 0
    removed: int = 0
    unreadable: int = 0  # lines that are not JSON
    not_examples: int = 0  # JSON lines without the fields of a stored example


class ChunkKeys(NamedTuple):
    """A chunk of lines, digested: what the writer needs to know of it, without its text."""

    keys: list[bytes]  # the 16-byte digest of each key in the chunk, in the order of its first line
    lines: np.ndarray  # the number of that first line in the chunk
    ends: np.ndarray  # where each line ends in the chunk (int64): line i is ends[i - 1]:ends[i]
    read: int  # lines that are not blank
    unreadable: int
    not_examples: int


def _fields_of(key: str) -> Callable[[ExampleKey], tuple]:
    """The key's fields as store.key_fields lists them (store stays the one place that says what a key
    is), as a tuple: it encodes as the same JSON array, so digests are store.example_digest's."""
    names = key_fields(ExampleKey(kind="kind", query="query", positive="positive", negative="negative"), key)
    if tuple(names) == ExampleKey.__struct_fields__:  # every field, in order: astuple, twice as fast
        return msgspec.structs.astuple
    return operator.attrgetter(*names)  # type: ignore[arg-type]


def digest_chunk(data: Union[bytes, bytearray], key: str) -> ChunkKeys:
    """Parse and hash a chunk of whole lines."""
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
            if len(set(digests)) == len(digests):  # no key twice in the chunk (a set is quicker to tell)
                return ChunkKeys(digests, np.arange(len(ends)), ends, len(ends), 0, 0)
            return ChunkKeys(*_first_lines(digests, range(len(digests))), ends, len(ends), 0, 0)
    lines = bytes(data).splitlines(keepends=True)
    numbers, digests = [], []
    blank = unreadable = not_examples = 0
    for number, line in enumerate(lines):
        if line.isspace():
            blank += 1
            continue
        try:
            record = _decode_key(line)
        except msgspec.ValidationError:
            not_examples += 1
        except _UNDECODABLE:
            unreadable += 1
        else:
            numbers.append(number)
            digests.append(xxhash.xxh3_128_digest(_encode(fields(record))))
    ends = np.cumsum(np.fromiter(map(len, lines), np.int64, len(lines)))
    return ChunkKeys(*_first_lines(digests, numbers), ends, len(lines) - blank, unreadable, not_examples)


def _object_line_ends(data: Union[bytes, bytearray]) -> Optional[np.ndarray]:
    """Where each line ends, if the chunk starts with `{` and each line break is a bare \\n between
    a `}` and a `{`; else None.

    Then decode_lines, which cuts values at any JSON whitespace, reads each line as a value of its
    own: a `}`, a \\n and a `{` can follow each other only between two values (in a string the \\n
    would be escaped, in an array or object a comma or colon would stand between), so no value spans
    two lines, and as many values as lines means one a line, the values the lines give one by one.
    """
    if data[:1] != b"{" or b"\r" in data:  # a \r alone ends a line too (bytes.splitlines)
        return None
    buf = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(buf == _NEWLINE)
    if not (buf[newlines - 1] == _CLOSE).all() or not (buf[newlines[:-1] + 1] == _OPEN).all():
        return None
    ends = newlines + 1
    return ends if ends.size and ends[-1] == len(data) else np.append(ends, len(data))  # a last line may lack its newline


def _first_lines(digests: list[bytes], numbers: Sequence[int]) -> tuple[list[bytes], np.ndarray]:
    """Each key's first line: digests and line numbers, in line order."""
    if len(set(digests)) < len(digests):  # a key repeats in the chunk (rarely: a set is quicker to tell)
        # Filled from the end, so each key's earliest position is written last.
        first = dict(zip(reversed(digests), range(len(digests) - 1, -1, -1)))
        positions = sorted(first.values())
        digests, numbers = list(map(digests.__getitem__, positions)), list(map(numbers.__getitem__, positions))
    return digests, np.array(numbers, np.int64)


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


# Each process reads every chunk into this one buffer: a new 4 MB bytes object a chunk costs the
# kernel as much in faulting its pages in as the copy itself.
_chunk = bytearray()


def _read(path: Path, start: int, end: int) -> bytearray:
    """The chunk's bytes, in the process's buffer: valid until the next read, and none may keep a view."""
    size = end - start
    del _chunk[size:]
    _chunk.extend(bytes(size - len(_chunk)))
    with open(path, "rb") as f, memoryview(_chunk) as view:
        read = os.preadv(f.fileno(), [view], start)
    del _chunk[read:]  # the file was cut short since
    return _chunk


def _digest_job(job: tuple[Path, int, int, str]) -> ChunkKeys:
    path, start, end, key = job
    return digest_chunk(_read(path, start, end), key)


def _parse(jobs: Connection, owners: list[Connection]) -> None:
    """A parser: digest each job that comes down the pipe, send each owner its share of the chunk's
    keys, and send back the rest of the ChunkKeys (or the error)."""
    try:
        while (job := jobs.recv()) is not None:
            try:
                chunk = _digest_job(job)
                for owner, share in zip(owners, _shares(chunk, len(owners))):
                    owner.send(share)
                outcome: object = chunk._replace(keys=[])
            except Exception as error:  # the reader hears of it and stops
                outcome = error
            jobs.send(outcome)
    except (EOFError, OSError, KeyboardInterrupt):  # the reader is gone: failed, or stopped by the user
        pass
    finally:
        for owner in owners:
            try:
                owner.send(None)  # the end, however it came
            except OSError:
                pass


def _shares(chunk: ChunkKeys, owners: int) -> list[tuple[list[bytes], np.ndarray]]:
    """The chunk's keys and their line numbers, split among the owners by the first byte of the key."""
    owner = np.frombuffer(b"".join(chunk.keys), np.uint8)[::16] % owners
    shares = []
    for which in range(owners):
        mine = np.flatnonzero(owner == which)
        shares.append((list(map(chunk.keys.__getitem__, mine.tolist())), chunk.lines[mine]))
    return shares


def _own(parsers: list[Connection], writer: Connection) -> None:
    """An owner: the set of the keys of its share, fed a chunk at a time in input order (chunk i by
    parser i % n); it answers each with the line numbers whose key an earlier chunk had."""
    seen: set[bytes] = set()
    try:
        for i in itertools.count():
            share = parsers[i % len(parsers)].recv()
            if share is None:  # the end
                return
            keys, numbers = share
            writer.send(repeats(keys, numbers, seen))
    except (EOFError, OSError, KeyboardInterrupt):  # a parser is gone: failed, or stopped by the user
        pass


def repeats(keys: list[bytes], numbers: np.ndarray, seen: set[bytes]) -> np.ndarray:
    """The numbers of the lines whose key is in `seen`; the keys go into it."""
    # isdisjoint first: a C loop without a call a key; a chunk with no repeat needs nothing more.
    found = None if seen.isdisjoint(keys) else np.fromiter(map(seen.__contains__, keys), bool, len(keys))
    seen.update(keys)
    return numbers[:0] if found is None else numbers[found]


class Workers:
    """Worker processes that parse chunks, and worker processes that own a share of the keys each.

    Job i goes to parser i % n, over a pipe that the calling thread alone feeds and reads. The
    parser sends each owner its share of the chunk's keys (by their first byte); the owner, fed in
    input order, sends back the lines among them whose key an earlier chunk had. So the set of keys,
    the costliest part after parsing (a cache miss a key), is spread over processes too, and each
    holds only its share; this process only cuts and writes. Data flows one way (this process,
    parser, owner, this process), so no two processes ever wait on each other.

    Not multiprocessing.Pool: it reads results in a helper thread that must win the GIL from the
    busy writer for each pipeful of a chunk's keys, and its workers spent more time blocked sending
    than parsing.
    """

    def __init__(self, processes: int):
        """`processes` parsers, and as many owners."""
        self.conns: list[Connection] = []  # to and from each parser
        self.owners: list[Connection] = []  # from each owner
        self.procs: list[multiprocessing.Process] = []
        shares = [[multiprocessing.Pipe(duplex=False) for _ in range(processes)] for _ in range(processes)]
        for which in range(processes):
            ours, theirs = multiprocessing.Pipe(duplex=False)
            self._start(_own, [share[which][0] for share in shares], theirs)
            theirs.close()
            self.owners.append(ours)
        for share in shares:
            ours, theirs = multiprocessing.Pipe()
            self._start(_parse, theirs, [writer for _, writer in share])
            theirs.close()
            self.conns.append(ours)
        for share in shares:  # the children's ends
            for reader, writer in share:
                reader.close()
                writer.close()

    def _start(self, target: Callable, *args: object) -> None:
        proc = multiprocessing.Process(target=target, args=args, daemon=True)
        proc.start()
        self.procs.append(proc)

    def digested(self, jobs: list[tuple[Path, int, int, str]]) -> Iterator[tuple[ChunkKeys, np.ndarray]]:
        """Each job's ChunkKeys (without its keys) and repeated lines, in job order."""
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
            yield outcome, np.concatenate([owner.recv() for owner in self.owners])

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)  # the end: each parser stops, and tells the owners
            except OSError:  # the parser is gone
                pass
        for conn in self.conns + self.owners:
            conn.close()
        for proc in self.procs:
            proc.join(timeout=1)
            if proc.is_alive():  # an error cut the run short: busy with a chunk nobody will read, or waiting
                proc.terminate()
                proc.join()


def _serial(jobs: list[tuple[Path, int, int, str]]) -> Iterator[tuple[ChunkKeys, np.ndarray]]:
    """What Workers.digested gives, in this process."""
    seen: set[bytes] = set()
    for job in jobs:
        chunk = _digest_job(job)
        yield chunk, repeats(chunk.keys, chunk.lines, seen)


def kept_ranges(chunk: ChunkKeys, repeated: np.ndarray) -> tuple[list[tuple[int, int]], int]:
    """The byte ranges of the chunk to write, and how many lines they hold.

    The chunk is written whole but for the lines without a key of their own in it (blank, unreadable,
    not an example, a repeat) and the `repeated` lines, whose key an earlier chunk had: the runs of
    lines between those. numpy passes only: at ten million lines, a Python step a line would cost as
    much as the workers' parsing.
    """
    ends = chunk.ends
    if len(chunk.lines) == len(ends) and not repeated.size:  # every line is kept (almost always)
        return [(0, int(ends[-1]))], len(ends)
    keep = np.zeros(len(ends), bool)
    keep[chunk.lines] = True
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
          processes: Optional[int] = None, chunk_bytes: int = CHUNK_BYTES) -> DedupResult:
    if key not in KEYS:
        raise BadInput(f"--key must be one of {', '.join(KEYS)}")
    files = input_files(paths, exclude=out)
    if not files:
        raise BadInput("no JSONL file in " + ", ".join(str(p) for p in paths))
    result = DedupResult(files=len(files))
    total = sum(f.stat().st_size for f in files)
    jobs = [(file, start, end, key) for file in files for start, end in chunks(file, chunk_bytes)]
    if processes is None:
        processes = (os.cpu_count() or 1) if total >= PARALLEL_FROM_BYTES else 1
    workers = Workers(processes) if processes > 1 else None
    try:
        with hold_output(out, "dedup"), atomic_output(out) as sink, tqdm(
            total=total, unit="B", unit_scale=True, desc="dedup", disable=None if show_progress else True
        ) as bar:
            digested = workers.digested(jobs) if workers else _serial(jobs)
            output = Output(sink)
            for (path, start, end, _), (chunk, repeated) in zip(jobs, digested):
                ranges, kept = kept_ranges(chunk, repeated)
                result.read += chunk.read
                result.unreadable += chunk.unreadable
                result.not_examples += chunk.not_examples
                result.kept += kept
                result.removed += chunk.read - chunk.unreadable - chunk.not_examples - kept
                if ranges:
                    output.write(path, start, ranges)
                bar.update(end - start)
            if not result.kept:  # nothing was an example: a wrong, empty or binary file; nothing is written
                names = ", ".join(str(f) for f in files)
                raise BadInput(f"no stored example in {names} ({result.read} lines, unreadable {result.unreadable}, "
                               f"not examples {result.not_examples})")
    finally:
        if workers is not None:
            workers.close()
        _chunk.clear()  # read here when there are no workers
    return result
