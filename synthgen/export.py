"""Training formats: stored examples -> the layout each trainer reads, streaming.

| format                | one line                                                                 |
|-----------------------|--------------------------------------------------------------------------|
| e5                    | {"query": "Instruct: <task>\\nQuery: <query>", "positive", "negative", "negatives": [..]} |
| sentence-transformers | {"anchor", "positive", "negative"} (columns in that order)               |
| flagembedding         | {"query", "pos": [..], "neg": [..], "prompt": "<task>"}                  |
| medi                  | {"query": [task, text], "pos": ["", text], "neg": ["", text], "task_name"} |

The query side carries the instruction, documents none.

An example's negatives are its generated one, then those `synthgen curate --mine-negatives` added:
e5's "negatives" and flagembedding's "neg" list them all (e5's "negative" is the first, for trainers
that take one); sentence-transformers writes one (anchor, positive, negative) row per negative (its
columns are fixed per file; train with the NoDuplicatesBatchSampler so that the rows of one query
do not meet in a batch); medi takes the first.

Examples without a negative (short-short, long-long, imported pairs) are written without one where
the format allows it, or left out and counted with `require_negative`:
- e5: "negative": null;
- flagembedding: "neg": [];
- sentence-transformers: every row of a dataset must have the same columns, so they go to a
  second file beside the first, `<name>-pairs.jsonl`, with (anchor, positive) columns;
- medi: Instructor needs a negative in every row: always left out.

Memory does not grow with the input: each line is read, turned and written. `--mix` reads the input
twice, first to count each source's examples, then to pick from each the share asked for
(selection sampling: uniform, exact counts, nothing held but the counts).
"""

import collections
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import msgspec

from synthgen.config import parse_weights
from synthgen.errors import BadInput
from synthgen.files import AtomicFile
from synthgen.names import EXPORT_FORMATS as FORMATS
from synthgen.store import Example, ReadCounts, example_files, hold_output, read_examples, source_of

INSTRUCTION_TEMPLATE = "Instruct: {task}\nQuery: {query}"

# Reasons an example is left out.
NO_NEGATIVE = "no negative"
NO_TASK = "no task"
NOT_IN_MIX = "source not in --mix"
OVER_RATIO = "over the --mix ratio"

_encode = msgspec.json.Encoder().encode


def instructed(task: str, query: str) -> str:
    """The paper's query-side template."""
    return INSTRUCTION_TEMPLATE.format(task=task, query=query)


@dataclass(frozen=True)
class Options:
    instruction: bool = True  # sentence-transformers: the instruction in the anchor
    require_negative: bool = False


# A row is the values of a format's columns, in order; the sink names them. An example gives one
# row, or (sentence-transformers) one per negative.
Row = tuple[Any, ...]


def e5_row(example: Example, options: Options) -> list[Row]:
    negatives = example.all_negatives()
    return [(instructed(example.task, example.query), example.positive, negatives[0] if negatives else None, negatives)]


def sentence_transformers_row(example: Example, options: Options) -> list[Row]:
    anchor = instructed(example.task, example.query) if options.instruction else example.query
    negatives = example.all_negatives()
    if not negatives:
        return [(anchor, example.positive)]  # the pairs file's two columns
    return [(anchor, example.positive, negative) for negative in negatives]


def flagembedding_row(example: Example, options: Options) -> list[Row]:
    return [(example.query, [example.positive], example.all_negatives(), example.task)]


def medi_row(example: Example, options: Options) -> list[Row]:
    return [([example.task, example.query], ["", example.positive], ["", example.all_negatives()[0]], example.kind)]


@dataclass(frozen=True)
class Format:
    name: str
    rows: Callable[[Example, Options], list[Row]]
    # What happens to an example without a negative: "null" (written without one), "pairs" (a
    # second file of (anchor, positive) rows) or "drop" (left out: the format cannot hold it).
    missing_negative: str
    # (column, arrow type name) in order: "string" or "list" (a list of strings).
    columns: tuple[tuple[str, str], ...]
    pair_columns: tuple[tuple[str, str], ...] = ()

    def needs_task(self, options: Options) -> bool:
        return self.name != "sentence-transformers" or options.instruction


EXPORTS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("e5", e5_row, "null",
               (("query", "string"), ("positive", "string"), ("negative", "string"), ("negatives", "list"))),
        Format(
            "sentence-transformers",
            sentence_transformers_row,
            "pairs",
            (("anchor", "string"), ("positive", "string"), ("negative", "string")),
            (("anchor", "string"), ("positive", "string")),
        ),
        Format(
            "flagembedding",
            flagembedding_row,
            "null",
            (("query", "string"), ("pos", "list"), ("neg", "list"), ("prompt", "string")),
        ),
        Format(
            "medi",
            medi_row,
            "drop",
            (("query", "list"), ("pos", "list"), ("neg", "list"), ("task_name", "string")),
        ),
    )
}


