"""JSONL files written whole and flushed line by line, read back tolerating damage."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import jsonlines


def append_writer(path: Path) -> jsonlines.Writer:
    """A writer that appends one compact line per record and flushes it at once.

    A torn last line (a kill mid-write) is cut off first, so new records never glue onto it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    cut_torn_tail(path)
    return jsonlines.Writer(open(path, "a", encoding="utf-8"), compact=True, flush=True)


def cut_torn_tail(path: Path) -> int:
    """Truncate a file after its last newline; returns how many bytes were cut."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        else:
            keep = 0
        if keep < size:
            f.truncate(keep)
        return size - keep


def read_records(path: Path) -> Iterator[Any]:
    """Each line's JSON value, or None for a line that is not JSON (counted by the caller)."""
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError:
                yield None


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace path with data: write a temporary file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
