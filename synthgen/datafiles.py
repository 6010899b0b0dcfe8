"""Strict readers of public data files: JSON lines (or one JSON array), TSV and CSV.

Shared by `import` and the BEIR reader. Unlike the stored-example readers, which pass over a damaged
line and count it, these end the read at the first fault with one line naming the file and line.
"""

import csv
import json
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import msgspec
from tqdm import tqdm

from synthgen.errors import UNDECODABLE, BadInput


def where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def _bar(path: Path, progress: bool) -> tqdm:
    """A progress bar over a file's bytes (shown on a terminal only)."""
    return tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name,
                disable=None if progress else True)


def json_rows(path: Path, progress: bool = False) -> Iterator[tuple[int, Any]]:
    """(line number, value) of a JSONL file, or of a .json file holding one array of objects."""
    try:
        f = open(path, "rb")
    except IsADirectoryError:
        raise BadInput(f"{path} is a folder, not a file") from None
    with f, _bar(path, progress) as bar:
        head = f.read(4096).lstrip()
        f.seek(0)
        if head.startswith(b"\xef\xbb\xbf"):
            head = head[3:].lstrip()
        if path.suffix.lower() == ".json" and head.startswith(b"["):  # one array (MEDI ships so): read whole
            try:
                rows = json.loads(f.read().decode("utf-8-sig"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise BadInput(f"{path} is not JSON: {exc}") from None
            for number, row in enumerate(rows, 1):
                yield number, row
            return
        for number, line in enumerate(f, 1):
            bar.update(len(line))
            if not line.strip():
                continue
            try:
                yield number, msgspec.json.decode(line.removeprefix(b"\xef\xbb\xbf") if number == 1 else line)
            except (*UNDECODABLE, UnicodeDecodeError) as exc:
                raise BadInput(f"{where(path, number)}: not a JSON line ({exc})") from None


def json_object(path: Path, number: int, row: Any) -> dict:
    if not isinstance(row, dict):
        raise BadInput(f"{where(path, number)}: expected a JSON object, got {type(row).__name__}")
    return row


def table_rows(path: Path, delimiter: str, header: bool, progress: bool = False) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column name: value}) of a TSV or CSV file; without a header the names are "0", "1", ..."""
    csv.field_size_limit(sys.maxsize)
    try:
        f = open(path, encoding="utf-8-sig", newline="")
    except IsADirectoryError:
        raise BadInput(f"{path} is a folder, not a file") from None

    def counted(lines: Iterator[str]) -> Iterator[str]:
        for line in lines:
            bar.update(len(line.encode("utf-8", "surrogatepass")))
            yield line

    with f, _bar(path, progress) as bar:
        # TSV files (MS MARCO and the like) hold quotes in their text: no quoting there.
        if delimiter == "\t":
            reader = csv.reader(counted(f), delimiter=delimiter, quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(counted(f), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
        names: Optional[list[str]] = None
        try:
            for values in reader:
                number = reader.line_num
                if not values or all(not v.strip() for v in values):
                    continue
                if names is None:
                    if header:
                        names = [v.strip() for v in values]
                        continue
                    names = [str(i) for i in range(len(values))]
                if len(values) != len(names):
                    raise BadInput(f"{where(path, number)}: {len(values)} columns where the "
                                   f"{'header has' if header else 'first row has'} {len(names)}")
                yield number, dict(zip(names, values))
        except UnicodeDecodeError:
            raise BadInput(f"{path} is not UTF-8 text") from None
        except csv.Error as exc:
            raise BadInput(f"{where(path, reader.line_num)}: {exc}") from None