class ExportedRow(msgspec.Struct):
    """A line of an e5 or sentence-transformers export, read back (train takes them as they are)."""

    positive: str
    query: str = ""  # e5
    anchor: str = ""  # sentence-transformers
    negative: Optional[str] = None


def export_format(name: str) -> Format:
    try:
        return EXPORTS[name]
    except KeyError:
        raise BadInput(f"unknown format {name!r}: use one of {', '.join(FORMATS)}") from None


def pairs_path(out: Path) -> Path:
    """Where sentence-transformers rows without a negative go: train.jsonl -> train-pairs.jsonl."""
    return out.with_name(f"{out.stem}-pairs{out.suffix}")


# -- writing -----------------------------------------------------------------------------------


class JsonlSink:
    """Rows to a temporary file beside `path`, moved into place by commit()."""

    def __init__(self, path: Path, columns: tuple[tuple[str, str], ...]):
        self.names = tuple(name for name, _ in columns)
        self.path = path
        self.rows = 0
        self.target = AtomicFile(path)

    def write(self, row: Row) -> None:
        self.target.file.write(_encode(dict(zip(self.names, row))) + b"\n")
        self.rows += 1

    def commit(self) -> None:
        self.target.commit()

    def abort(self) -> None:
        self.target.abort()


class ParquetSink:
    """The same rows as a Parquet file, written in row groups (needs pyarrow)."""

    BATCH = 4096

    def __init__(self, path: Path, columns: tuple[tuple[str, str], ...]):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise BadInput(f"writing {path.name} needs pyarrow (pip install pyarrow), or use a .jsonl file") from None
        self.pa = pa
        types = {"string": pa.string(), "list": pa.list_(pa.string())}
        self.schema = pa.schema([(name, types[kind]) for name, kind in columns])
        self.names = tuple(name for name, _ in columns)
        self.path = path
        self.rows = 0
        self.batch: list[dict[str, Any]] = []
        self.target = AtomicFile(path)
        self.writer = pq.ParquetWriter(self.target.file, self.schema)

    def write(self, row: Row) -> None:
        self.batch.append(dict(zip(self.names, row)))
        self.rows += 1
        if len(self.batch) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.batch:
            self.writer.write_table(self.pa.Table.from_pylist(self.batch, schema=self.schema))
            self.batch = []

    def commit(self) -> None:
        self._flush()
        self.writer.close()
        self.target.commit()

    def abort(self) -> None:
        try:
            self.writer.close()
        finally:
            self.target.abort()


def open_sink(path: Path, columns: tuple[tuple[str, str], ...]) -> Union[JsonlSink, ParquetSink]:
    return (ParquetSink if path.suffix == ".parquet" else JsonlSink)(path, columns)


# -- mixing ------------------------------------------------------------------------------------


def parse_mix(text: str) -> dict[str, float]:
    """`synthetic=0.5,msmarco=0.5` -> shares that sum to 1 (sources of weight 0 left out)."""
    weights = parse_weights(text, "mix")
    for name, weight in weights.items():
        if weight < 0 or weight != weight or weight == float("inf"):
            raise BadInput(f"--mix: the weight of {name!r} must be a finite number >= 0")
    total = sum(weights.values())
    if total <= 0:
        raise BadInput("--mix: the weights sum to zero")
    return {name: weight / total for name, weight in weights.items() if weight > 0}


def mix_targets(shares: dict[str, float], available: dict[str, int]) -> dict[str, int]:
    """How many examples of each source: the largest mix with these shares that the data allows."""
    missing = [name for name in shares if not available.get(name)]
    if missing:
        found = ", ".join(f"{name} {count}" for name, count in sorted(available.items())) or "none"
        raise BadInput(f"--mix: no examples from source {missing[0]!r} (sources found: {found})")
    total = min(available[name] / share for name, share in shares.items())
    return {name: min(available[name], int(total * share + 1e-9)) for name, share in shares.items()}


class Selection:
    """Picks exactly `wanted` of `available` items met one by one, each subset equally likely."""

    def __init__(self, wanted: int, available: int, seed: int, source: str):
        self.wanted = wanted
        self.left = available
        self.rng = random.Random(f"{seed}:{source}")

    def take(self) -> bool:
        chosen = self.wanted > 0 and self.rng.random() * self.left < self.wanted
        self.left -= 1
        if chosen:
            self.wanted -= 1
        return chosen


