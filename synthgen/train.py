"""Fine-tune a sentence-transformers model on synthgen output, as the paper trains: InfoNCE over
in-batch negatives plus the hard negative where there is one (MultipleNegativesRankingLoss), scale
50 (temperature 0.02), the instruction on the query side only.

Reads stored examples (the query goes through the query template, by default the paper's: see
synthgen.instructions), and the e5 and sentence-transformers exports (their query/anchor already
carries it). Rows with a negative and rows without are batched apart (one batch holds the same
columns throughout), and no text appears twice in a batch: a repeated label or document would
otherwise be its own false negative.

A plain PyTorch loop (AdamW, linear warm-up then decay, gradient clipping) rather than the Hugging
Face Trainer, which would need accelerate on top of the train extra.
"""

import json
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import msgspec
from tqdm import tqdm

from synthgen import __version__
from synthgen.errors import BadInput
from synthgen.export import ExportedRow
from synthgen.instructions import QUERY_TEMPLATE, check_template, query_text
from synthgen.models import DEFAULT_EMBEDDING_MODEL, INSTALL_HINT, default_embedding_model_path
from synthgen.store import decode_example, example_files

CONFIG_NAME = "synthgen-train.json"


@dataclass
class TrainOptions:
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    epochs: int = 1
    max_steps: Optional[int] = None
    scale: float = 50.0
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_seq_length: Optional[int] = None
    query_template: str = QUERY_TEMPLATE
    seed: int = 0
    device: Optional[str] = None

    def check(self) -> None:
        if self.batch_size < 2:
            raise BadInput("--batch-size must be at least 2: the other rows of a batch are the negatives")
        if not self.learning_rate > 0:
            raise BadInput("--lr must be above 0")
        if not 0 <= self.warmup_ratio < 1:
            raise BadInput("--warmup-ratio must be in [0, 1)")
        if self.epochs < 1 or (self.max_steps is not None and self.max_steps < 1):
            raise BadInput("--epochs and --max-steps must be at least 1")
        if not self.scale > 0:
            raise BadInput("--scale must be above 0")
        check_template(self.query_template)


@dataclass(frozen=True)
class Row:
    anchor: str
    positive: str
    negative: Optional[str]

    def texts(self) -> set[str]:
        return {self.anchor, self.positive} | ({self.negative} if self.negative is not None else set())


@dataclass
class Loaded:
    rows: list[Row] = field(default_factory=list)
    files: int = 0
    lines: int = 0
    stored: int = 0  # stored examples
    exported: int = 0  # rows of an e5 or sentence-transformers export
    no_task: int = 0  # stored examples without a task: the query goes in bare
    skipped: int = 0  # lines that are none of these


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value.strip() else None


