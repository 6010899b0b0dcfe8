"""Exact-string dedup over JSONL files and folders, streaming and on every core.

Memory grows with the number of distinct keys (a 16-byte digest each), never with file size.
Worker processes parse and hash chunks of lines (the costly part); this process keeps the set of
digests and writes the first occurrence of each key, in input order.
"""

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import msgspec
from tqdm import tqdm

from synthgen.errors import BadInput
from synthgen.files import atomic_output
from synthgen.store import KEYS, decode_key, example_digest, hold_output, input_files

CHUNK_BYTES = 4 << 20
# Below this much input, worker processes cost more than they save.
PARALLEL_FROM_BYTES = 64 << 20

OK, UNREADABLE, NOT_EXAMPLE, BLANK = 0, 1, 2, 3
_NO_DIGEST = bytes(16)


@dataclass
class DedupResult:
    files: int = 0
    read: int = 0
    kept: int = 0
    removed: int = 0
    unreadable: int = 0  # lines that are not JSON
    not_examples: int = 0  # JSON lines without the fields of a stored example


def digest_lines(lines: list[bytes], key: str) -> tuple[bytes, bytes]:
    """For each line: its status (OK, UNREADABLE, NOT_EXAMPLE, BLANK) and its key's 16-byte digest."""
    status = bytearray(len(lines))
    digests = []
    for i, line in enumerate(lines):
        if line.isspace():
            status[i] = BLANK
            digests.append(_NO_DIGEST)
            continue
        try:
            record = decode_key(line)
        except msgspec.ValidationError:
            status[i], digest = NOT_EXAMPLE, _NO_DIGEST
        except (msgspec.DecodeError, UnicodeDecodeError):  # not JSON, or not UTF-8
            status[i], digest = UNREADABLE, _NO_DIGEST
        else:
            digest = example_digest(record, key)
        digests.append(digest)
    return bytes(status), b"".join(digests)


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


def _lines(path: Path, start: int, end: int) -> list[bytes]:
    """The lines of a byte range, with their line ends."""
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(end - start).splitlines(keepends=True)


def _first_occurrences(
    lines: list[bytes], status: bytes, digests: bytes, seen: set[bytes], result: DedupResult
) -> list[bytes]:
    """The lines whose key has not been seen yet, adding their keys; counts go to result.

    The usual chunk (every line an example) is done with C-level set and dict operations only:
    at ten million lines a Python loop per line would cost more than parsing them.
    """
    count = len(lines)
    keyed = list(map(digests.__getitem__, map(slice, range(0, 16 * count, 16), range(16, 16 * count + 16, 16))))
    if status.count(OK) == count:
        # Each key's first line: filled from the end, so the earliest index is written last.
        first = dict(zip(reversed(keyed), range(count - 1, -1, -1)))
        fresh = first.keys() - seen
        seen.update(fresh)
        kept = list(map(lines.__getitem__, sorted(map(first.__getitem__, fresh))))
        result.read += count
        result.removed += count - len(kept)
    else:
        kept = []
        for line, state, digest in zip(lines, status, keyed):
            if state == BLANK:
                continue
            result.read += 1
            if state == UNREADABLE:
                result.unreadable += 1
            elif state == NOT_EXAMPLE:
                result.not_examples += 1
            elif digest in seen:
                result.removed += 1
            else:
                seen.add(digest)
                kept.append(line)
    result.kept += len(kept)
    return kept


def _digest_chunk(job: tuple[Path, int, int, str]) -> tuple[bytes, bytes]:
    path, start, end, key = job
    return digest_lines(_lines(path, start, end), key)


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
    pool = multiprocessing.Pool(processes) if processes > 1 else None
    try:
        with hold_output(out, "dedup"), atomic_output(out) as sink, tqdm(
            total=total, unit="B", unit_scale=True, desc="dedup", disable=None if show_progress else True
        ) as bar:
            digested = pool.imap(_digest_chunk, jobs) if pool else map(_digest_chunk, jobs)
            seen: set[bytes] = set()
            for (path, start, end, _), (status, digests) in zip(jobs, digested):
                lines = _lines(path, start, end)
                kept = _first_occurrences(lines, status, digests, seen, result)
                if kept and not kept[-1].endswith(b"\n"):  # a file's last line may lack its newline
                    kept[-1] += b"\n"
                sink.write(b"".join(kept))
                bar.update(end - start)
            if not result.kept:  # nothing was an example: a wrong, empty or binary file; nothing is written
                names = ", ".join(str(f) for f in files)
                raise BadInput(f"no stored example in {names} ({result.read} lines, unreadable {result.unreadable}, "
                               f"not examples {result.not_examples})")
    finally:
        if pool is not None:
            pool.terminate()
    return result
