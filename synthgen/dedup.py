"""Exact-string dedup over JSONL files and folders, streaming.

Memory grows with the number of distinct keys (a 16-byte digest each), never with file size.
"""

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from tqdm import tqdm

from synthgen.errors import BadInput

KEYS = ("example", "query")
# Files a folder walk passes over: audit trails, not examples.
SKIPPED_NAMES = frozenset({"rejects.jsonl"})
_KEY_FIELDS = {"example": ("kind", "query", "positive", "negative"), "query": ("kind", "query")}


@dataclass
class DedupResult:
    files: int = 0
    read: int = 0
    kept: int = 0
    removed: int = 0
    unreadable: int = 0  # lines that are not JSON
    not_examples: int = 0  # JSON lines without the fields of a stored example


def input_files(paths: Iterable[Path], exclude: Optional[Path] = None) -> list[Path]:
    """The JSONL files named, and those found below the folders named, in a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.jsonl") if p.is_file() and p.name not in SKIPPED_NAMES)
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise BadInput(f"no such file or folder: {path}")
    resolved_exclude = exclude.resolve() if exclude else None
    unique: dict[Path, None] = {}
    for file in files:
        if file.resolve() != resolved_exclude:
            unique.setdefault(file, None)
    return list(unique)


def key_of(record: Any, key: str) -> Optional[bytes]:
    """The record's dedup key as bytes, or None when it is not a stored example.

    Each field is length-prefixed, so no choice of text can make two different records collide.
    """
    if not isinstance(record, dict):
        return None
    parts = []
    for name in _KEY_FIELDS[key]:
        value = record.get(name)
        if value is None and name == "negative":
            parts.append("-")
            continue
        if not isinstance(value, str):
            return None
        parts.append(f"{len(value)}:{value}")
    return "|".join(parts).encode("utf-8", "surrogatepass")


def dedup(paths: list[Path], out: Path, key: str = "example", show_progress: bool = True) -> DedupResult:
    if key not in KEYS:
        raise BadInput(f"--key must be one of {', '.join(KEYS)}")
    files = input_files(paths, exclude=out)
    if not files:
        raise BadInput("no JSONL file in " + ", ".join(str(p) for p in paths))
    result = DedupResult(files=len(files))
    seen: set[bytes] = set()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    total = sum(f.stat().st_size for f in files)
    try:
        with os.fdopen(fd, "wb") as sink, tqdm(
            total=total, unit="B", unit_scale=True, desc="dedup", disable=None if show_progress else True
        ) as bar:
            for file in files:
                with open(file, "rb") as source:
                    pending = 0
                    for line in source:
                        pending += len(line)
                        if not line.strip():
                            continue
                        result.read += 1
                        try:
                            record = json.loads(line)
                        except ValueError:
                            result.unreadable += 1
                            continue
                        raw_key = key_of(record, key)
                        if raw_key is None:
                            result.not_examples += 1
                            continue
                        digest = hashlib.blake2b(raw_key, digest_size=16).digest()
                        if digest in seen:
                            result.removed += 1
                            continue
                        seen.add(digest)
                        result.kept += 1
                        sink.write(line if line.endswith(b"\n") else line + b"\n")
                        if pending >= 1 << 20:
                            bar.update(pending)
                            pending = 0
                    bar.update(pending)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return result