def to_row(line: bytes, template: str, loaded: Loaded) -> Optional[Row]:
    """A training row from a stored example, or from a line of an e5 or sentence-transformers export."""
    try:
        example = decode_example(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    else:
        if not example.task:
            loaded.no_task += 1
        positive = _text(example.positive)
        if positive is None or not example.query.strip():
            return None
        loaded.stored += 1
        negatives = example.all_negatives()  # the generated one first, then curate's mined ones
        return Row(query_text(template, example.task or None, example.query), positive,
                   _text(negatives[0]) if negatives else None)
    try:
        exported = msgspec.json.decode(line, type=ExportedRow)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    anchor = _text(exported.anchor) or _text(exported.query)
    positive = _text(exported.positive)
    if anchor is None or positive is None:
        return None
    loaded.exported += 1
    return Row(anchor, positive, _text(exported.negative))


def load_rows(paths: list[Path], template: str) -> Loaded:
    loaded = Loaded()
    files = example_files(paths)
    loaded.files = len(files)
    for path in files:
        with open(path, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                loaded.lines += 1
                row = to_row(line, template, loaded)
                if row is None:
                    loaded.skipped += 1
                else:
                    loaded.rows.append(row)
    if not loaded.rows:
        raise BadInput("nothing to train on in " + ", ".join(map(str, paths)) +
                       ": no stored example and no e5 or sentence-transformers export row")
    return loaded


def make_batches(rows: list[Row], batch_size: int, rng: random.Random) -> list[list[Row]]:
    """Shuffled batches without a repeated text; rows with and without a negative never share one."""
    batches: list[list[Row]] = []
    for with_negative in (True, False):
        group = [r for r in rows if (r.negative is not None) == with_negative]
        rng.shuffle(group)
        remaining = dict.fromkeys(range(len(group)))
        while remaining:
            batch: list[int] = []
            seen: set[str] = set()
            for i in remaining:
                texts = group[i].texts()
                if seen & texts:
                    continue
                batch.append(i)
                seen |= texts
                if len(batch) == batch_size:
                    break
            for i in batch:
                del remaining[i]
            batches.append([group[i] for i in batch])
    # A lone pair without a negative has nothing to be contrasted with.
    batches = [b for b in batches if len(b) > 1 or b[0].negative is not None]
    rng.shuffle(batches)
    return batches


def plan(rows: list[Row], options: TrainOptions) -> Iterator[list[Row]]:
    """The batches of every epoch, reshuffled each epoch, cut at max_steps."""
    rng = random.Random(options.seed)
    step = 0
    for _ in range(options.epochs):
        for batch in make_batches(rows, options.batch_size, rng):
            if options.max_steps is not None and step >= options.max_steps:
                return
            step += 1
            yield batch


def count_steps(rows: list[Row], options: TrainOptions) -> int:
    return sum(1 for _ in plan(rows, options))


def train(paths: list[Path], base_model: Optional[str], out: Path, options: TrainOptions,
          overwrite: bool = False, show_progress: bool = True) -> dict:
    """Train, save the model to OUT and the settings used to OUT/synthgen-train.json; returns them."""
    options.check()
    try:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer
        from sentence_transformers import __version__ as st_version
    except ImportError:
        raise BadInput(f"synthgen train needs the train extra: {INSTALL_HINT}") from None
    try:  # sentence-transformers 6 moved the losses; 3 to 5 have them here only
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:
        from sentence_transformers.losses import MultipleNegativesRankingLoss  # type: ignore[no-redef]
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise BadInput(f"{out} is not empty: choose another --out, or --overwrite")
    loaded = load_rows(paths, options.query_template)
    steps = count_steps(loaded.rows, options)
    if steps == 0:
        raise BadInput("no batch to train on: every example repeats the same texts")
    warmup_steps = int(options.warmup_ratio * steps)

    random.seed(options.seed)
    torch.manual_seed(options.seed)
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    source = base_model or str(default_embedding_model_path())
    try:
        model = SentenceTransformer(source, device=device)
    except Exception as exc:  # a wrong name or a broken folder: many exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"cannot load the base model {base_model}: {first}") from None
    if options.max_seq_length is not None:
        model.max_seq_length = options.max_seq_length
    loss_fn = MultipleNegativesRankingLoss(model, scale=options.scale)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, warmup_steps, steps)
    prepare = getattr(model, "preprocess", None) or model.tokenize

    def features(texts: list[str]) -> dict:
        return {k: v.to(device) if hasattr(v, "to") else v for k, v in prepare(texts).items()}

    started = time.monotonic()
    model.train()
    losses: list[float] = []
    with tqdm(total=steps, desc="train", unit="step", disable=None if show_progress else True) as bar:
        for batch in plan(loaded.rows, options):
            columns = [[r.anchor for r in batch], [r.positive for r in batch]]
            if batch[0].negative is not None:
                columns.append([r.negative for r in batch])  # type: ignore[misc]
            loss = loss_fn([features(c) for c in columns], None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), options.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix_str(f"loss={sum(losses[-20:]) / len(losses[-20:]):.4f}")
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    with_negative = sum(1 for r in loaded.rows if r.negative is not None)
    config = {
        "synthgen_version": __version__,
        "base_model": base_model or DEFAULT_EMBEDDING_MODEL,
        "base_model_source": source,
        "inputs": [str(p) for p in paths],
        "rows": len(loaded.rows),
        "rows_with_negative": with_negative,
        "stored_examples": loaded.stored,
        "export_rows": loaded.exported,
        "examples_without_task": loaded.no_task,
        "lines_skipped": loaded.skipped,
        "loss": "MultipleNegativesRankingLoss (InfoNCE: in-batch negatives + the hard negative when present)",
        "temperature": 1 / options.scale,
        **asdict(options),
        "max_seq_length": model.max_seq_length,
        "device": device,
        "steps": steps,
        "warmup_steps": warmup_steps,
        "loss_first": losses[0],
        "loss_last_20_mean": sum(losses[-20:]) / len(losses[-20:]),
        "seconds": round(time.monotonic() - started, 1),
        "versions": {"torch": torch.__version__, "sentence_transformers": st_version,
                     "transformers": transformers.__version__, "python": platform.python_version()},
    }
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return config
