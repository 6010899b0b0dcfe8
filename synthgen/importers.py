"""Public data -> synthgen's stored example, so that it can be deduplicated, exported and mixed.

Formats:
- pairs: JSONL, TSV or CSV with query / positive / (negative) columns named by the caller; a TSV
  or CSV without a header row names its columns by position ("0", "1", "2").
- beir: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv); every qrels row with a
  score above 0 is a (query, positive) pair; a document the same query has judged at 0 or below
  (the first in qrels order) is its negative.
- medi: Instructor's layout, {"query": [instruction, text], "pos": [..], "neg": [..], "task_name"}.
- flagembedding: {"query", "pos": [..], "neg": [..], "prompt"}: one example per positive.
medi and flagembedding read what `synthgen export` writes, so import(export(x)) gives x back.

An imported example has the stored example's fields (design.md §3) with model "imported", no
placeholders, seed null (nothing was sampled), raw the source row, and `source`, the name that
`export --mix` and `stats` count by. Rows that cannot be read end the import with one line naming
the file and line; nothing is written then.
"""

import csv
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import msgspec
from tqdm import tqdm

from synthgen.errors import BadInput
from synthgen.kinds import KINDS
from synthgen.names import IMPORT_FORMATS

IMPORTED_MODEL = "imported"
DEFAULT_KIND = "short-long"
DEFAULT_LANGUAGE = "unknown"

_encode = msgspec.json.Encoder().encode


@dataclass
class Pair:
    """One example as a source gives it, before it becomes a stored example."""

    query: str
    positive: str
    negative: Optional[str]
    raw: Any
    task: Optional[str] = None  # the row's own instruction (medi, flagembedding)
    kind: Optional[str] = None  # the row's own kind (medi's task_name when it names one)
    line: int = 0  # where the row is in its file


@dataclass
class ImportResult:
    format: str
    source: str
    out: Path
    rows: int = 0  # rows read from the source
    written: int = 0
    with_negative: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class Fields:
    query: Optional[str] = None
    positive: Optional[str] = None
    negative: Optional[str] = None


def _text(value: Any) -> Optional[str]:
    """A non-empty string, or None."""
    if isinstance(value, str) and value.strip():
        return value
    return None


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


# -- JSON lines --------------------------------------------------------------------------------


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
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                raise BadInput(f"{_where(path, number)}: not a JSON line ({exc})") from None


def _object(path: Path, number: int, row: Any) -> dict:
    if not isinstance(row, dict):
        raise BadInput(f"{_where(path, number)}: expected a JSON object, got {type(row).__name__}")
    return row


# -- pairs -------------------------------------------------------------------------------------


def table_rows(path: Path, delimiter: str, header: bool, progress: bool = False) -> Iterator[tuple[int, dict[str, str]]]:
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
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        reader = csv.reader(counted(f), delimiter=delimiter, quoting=quoting)
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
                    raise BadInput(f"{_where(path, number)}: {len(values)} columns where the "
                                   f"{'header has' if header else 'first row has'} {len(names)}")
                yield number, dict(zip(names, values))
        except UnicodeDecodeError:
            raise BadInput(f"{path} is not UTF-8 text") from None
        except csv.Error as exc:
            raise BadInput(f"{_where(path, reader.line_num)}: {exc}") from None


def read_pairs(path: Path, fields: Fields, header: bool = True, progress: bool = False) -> Iterator[Pair]:
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab", ".csv"):
        positional = not header
        rows: Iterator[tuple[int, Any]] = table_rows(path, "," if suffix == ".csv" else "\t", header, progress)
    else:
        positional = False
        if not header:
            raise BadInput("--no-header is for TSV and CSV files; a JSONL row names its fields")
        rows = json_rows(path, progress)
    query_field = fields.query or ("0" if positional else "query")
    positive_field = fields.positive or ("1" if positional else "positive")
    negative_field = fields.negative or ("2" if positional else "negative")
    for number, row in rows:
        row = _object(path, number, row)
        texts = {}
        for role, name in (("query", query_field), ("positive", positive_field)):
            if name not in row:
                have = ", ".join(map(str, list(row)[:8]))
                raise BadInput(f"{_where(path, number)}: no {role} field {name!r} (the row has: {have}); "
                               f"name it with --{role}-field")
            texts[role] = _text(row[name])
            if texts[role] is None:
                raise BadInput(f"{_where(path, number)}: the {role} field {name!r} is empty or not text")
        negative = row.get(negative_field)
        if negative is not None and not isinstance(negative, str):
            raise BadInput(f"{_where(path, number)}: the negative field {negative_field!r} is not text")
        yield Pair(texts["query"], texts["positive"], _text(negative), row, line=number)


# -- BEIR --------------------------------------------------------------------------------------


