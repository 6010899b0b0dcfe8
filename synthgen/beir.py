"""The BEIR folder layout, read and written in one place: `import --format beir` and
`eval retrieval` read it, `synthgen passkey` writes it.

    corpus.jsonl      {"_id", "title", "text", ...} a line
    queries.jsonl     {"_id", "text", ...} a line
    qrels/<split>.tsv query-id, corpus-id, score (tab-separated, a header line first)

One rule for scores: a judgment with a score above 0 is relevant (its score is its gain); one at 0
(or below) says the document was judged and found not relevant. A document's text is its title and
text joined as BEIR joins them. Rows are read strictly: a fault ends the read naming file and line.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from synthgen.datafiles import json_object, json_rows, table_rows, where
from synthgen.errors import BadInput

CORPUS = "corpus.jsonl"
QUERIES = "queries.jsonl"
QRELS = "qrels"
QRELS_COLUMNS = ("query-id", "corpus-id", "score")
DEFAULT_SPLIT = "test"


@dataclass(frozen=True)
class Judgment:
    """One qrels row."""

    query_id: str
    doc_id: str
    score: float

    @property
    def relevant(self) -> bool:
        return self.score > 0


@dataclass(frozen=True)
class Row:
    """One line of corpus.jsonl or queries.jsonl: its id, its text, and the line as it is (extra fields too)."""

    id: str
    text: str
    fields: dict


def is_folder(path: Path) -> bool:
    return path.is_dir() and (path / CORPUS).is_file() and (path / QUERIES).is_file()


def qrels_file(folder: Path, split: Optional[str] = None) -> Path:
    """qrels/<split>.tsv; without a split, test.tsv, or the only file there is."""
    qrels = folder / QRELS
    if not qrels.is_dir():
        raise BadInput(f"{folder} is not a BEIR folder: it has no {QRELS}/ folder")
    if split is not None:
        path = qrels / f"{split}.tsv"
        if not path.is_file():
            raise BadInput(f"no {path}: splits there are {', '.join(sorted(p.stem for p in qrels.glob('*.tsv'))) or 'none'}")
        return path
    if (qrels / f"{DEFAULT_SPLIT}.tsv").is_file():
        return qrels / f"{DEFAULT_SPLIT}.tsv"
    found = sorted(qrels.glob("*.tsv"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise BadInput(f"{qrels} holds no .tsv file")
    raise BadInput(f"{qrels} holds {', '.join(p.stem for p in found)} and no {DEFAULT_SPLIT}.tsv: choose one with --split")


def _number(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None


def read_qrels(path: Path) -> list[Judgment]:
    """Every judgment in file order. The first line is a header when its score is not a number (BEIR's own
    loader always skips it); a header naming query-id, corpus-id and score places the columns, else they
    are taken in that order."""
    judgments: list[Judgment] = []
    columns: Optional[list[str]] = None
    for number, row in table_rows(path, "\t", header=False):
        cells = [row[str(i)].strip() for i in range(len(row))]
        if columns is None:
            columns = ["0", "1", "2"]
            if len(cells) >= 3 and _number(cells[2]) is None:  # a header line
                if all(name in cells for name in QRELS_COLUMNS):
                    columns = [str(cells.index(name)) for name in QRELS_COLUMNS]
                continue
        if len(cells) < 3:
            raise BadInput(f"{where(path, number)}: expected {', '.join(QRELS_COLUMNS)} separated by tabs")
        query_id, doc_id, score = (row[c].strip() for c in columns)
        value = _number(score)
        if value is None:
            raise BadInput(f"{where(path, number)}: score {score!r} is not a number")
        judgments.append(Judgment(query_id, doc_id, value))
    return judgments


def relevance(judgments: Iterable[Judgment]) -> dict[str, dict[str, float]]:
    """query id -> {document id: gain} of the relevant documents; a query judged only at 0 has no entry."""
    relevant: dict[str, dict[str, float]] = {}
    for j in judgments:
        if j.relevant:
            relevant.setdefault(j.query_id, {})[j.doc_id] = j.score
    return relevant


def _rows(path: Path, title: bool, progress: bool) -> Iterator[Row]:
    if not path.is_file():
        raise BadInput(f"{path.parent} is not a BEIR folder: it has no {path.name}")
    for number, value in json_rows(path, progress):
        fields = json_object(path, number, value)
        if "_id" not in fields or not isinstance(fields.get("text"), str):
            raise BadInput(f"{where(path, number)}: a BEIR row needs _id and text")
        text = fields["text"].strip()
        heading = fields.get("title") if title else None
        if isinstance(heading, str) and heading.strip():
            text = f"{heading.strip()} {text}".strip()  # BEIR's own joining of title and text
        yield Row(str(fields["_id"]), text, fields)


def corpus(folder: Path, progress: bool = False) -> Iterator[Row]:
    """The documents of corpus.jsonl in file order, streamed (text: title and text joined)."""
    return _rows(folder / CORPUS, True, progress)


def queries(folder: Path, progress: bool = False) -> Iterator[Row]:
    """The queries of queries.jsonl in file order, streamed."""
    return _rows(folder / QUERIES, False, progress)


def texts(rows: Iterable[Row], wanted: set[str]) -> dict[str, str]:
    """id -> text of the wanted rows only: the rest is read past, not kept."""
    return {row.id: row.text for row in rows if row.id in wanted}


# -- writing -----------------------------------------------------------------------------------------


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _score(score: float) -> str:
    return str(int(score)) if float(score).is_integer() else str(score)


def write_folder(folder: Path, corpus_rows: Iterable[dict[str, Any]], query_rows: Iterable[dict[str, Any]],
                 judgments: Iterable[Judgment], split: str = DEFAULT_SPLIT) -> None:
    """corpus.jsonl, queries.jsonl and qrels/<split>.tsv; rows are written as given, in order."""
    (folder / QRELS).mkdir(parents=True, exist_ok=True)
    _write_jsonl(folder / CORPUS, corpus_rows)
    _write_jsonl(folder / QUERIES, query_rows)
    with open(folder / QRELS / f"{split}.tsv", "w", encoding="utf-8") as f:
        f.write("\t".join(QRELS_COLUMNS) + "\n")
        for j in judgments:
            f.write(f"{j.query_id}\t{j.doc_id}\t{_score(j.score)}\n")
