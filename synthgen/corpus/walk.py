"""Which files corpus ingest reads, in which order, and the name each goes by.

Folders are walked recursively in sorted path order, so the same folder gives the same passages in
the same order. Hidden files and folders (a name starting with a dot) are passed over in a walk,
and files of other formats anywhere; both are counted. A file's name (a passage's `source`) is
its path inside the folder named, or the path as given for a file named outright: it does not
depend on where the command runs or where the folder lives, so neither do the document ids made
from it.
"""

import collections
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from synthgen.corpus.formats import FORMATS
from synthgen.errors import BadInput


@dataclass
class InputFile:
    path: Path
    source: str
    form: str  # a FORMATS value
    size: int


@dataclass
class Inputs:
    files: list[InputFile] = field(default_factory=list)
    hidden: int = 0
    other: collections.Counter = field(default_factory=collections.Counter)  # by name ending
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # folders a walk could not list: (name, why)


def collect(paths: list[Path], exclude: Optional[Path] = None) -> Inputs:
    """The files to read under `paths`; `exclude` (the output folder) is not walked into.
    BadInput for a path that does not exist, or two files that would go by one name."""
    inputs = Inputs()
    output = os.path.realpath(exclude) if exclude is not None else None
    skip = {output} if output is not None else set()  # folders not to walk into
    seen: set[str] = set()  # the real paths of the files taken
    by_source: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            if os.path.realpath(path) == output:
                raise BadInput(f"{path} is the output folder: name the documents' folder")
            found = _walk(path, path, inputs, skip)
        elif path.is_file():
            found = [(path, Path(os.path.normpath(path)).as_posix())]
        elif path.exists():
            raise BadInput(f"{path} is neither a file nor a folder")
        else:
            raise BadInput(f"no such file or folder: {path}")
        for file, source in found:
            form = FORMATS.get(file.suffix.lower())
            if form is None:
                inputs.other[file.suffix.lower() or "(none)"] += 1
                continue
            real = os.path.realpath(file)
            if real in seen:  # named twice (a file, and the folder it is in): read once
                continue
            if source in by_source:
                raise BadInput(f"{by_source[source]} and {file} would both be named {source!r} in the corpus: "
                               "ingest their common parent folder instead")
            seen.add(real)
            by_source[source] = file
            inputs.files.append(InputFile(file, source, form, file.stat().st_size))
    return inputs


def _walk(root: Path, folder: Path, inputs: Inputs, skip: set[str]) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as exc:
        inputs.unreadable.append((_name(root, Path(folder)), exc.strerror or str(exc)))
        return found
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith("."):
            inputs.hidden += 1
        elif entry.is_dir():
            real = os.path.realpath(path)
            if real not in skip:  # the output folder, or a folder a link led back to
                skip.add(real)
                found += _walk(root, path, inputs, skip)
        elif entry.is_file():
            found.append((path, _name(root, path)))
    return found


def _name(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()