def qrels_file(folder: Path, split: Optional[str]) -> Path:
    qrels = folder / "qrels"
    if not qrels.is_dir():
        raise BadInput(f"{folder} is not a BEIR folder: it has no qrels/ folder")
    if split is not None:
        path = qrels / f"{split}.tsv"
        if not path.is_file():
            raise BadInput(f"no {path}: splits there are {', '.join(sorted(p.stem for p in qrels.glob('*.tsv'))) or 'none'}")
        return path
    if (qrels / "test.tsv").is_file():
        return qrels / "test.tsv"
    found = sorted(qrels.glob("*.tsv"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise BadInput(f"{qrels} holds no .tsv file")
    raise BadInput(f"{qrels} holds {', '.join(p.stem for p in found)} and no test.tsv: choose one with --split")


def read_qrels(path: Path) -> list[tuple[str, str, float]]:
    rows = []
    for number, row in table_rows(path, "\t", header=True):
        try:
            rows.append((row["query-id"].strip(), row["corpus-id"].strip(), float(row["score"])))
        except KeyError:
            raise BadInput(f"{path}: the header must name query-id, corpus-id and score") from None
        except ValueError:
            raise BadInput(f"{_where(path, number)}: score {row['score']!r} is not a number") from None
    return rows


def _beir_texts(path: Path, wanted: set[str], title: bool, progress: bool = False) -> dict[str, str]:
    """The text of every wanted _id in a BEIR corpus or queries file; the rest is not kept."""
    if not path.is_file():
        raise BadInput(f"{path.parent} is not a BEIR folder: it has no {path.name}")
    texts: dict[str, str] = {}
    for number, row in json_rows(path, progress):
        row = _object(path, number, row)
        if "_id" not in row or not isinstance(row.get("text"), str):
            raise BadInput(f"{_where(path, number)}: a BEIR row needs _id and text")
        key = str(row["_id"])
        if key in wanted:
            text = row["text"].strip()
            heading = row.get("title") if title else None
            if isinstance(heading, str) and heading.strip():
                text = f"{heading.strip()} {text}".strip()  # BEIR's own joining of title and text
            texts[key] = text
    return texts


def read_beir(folder: Path, split: Optional[str], skipped: dict[str, int], progress: bool = False) -> Iterator[Pair]:
    if not folder.is_dir():
        raise BadInput(f"a BEIR source is a folder (corpus.jsonl, queries.jsonl, qrels/): {folder} is not one")
    qrels_path = qrels_file(folder, split)
    qrels = read_qrels(qrels_path)
    queries = _beir_texts(folder / "queries.jsonl", {q for q, _, _ in qrels}, title=False, progress=progress)
    corpus = _beir_texts(folder / "corpus.jsonl", {d for _, d, _ in qrels}, title=True, progress=progress)
    negatives: dict[str, str] = {}
    for query_id, doc_id, score in qrels:
        if score <= 0 and doc_id in corpus:
            negatives.setdefault(query_id, doc_id)
    for query_id, doc_id, score in qrels:
        if score <= 0:
            continue
        if query_id not in queries or not queries[query_id]:
            skipped["query missing from queries.jsonl"] = skipped.get("query missing from queries.jsonl", 0) + 1
            continue
        if doc_id not in corpus or not corpus[doc_id]:
            skipped["document missing from corpus.jsonl"] = skipped.get("document missing from corpus.jsonl", 0) + 1
            continue
        negative_id = negatives.get(query_id)
        raw = {"query-id": query_id, "corpus-id": doc_id, "score": score, "negative-id": negative_id,
               "split": qrels_path.stem}
        yield Pair(queries[query_id], corpus[doc_id], corpus[negative_id] if negative_id else None, raw)


# -- medi and flagembedding ----------------------------------------------------------------------


def _instructed_text(path: Path, number: int, row: dict, key: str, required: bool) -> Optional[tuple[str, str]]:
    value = row.get(key)
    if value is None and not required:
        return None
    if (not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, str) for v in value)):
        raise BadInput(f"{_where(path, number)}: {key!r} must be an [instruction, text] pair")
    if not value[1].strip():
        if required:
            raise BadInput(f"{_where(path, number)}: the text of {key!r} is empty")
        return None
    return value[0], value[1]


def read_medi(path: Path, progress: bool = False) -> Iterator[Pair]:
    for number, row in json_rows(path, progress):
        row = _object(path, number, row)
        query = _instructed_text(path, number, row, "query", True)
        positive = _instructed_text(path, number, row, "pos", True)
        negative = _instructed_text(path, number, row, "neg", False)
        assert query is not None and positive is not None
        task_name = row.get("task_name")
        kind = task_name if isinstance(task_name, str) and task_name in KINDS else None
        yield Pair(query[1], positive[1], negative[1] if negative else None, row,
                   task=query[0].strip() or None, kind=kind, line=number)


def _texts(path: Path, number: int, row: dict, key: str, required: bool) -> list[str]:
    value = row.get(key, [] if not required else None)
    if isinstance(value, str):
        value = [value]
    if value is None and not required:
        value = []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"{_where(path, number)}: {key!r} must be a list of texts")
    texts = [v for v in value if v.strip()]
    if required and not texts:
        raise BadInput(f"{_where(path, number)}: {key!r} holds no text")
    return texts