# -- the export --------------------------------------------------------------------------------


@dataclass
class ExportResult:
    format: str
    out: Path
    read: ReadCounts = field(default_factory=ReadCounts)
    written: int = 0
    pairs_out: Optional[Path] = None
    pairs_written: int = 0
    left_out: collections.Counter = field(default_factory=collections.Counter)
    per_source: collections.Counter = field(default_factory=collections.Counter)  # written, by source


def _eligible(examples: Iterator[Example], fmt: Format, options: Options,
              left_out: collections.Counter) -> Iterator[Example]:
    """The examples this format and these options can write; the others counted by reason."""
    drop_missing = options.require_negative or fmt.missing_negative == "drop"
    needs_task = fmt.needs_task(options)
    for example in examples:
        if drop_missing and not example.all_negatives():
            left_out[NO_NEGATIVE] += 1
        elif needs_task and not example.task:
            left_out[NO_TASK] += 1
        else:
            yield example


def export(
    paths: list[Path],
    out: Path,
    format_name: str,
    instruction: bool = True,
    require_negative: bool = False,
    mix: Optional[str] = None,
    seed: int = 0,
    show_progress: bool = True,
) -> ExportResult:
    fmt = export_format(format_name)
    options = Options(instruction=instruction, require_negative=require_negative)
    shares = parse_mix(mix) if mix is not None else None
    files = example_files(paths, exclude=out)
    result = ExportResult(fmt.name, out)

    selections: Optional[dict[str, Selection]] = None
    if shares is not None:
        available: collections.Counter = collections.Counter()
        for example in _eligible(read_examples(files, ReadCounts(), "count", show_progress), fmt, options,
                                 collections.Counter()):
            available[source_of(example)] += 1
        targets = mix_targets(shares, available)
        selections = {name: Selection(targets[name], available[name], seed, name) for name in targets}

    with hold_output(out, "export"):
        _write(paths, out, fmt, options, files, selections, result, show_progress)
    return result


def _write(paths: list[Path], out: Path, fmt: Format, options: Options, files: list[Path],
           selections: Optional[dict[str, "Selection"]], result: ExportResult, show_progress: bool) -> None:
    stream = read_examples(files, result.read, "export", show_progress)
    main = open_sink(out, fmt.columns)
    pairs: Optional[Union[JsonlSink, ParquetSink]] = None
    try:
        for example in _eligible(stream, fmt, options, result.left_out):
            source = source_of(example)
            if selections is not None:
                selection = selections.get(source)
                if selection is None:
                    result.left_out[NOT_IN_MIX] += 1
                    continue
                if not selection.take():
                    result.left_out[OVER_RATIO] += 1
                    continue
            sink = main
            if fmt.missing_negative == "pairs" and not example.all_negatives():
                if pairs is None:
                    pairs = open_sink(pairs_path(out), fmt.pair_columns)
                sink = pairs
            for row in fmt.rows(example, options):
                sink.write(row)
            result.per_source[source] += 1
        if result.read.examples == 0:
            raise BadInput(f"no stored examples in {', '.join(str(p) for p in paths)} "
                           f"({result.read.lines} lines{result.read.skipped()})")
        main.commit()
        if pairs is not None:
            pairs.commit()
    except BaseException:
        main.abort()
        if pairs is not None:
            pairs.abort()
        raise
    result.written = main.rows
    if pairs is not None:
        result.pairs_out, result.pairs_written = pairs.path, pairs.rows
    elif fmt.missing_negative == "pairs":
        # A pairs file from an earlier export of the same name would be trained on with this one.
        pairs_path(out).unlink(missing_ok=True)


def summary(result: ExportResult) -> str:
    """One line for the terminal: what was read, written where, left out and why."""
    read = result.read
    text = (f"read {read.examples} examples from {read.files} files{read.skipped()}: "
            f"wrote {result.written} ({result.format}) -> {result.out}")
    if result.pairs_out is not None:
        text += f"; {result.pairs_written} without a negative as (anchor, positive) pairs -> {result.pairs_out}"
    if result.left_out:
        text += "; left out: " + ", ".join(f"{reason} {count}" for reason, count in sorted(result.left_out.items()))
    else:
        text += "; left out: none"
    if len(result.per_source) > 1 or any(name != "synthetic" for name in result.per_source):
        text += "; by source: " + ", ".join(f"{name} {count}" for name, count in sorted(result.per_source.items()))
    return text
