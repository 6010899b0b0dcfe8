"""Reading stored examples back: streaming over files and folders, counting what is not an example.

Shared by export and stats. A line that is not JSON, or JSON without the fields of a stored example
(kind, query, positive as strings; negative a string or null), is counted and passed over, as dedup
does: a folder may hold task files, and a killed run may leave a torn last line.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import msgspec
from tqdm import tqdm

from synthgen.store import input_files
from synthgen.errors import BadInput

SYNTHETIC = "synthetic"

_decode = msgspec.json.decode


@dataclass
class ReadCounts:
    files: int = 0
    lines: int = 0
    examples: int = 0
    unreadable: int = 0  # lines that are not JSON
    not_examples: int = 0  # JSON lines without the fields of a stored example

    def skipped(self) -> str:
        """", unreadable 2, not examples 1" or "" when every line was an example."""
        parts = []
        if self.unreadable:
            parts.append(f"unreadable {self.unreadable}")
        if self.not_examples:
            parts.append(f"not examples {self.not_examples}")
        return "".join(f", {part}" for part in parts)


def is_example(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("kind"), str)
        and isinstance(record.get("query"), str)
        and isinstance(record.get("positive"), str)
        and (record.get("negative") is None or isinstance(record.get("negative"), str))
    )


def source_of(record: dict) -> str:
    """The source an example came from: imported data names it, synthetic data has none."""
    source = record.get("source")
    return source if isinstance(source, str) and source else SYNTHETIC


def task_of(record: dict) -> str:
    task = record.get("task")
    return task if isinstance(task, str) else ""


def example_files(paths: Iterable[Path], exclude: Optional[Path] = None) -> list[Path]:
    paths = list(paths)
    files = input_files(paths, exclude=exclude)
    if not files:
        raise BadInput("no JSONL file in " + ", ".join(str(p) for p in paths))
    return files


def read_example_lines(
    files: list[Path], counts: ReadCounts, desc: str = "read", show_progress: bool = False
) -> Iterator[tuple[bytes, dict]]:
    """(raw line ending in a newline, example) for every stored example of the files, in order;
    everything else is counted in `counts`."""
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
                        record = _decode(line)
                    except (msgspec.DecodeError, UnicodeDecodeError):  # not JSON, or not UTF-8
                        counts.unreadable += 1
                        continue
                    if not is_example(record):
                        counts.not_examples += 1
                        continue
                    counts.examples += 1
                    yield (line if line.endswith(b"\n") else line + b"\n"), record


def read_examples(
    files: list[Path], counts: ReadCounts, desc: str = "read", show_progress: bool = False
) -> Iterator[dict]:
    """Every stored example of the files, in order; everything else is counted in `counts`."""
    for _, record in read_example_lines(files, counts, desc, show_progress):
        yield record
