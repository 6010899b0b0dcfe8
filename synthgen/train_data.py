"""What `synthgen train` trains on: rows read from stored examples or exports, a held-out part for the
evaluator, and the datasets the sentence-transformers Trainer takes.

A row is (anchor, positive, negatives...): the anchor already written through the query template
(the instruction on the query side only, as the paper trains), documents bare. Rows with different
numbers of negatives cannot share a batch (the Trainer's batches hold the same columns throughout),
so they become one dataset each in a dict; the Trainer's multi-dataset sampler draws each batch from
one of them, and its NO_DUPLICATES sampler keeps a text from appearing twice in a batch (a repeated
label or document would be its own false negative).
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import msgspec

from synthgen.errors import UNDECODABLE, BadInput
from synthgen.export import ExportedRow
from synthgen.instructions import query_text
from synthgen.split import group_key
from synthgen.store import decode_example, example_files


@dataclass(frozen=True)
class Row:
    anchor: str
    positive: str
    negatives: tuple[str, ...]
    group: str  # what the held-out part is drawn by: split's task / document / example key

    def columns(self) -> list[str]:
        return [self.anchor, self.positive, *self.negatives]


@dataclass
class Loaded:
    rows: list[Row] = field(default_factory=list)
    files: int = 0
    lines: int = 0
    stored: int = 0  # stored examples
    exported: int = 0  # rows of an e5 or sentence-transformers export
    no_task: int = 0  # stored examples without a task: the query goes in bare
    skipped: int = 0  # lines that are none of these
    mined_used: int = 0  # negatives taken from curate's mined ones

    def counts(self) -> dict[str, int]:
        return {"rows": len(self.rows), "stored_examples": self.stored, "export_rows": self.exported,
                "examples_without_task": self.no_task, "lines_skipped": self.skipped,
                "mined_negatives_used": self.mined_used}


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value.strip() else None


def pick_negatives(generated: Optional[str], mined: list[str], mined_negatives: Optional[int]) -> tuple[list[str], int]:
    """The negatives of a row and how many of them are mined ones.

    mined_negatives None: one hard negative, the generated one or else the first mined one (the paper's
    one per pair; grounded examples have only mined ones). A number K: the generated one and K mined."""
    mined = [m for m in mined if _text(m) is not None and m != generated]
    if mined_negatives is None:
        if generated is not None:
            return [generated], 0
        return mined[:1], len(mined[:1])
    taken = mined[:mined_negatives]
    return ([generated] if generated is not None else []) + taken, len(taken)


def to_row(line: bytes, template: str, mined_negatives: Optional[int], loaded: Loaded) -> Optional[Row]:
    """A training row from a stored example, or from a line of an e5 or sentence-transformers export."""
    try:
        example = decode_example(line)
    except UNDECODABLE:
        pass
    else:
        positive = _text(example.positive)
        if positive is None or not example.query.strip():
            return None
        loaded.stored += 1
        if not example.task:
            loaded.no_task += 1
        negatives, mined = pick_negatives(_text(example.negative), example.negatives or [], mined_negatives)
        loaded.mined_used += mined
        return Row(query_text(template, example.task or None, example.query), positive,
                   tuple(dict.fromkeys(negatives)), group_key(example))
    try:
        exported = msgspec.json.decode(line, type=ExportedRow)
    except UNDECODABLE:
        return None
    anchor = _text(exported.anchor) or _text(exported.query)
    positive = _text(exported.positive)
    if anchor is None or positive is None:
        return None
    loaded.exported += 1
    negative = _text(exported.negative)
    return Row(anchor, positive, (negative,) if negative is not None else (), anchor)


def load_rows(paths: list[Path], template: str, mined_negatives: Optional[int] = None) -> Loaded:
    loaded = Loaded()
    files = example_files(paths)
    loaded.files = len(files)
    for path in files:
        with open(path, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                loaded.lines += 1
                row = to_row(line, template, mined_negatives, loaded)
                if row is None:
                    loaded.skipped += 1
                else:
                    loaded.rows.append(row)
    if not loaded.rows:
        raise BadInput("nothing to train on in " + ", ".join(map(str, paths)) +
                       ": no stored example and no e5 or sentence-transformers export row")
    return loaded


def hold_out(rows: list[Row], share: float, seed: int) -> tuple[list[Row], list[Row]]:
    """(train, held out): whole groups (a task, a document) held out, about `share` of the rows, the
    same for the same rows and seed, so the evaluator measures instructions training never saw."""
    sizes: dict[str, int] = {}
    for row in rows:
        sizes[row.group] = sizes.get(row.group, 0) + 1
    if len(sizes) < 2:
        raise BadInput("--eval-share needs examples of at least two tasks (or documents) to hold some out")
    order = sorted(sizes, key=lambda g: hashlib.blake2b(f"{seed}\0{g}".encode(), digest_size=16).digest())
    held: set[str] = set()
    taken = 0
    for group in order:
        if taken >= share * len(rows) or len(held) == len(sizes) - 1:
            break
        held.add(group)
        taken += sizes[group]
    return [r for r in rows if r.group not in held], [r for r in rows if r.group in held]


def dataset_name(negatives: int) -> str:
    return {0: "pairs", 1: "triplets"}.get(negatives, f"{negatives}-negatives")


def column_names(negatives: int) -> list[str]:
    return ["anchor", "positive", *(f"negative_{i + 1}" for i in range(negatives))]


def group_by_columns(rows: list[Row]) -> tuple[dict[str, dict[str, list[str]]], int]:
    """Columns of each dataset (rows with the same number of negatives), and the rows left out: a
    lone pair has nothing to be contrasted with."""
    groups: dict[int, list[Row]] = {}
    for row in rows:
        groups.setdefault(len(row.negatives), []).append(row)
    tables: dict[str, dict[str, list[str]]] = {}
    left_out = 0
    for negatives, members in sorted(groups.items()):
        if negatives == 0 and len(members) < 2:
            left_out += len(members)
            continue
        tables[dataset_name(negatives)] = dict(zip(column_names(negatives), map(list, zip(*(r.columns() for r in members)))))
    return tables, left_out


@dataclass
class RetrievalInputs:
    """What InformationRetrievalEvaluator takes: each held-out query against every document of the
    held-out rows (one id per distinct text), its positive the relevant one."""

    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, set[str]]


def retrieval_inputs(rows: list[Row]) -> RetrievalInputs:
    pool: dict[str, str] = {}

    def doc_id(text: str) -> str:
        return pool.setdefault(text, f"d{len(pool)}")

    queries: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    for number, row in enumerate(rows):
        query_id = f"q{number}"
        queries[query_id] = row.anchor
        relevant[query_id] = {doc_id(row.positive)}
        for negative in row.negatives:
            doc_id(negative)
    return RetrievalInputs(queries, {i: text for text, i in pool.items()}, relevant)