def read_flagembedding(path: Path, progress: bool = False) -> Iterator[Pair]:
    """One example per positive; the i-th positive takes the i-th negative (cycling through them)."""
    for number, row in json_rows(path, progress):
        row = _object(path, number, row)
        query = _text(row.get("query"))
        if query is None:
            raise BadInput(f"{_where(path, number)}: 'query' must be a non-empty text")
        positives = _texts(path, number, row, "pos", True)
        negatives = _texts(path, number, row, "neg", False)
        prompt = row.get("prompt")
        task = prompt.strip() if isinstance(prompt, str) and prompt.strip() else None
        for i, positive in enumerate(positives):
            negative = negatives[i % len(negatives)] if negatives else None
            yield Pair(query, positive, negative, row, task=task, line=number)


# -- the import --------------------------------------------------------------------------------


def default_source(source: Path) -> str:
    name = source.resolve().name if source.is_dir() else source.stem
    return name or "imported"


def read_source(fmt: str, source: Path, fields: Fields, header: bool, split: Optional[str],
                skipped: dict[str, int], progress: bool = False) -> Iterator[Pair]:
    if not source.exists():
        raise BadInput(f"no such {'folder' if fmt == 'beir' else 'file'}: {source}")
    if fmt == "pairs":
        return read_pairs(source, fields, header, progress)
    if fmt == "beir":
        return read_beir(source, split, skipped, progress)
    if fmt == "medi":
        return read_medi(source, progress)
    if fmt == "flagembedding":
        return read_flagembedding(source, progress)
    raise BadInput(f"unknown import format {fmt!r}: use one of {', '.join(IMPORT_FORMATS)}")


def import_source(
    source: Path,
    fmt: str,
    out: Optional[Path] = None,
    task: Optional[str] = None,
    kind: Optional[str] = None,
    name: Optional[str] = None,
    language: str = DEFAULT_LANGUAGE,
    fields: Optional[Fields] = None,
    header: bool = True,
    split: Optional[str] = None,
    show_progress: bool = False,
) -> ImportResult:
    if fmt not in IMPORT_FORMATS:
        raise BadInput(f"unknown import format {fmt!r}: use one of {', '.join(IMPORT_FORMATS)}")
    if kind is not None and kind not in KINDS:
        raise BadInput(f"--kind: unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    if task is not None and not task.strip():
        raise BadInput("--task is empty")
    if fmt in ("pairs", "beir") and task is None:
        raise BadInput(f"--task is needed: {fmt} data holds no instruction (e.g. --task \"Given a web search query, "
                       "retrieve relevant passages that answer the query\")")
    if split is not None and fmt != "beir":
        raise BadInput("--split is for BEIR folders")
    if fields is not None and fmt != "pairs" and any(vars(fields).values()):
        raise BadInput("--query-field, --positive-field and --negative-field are for --format pairs")
    if not header and fmt != "pairs":
        raise BadInput("--no-header is for --format pairs")
    name = name.strip() if name is not None else default_source(source)
    if not name:
        raise BadInput("--source is empty")
    out = out if out is not None else Path("data") / "imported" / f"{name}.jsonl"
    if source.exists() and out.exists() and source.resolve() == out.resolve():
        raise BadInput(f"--out {out} is the source itself")
    result = ImportResult(fmt, name, out)
    pairs = read_source(fmt, source, fields or Fields(), header, split, result.skipped, show_progress)

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as sink:
            for pair in pairs:
                result.rows += 1
                the_task = task.strip() if task is not None else pair.task
                if the_task is None:
                    raise BadInput(f"{_where(source, pair.line)}: the row holds no instruction: give --task")
                example = {
                    "id": f"{name}-{result.written}",
                    "index": result.written,
                    "kind": kind or pair.kind or DEFAULT_KIND,
                    "task": the_task,
                    "language": language,
                    "query": pair.query,
                    "positive": pair.positive,
                    "negative": pair.negative,
                    "placeholders": {},
                    "raw": pair.raw,
                    "model": IMPORTED_MODEL,
                    "seed": None,
                    "source": name,
                }
                sink.write(_encode(example) + b"\n")
                result.written += 1
                result.with_negative += pair.negative is not None
        if result.written == 0:
            raise BadInput(f"{source}: nothing to import" + (
                f" ({', '.join(f'{k} {v}' for k, v in result.skipped.items())})" if result.skipped else ""))
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return result


def summary(result: ImportResult) -> str:
    text = (f"imported {result.written} examples ({result.with_negative} with a negative) from {result.format} "
            f"as source {result.source!r} -> {result.out}")
    if result.skipped:
        text += "; skipped: " + ", ".join(f"{reason} {count}" for reason, count in sorted(result.skipped.items()))
    return text
