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

An imported example has the stored example's fields (README, "Output") with model "imported", no
placeholders, seed null (nothing was sampled), raw the source row, and `source`, the name that
`export --mix` and `stats` count by. Rows that cannot be read end the import with one line naming
the file and line; nothing is written then.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from synthgen import beir
from synthgen.datafiles import json_object, json_rows, table_rows, where
from synthgen.errors import BadInput
from synthgen.files import atomic_output
from synthgen.kinds import KINDS
from synthgen.names import IMPORT_FORMATS
from synthgen.store import Example, encode, hold_output

IMPORTED_MODEL = "imported"
DEFAULT_KIND = "short-long"
DEFAULT_LANGUAGE = "unknown"



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


# -- pairs -------------------------------------------------------------------------------------


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
        row = json_object(path, number, row)
        texts = {}
        for role, name in (("query", query_field), ("positive", positive_field)):
            if name not in row:
                have = ", ".join(map(str, list(row)[:8]))
                raise BadInput(f"{where(path, number)}: no {role} field {name!r} (the row has: {have}); "
                               f"name it with --{role}-field")
            texts[role] = _text(row[name])
            if texts[role] is None:
                raise BadInput(f"{where(path, number)}: the {role} field {name!r} is empty or not text")
        negative = row.get(negative_field)
        if negative is not None and not isinstance(negative, str):
            raise BadInput(f"{where(path, number)}: the negative field {negative_field!r} is not text")
        query, positive = texts["query"], texts["positive"]
        assert query is not None and positive is not None  # checked above
        yield Pair(query, positive, _text(negative), row, line=number)


# -- BEIR --------------------------------------------------------------------------------------


def read_beir(folder: Path, split: Optional[str], skipped: dict[str, int], progress: bool = False) -> Iterator[Pair]:
    """A pair for every relevant judgment. Only the queries and documents qrels names are kept."""
    if not folder.is_dir():
        raise BadInput(f"a BEIR source is a folder (corpus.jsonl, queries.jsonl, qrels/): {folder} is not one")
    qrels_path = beir.qrels_file(folder, split)
    qrels = beir.read_qrels(qrels_path)
    queries = beir.texts(beir.queries(folder, progress), {j.query_id for j in qrels})
    corpus = beir.texts(beir.corpus(folder, progress), {j.doc_id for j in qrels})
    negatives: dict[str, str] = {}
    for j in qrels:
        if not j.relevant and corpus.get(j.doc_id):
            negatives.setdefault(j.query_id, j.doc_id)
    for j in qrels:
        if not j.relevant:
            continue
        if not queries.get(j.query_id):
            skipped["query missing from queries.jsonl"] = skipped.get("query missing from queries.jsonl", 0) + 1
            continue
        if not corpus.get(j.doc_id):
            skipped["document missing from corpus.jsonl"] = skipped.get("document missing from corpus.jsonl", 0) + 1
            continue
        negative_id = negatives.get(j.query_id)
        raw = {"query-id": j.query_id, "corpus-id": j.doc_id, "score": j.score, "negative-id": negative_id,
               "split": qrels_path.stem}
        yield Pair(queries[j.query_id], corpus[j.doc_id], corpus[negative_id] if negative_id else None, raw)


# -- medi and flagembedding ----------------------------------------------------------------------


def _instructed_text(path: Path, number: int, row: dict, key: str, required: bool) -> Optional[tuple[str, str]]:
    value = row.get(key)
    if value is None and not required:
        return None
    if (not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, str) for v in value)):
        raise BadInput(f"{where(path, number)}: {key!r} must be an [instruction, text] pair")
    if not value[1].strip():
        if required:
            raise BadInput(f"{where(path, number)}: the text of {key!r} is empty")
        return None
    return value[0], value[1]


def read_medi(path: Path, progress: bool = False) -> Iterator[Pair]:
    for number, row in json_rows(path, progress):
        row = json_object(path, number, row)
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
        raise BadInput(f"{where(path, number)}: {key!r} must be a list of texts")
    texts = [v for v in value if v.strip()]
    if required and not texts:
        raise BadInput(f"{where(path, number)}: {key!r} holds no text")
    return texts


def read_flagembedding(path: Path, progress: bool = False) -> Iterator[Pair]:
    """One example per positive; the i-th positive takes the i-th negative (cycling through them)."""
    for number, row in json_rows(path, progress):
        row = json_object(path, number, row)
        query = _text(row.get("query"))
        if query is None:
            raise BadInput(f"{where(path, number)}: 'query' must be a non-empty text")
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

    with hold_output(out, "import"), atomic_output(out) as sink:
        for pair in pairs:
            result.rows += 1
            the_task = task.strip() if task is not None else pair.task
            if the_task is None:
                raise BadInput(f"{where(source, pair.line)}: the row holds no instruction: give --task")
            example = Example(
                id=f"{name}-{result.written}",
                index=result.written,
                kind=kind or pair.kind or DEFAULT_KIND,
                task=the_task,
                language=language,
                query=pair.query,
                positive=pair.positive,
                negative=pair.negative,
                placeholders={},
                raw=pair.raw,
                model=IMPORTED_MODEL,
                seed=None,
                source=name,
            )
            sink.write(encode(example) + b"\n")
            result.written += 1
            result.with_negative += pair.negative is not None
        if result.written == 0:
            raise BadInput(f"{source}: nothing to import" + (
                f" ({', '.join(f'{k} {v}' for k, v in result.skipped.items())})" if result.skipped else ""))
    return result


def summary(result: ImportResult) -> str:
    text = (f"imported {result.written} examples ({result.with_negative} with a negative) from {result.format} "
            f"as source {result.source!r} -> {result.out}")
    if result.skipped:
        text += "; skipped: " + ", ".join(f"{reason} {count}" for reason, count in sorted(result.skipped.items()))
    return text
