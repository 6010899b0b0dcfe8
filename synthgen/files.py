"""How synthgen writes a file: whole or not at all (atomic), or line by line (append, torn tail cut).

The store decides what goes in which file; this module only knows bytes, lines and permissions.
Files are created with the user's umask, as any other tool's would be, whether written in place or
through a temporary file (mkstemp alone would make them private).
"""

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from synthgen.errors import BadInput


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


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


class LineAppender:
    """Appends one encoded record a line and flushes it at once: a kill loses at most the line in writing.

    A torn last line (a kill mid-write) is cut off first, so new records never glue onto it.
    """

    def __init__(self, path: Path, encode: Callable[[Any], bytes]):
        path.parent.mkdir(parents=True, exist_ok=True)
        cut_torn_tail(path)
        self._file = open(path, "ab")
        self._encode = encode

    def write(self, record: Any) -> None:
        self._file.write(self._encode(record) + b"\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "LineAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AtomicFile:
    """A binary file written beside `path` under a temporary name: commit() moves it into place,
    abort() removes it. Errors name `path`, never the temporary file."""

    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, self.temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None
        self.file: IO[bytes] = os.fdopen(fd, "wb")

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.chmod(self.temporary, _FILE_MODE)
            os.replace(self.temporary, self.path)
        except OSError as exc:
            self.abort()
            raise BadInput(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def abort(self) -> None:
        self.file.close()
        Path(self.temporary).unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that replaces `path` only if the block ends without an error."""
    target = AtomicFile(path)
    try:
        yield target.file
    except BaseException:
        target.abort()
        raise
    target.commit()


def write_atomic(path: Path, data: bytes) -> None:
    with atomic_output(path) as sink:
        sink.write(data)
