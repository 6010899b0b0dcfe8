"""`synthgen train`: a thin face over the sentence-transformers Trainer, trained as the paper trains.

InfoNCE over in-batch negatives plus the rows' hard negatives (MultipleNegativesRankingLoss, or its
GradCache form CachedMultipleNegativesRankingLoss for batches larger than memory), scale 50
(temperature 0.02), the instruction on the query side only; NO_DUPLICATES batches; checkpoints the
Trainer can resume from; InformationRetrievalEvaluator on a held-out part; LoRA on a decoder as
E5-mistral was trained (synthgen.train_model). Several GPUs or processes come from the ecosystem's
launchers (`accelerate launch -m synthgen train ...`, `torchrun`): the Trainer reads their
environment, and the in-batch negatives are gathered across processes.

What this module adds: reading synthgen's files into the Trainer's datasets (synthgen.train_data),
the per-step log and plot (synthgen.train_log), and OUT/synthgen-train.json, the run's record.
"""

import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from synthgen import __version__
from synthgen.errors import BadInput
from synthgen.instructions import QUERY_TEMPLATE, check_template
from synthgen.models import DEFAULT_EMBEDDING_MODEL, INSTALL_HINT, default_embedding_model_path
from synthgen.train_data import Loaded, Row, group_by_columns, hold_out, load_rows, retrieval_inputs
from synthgen.train_model import LoraSettings

CONFIG_NAME = "synthgen-train.json"
CHECKPOINTS_DIR = "checkpoints"
LOSSES = ("mnrl", "cached-mnrl")
LATEST = "latest"


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
    loss: str = "mnrl"
    mini_batch_size: int = 32  # cached-mnrl: rows per forward pass
    mined_negatives: Optional[int] = None  # None: one hard negative, the generated one or else a mined one
    eval_share: float = 0.0
    eval_steps: Optional[int] = None  # None: at the end of each epoch
    save_steps: Optional[int] = None  # None: at the end of each epoch
    save_total_limit: Optional[int] = 2
    lora: bool = False
    lora_settings: LoraSettings = field(default_factory=LoraSettings)
    bf16: bool = False

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
        if self.loss not in LOSSES:
            raise BadInput(f"--loss {self.loss!r}: use one of {', '.join(LOSSES)}")
        if self.mini_batch_size < 1:
            raise BadInput("--mini-batch-size must be at least 1")
        if self.mined_negatives is not None and self.mined_negatives < 0:
            raise BadInput("--mined-negatives must be 0 or more")
        if not 0 <= self.eval_share < 1:
            raise BadInput("--eval-share must be in [0, 1)")
        if self.device not in (None, "cpu", "cuda"):
            raise BadInput(f"--device {self.device!r}: cpu or cuda (choose GPUs with CUDA_VISIBLE_DEVICES or a launcher)")
        if self.lora_settings.rank < 1:
            raise BadInput("--lora-rank must be at least 1")
        check_template(self.query_template)


def world() -> tuple[int, bool]:
    """(processes, whether this one is the main one), as torchrun and accelerate launch set them."""
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")) == 0


def checkpoints(out: Path) -> list[Path]:
    folder = out / CHECKPOINTS_DIR
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def resolve_checkpoint(out: Path, given: str) -> Path:
    """--resume-from-checkpoint: a checkpoint folder, or `latest` for OUT's last one."""
    if given == LATEST:
        found = checkpoints(out)
        if not found:
            raise BadInput(f"no checkpoint in {out / CHECKPOINTS_DIR} to resume from")
        return found[-1]
    path = Path(given)
    if not (path / "trainer_state.json").is_file():
        raise BadInput(f"--resume-from-checkpoint {given}: not a checkpoint folder (no trainer_state.json)")
    return path


def prepare_out(out: Path, overwrite: bool, resuming: bool) -> None:
    if resuming or not out.exists():
        return
    if not out.is_dir():
        raise BadInput(f"{out} is a file: choose another --out")
    if any(out.iterdir()):
        if not overwrite:
            raise BadInput(f"{out} is not empty: choose another --out, --overwrite, or --resume-from-checkpoint")
        # The old run's checkpoints and log would be taken for this one's.
        shutil.rmtree(out / CHECKPOINTS_DIR, ignore_errors=True)
        from synthgen.train_log import LOG_NAME

        (out / LOG_NAME).unlink(missing_ok=True)


def build_loss(model: Any, options: TrainOptions, gather: bool) -> Any:
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    if options.loss == "cached-mnrl":
        return CachedMultipleNegativesRankingLoss(model, scale=options.scale, mini_batch_size=options.mini_batch_size,
                                                  gather_across_devices=gather)
    return MultipleNegativesRankingLoss(model, scale=options.scale, gather_across_devices=gather)


def gather_negatives(processes: int, tables: dict[str, Any]) -> bool:
    """With several processes each one's batch is a part of the whole, and the documents of all of
    them are the negatives; but only when every batch has the same columns: batches go to the
    processes in turn, and a process gathering two columns while another gathers three would wait
    for ever. Rows of several shapes then train on each process's own in-batch negatives."""
    return processes > 1 and len(tables) == 1


def build_evaluator(held_out: list[Row], batch_size: int) -> Any:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    inputs = retrieval_inputs(held_out)
    queries: dict[str, Any] = dict(inputs.queries)  # the evaluator takes any input a model encodes
    corpus: dict[str, Any] = dict(inputs.corpus)
    return InformationRetrievalEvaluator(
        queries, corpus, inputs.relevant, name="held-out", batch_size=batch_size,
        mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1, 10], precision_recall_at_k=[1, 10, 100], map_at_k=[100],
        show_progress_bar=False, write_csv=False)


def versions() -> dict[str, Optional[str]]:
    import importlib.metadata

    found: dict[str, Optional[str]] = {"python": platform.python_version(), "synthgen": __version__}
    for name in ("torch", "transformers", "sentence-transformers", "accelerate", "peft", "datasets"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def training_arguments(options: TrainOptions, out: Path, evaluating: bool, resuming: bool, show_progress: bool) -> Any:
    import torch
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers

    def strategy(steps: Optional[int]) -> dict[str, Any]:
        return {"strategy": "steps", "steps": steps} if steps else {"strategy": "epoch"}

    save, evaluate = strategy(options.save_steps), strategy(options.eval_steps)
    return SentenceTransformerTrainingArguments(
        output_dir=str(out / CHECKPOINTS_DIR),
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        warmup_steps=options.warmup_ratio,  # a float below 1 is a share of the steps
        lr_scheduler_type="linear",
        weight_decay=options.weight_decay,
        max_grad_norm=options.max_grad_norm,
        num_train_epochs=options.epochs,
        max_steps=options.max_steps or -1,
        seed=options.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,
        logging_steps=1,
        save_strategy=save["strategy"], save_steps=save.get("steps") or 500,
        save_total_limit=options.save_total_limit,
        eval_strategy=evaluate["strategy"] if evaluating else "no", eval_steps=evaluate.get("steps"),
        eval_on_start=evaluating and not resuming,  # the figures before training, to compare with
        use_cpu=options.device == "cpu",
        bf16=options.bf16,
        dataloader_pin_memory=torch.cuda.is_available(),
        report_to="none",
        disable_tqdm=not show_progress,
    )


@dataclass
class Prepared:
    """A Trainer ready to run, and what went into it (for the run's record)."""

    trainer: Any
    model: Any
    loaded: Loaded
    train_rows: list[Row]
    held_out: list[Row]
    tables: dict[str, dict[str, list[str]]]
    left_out: int
    source: str
    decoder: bool
    lora: Optional[dict[str, int]]
    evaluator: Any
    checkpoint: Optional[Path]
    processes: int
    main_process: bool


def prepare(paths: list[Path], base_model: Optional[str], out: Path, options: TrainOptions,
            overwrite: bool = False, show_progress: bool = True, eval_paths: Optional[list[Path]] = None,
            resume_from_checkpoint: Optional[str] = None) -> Prepared:
    """Check everything, read the data, load the model and build the Trainer; nothing trained yet."""
    options.check()
    try:
        import torch  # noqa: F401  (first: without it the others print their own warnings, or half-import)
    except ImportError:
        raise BadInput(f"synthgen train needs the train extra: {INSTALL_HINT}") from None
    try:
        import datasets
        import transformers
        from sentence_transformers import SentenceTransformerTrainer
    except ImportError:
        raise BadInput(f"synthgen train needs the train extra: {INSTALL_HINT}") from None
    try:
        import accelerate  # noqa: F401  (the Trainer needs it; say so before any work)
    except ImportError:
        raise BadInput(f"synthgen train needs accelerate, part of the train extra: {INSTALL_HINT}") from None
    from synthgen.train_log import LOG_NAME, StepBar, StepLog
    from synthgen.train_model import add_lora, load_base_model

    if eval_paths and options.eval_share:
        raise BadInput("give --eval-data or --eval-share, not both")
    processes, main_process = world()
    checkpoint = resolve_checkpoint(out, resume_from_checkpoint) if resume_from_checkpoint else None
    if main_process:
        prepare_out(out, overwrite, checkpoint is not None)
    loaded = load_rows(paths, options.query_template, options.mined_negatives)
    train_rows, held_out = loaded.rows, []
    if eval_paths:
        held_out = load_rows(eval_paths, options.query_template, options.mined_negatives).rows
    elif options.eval_share:
        train_rows, held_out = hold_out(loaded.rows, options.eval_share, options.seed)
    tables, left_out = group_by_columns(train_rows)
    if not tables:
        raise BadInput("nothing to train on: a single pair has no other row to be contrasted with")

    transformers.set_seed(options.seed)
    if not show_progress:
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()
    model, source, decoder = load_base_model(base_model or str(default_embedding_model_path()), base_model is None,
                                             options.max_seq_length, options.device)
    lora = add_lora(model, options.lora_settings) if options.lora else None
    evaluator = build_evaluator(held_out, options.batch_size) if held_out else None
    log_path = out / LOG_NAME
    if checkpoint is not None and main_process:
        keep_log_until(log_path, checkpoint)
    trainer = SentenceTransformerTrainer(
        model=model, args=training_arguments(options, out, evaluator is not None, checkpoint is not None, show_progress),
        train_dataset=datasets.DatasetDict({name: datasets.Dataset.from_dict(columns) for name, columns in tables.items()}),
        loss=build_loss(model, options, gather_negatives(processes, tables)), evaluator=evaluator, callbacks=[StepLog(log_path)])
    StepBar.replace_progress(trainer, show_progress)
    return Prepared(trainer, model, loaded, train_rows, held_out, tables, left_out, source, decoder, lora, evaluator,
                    checkpoint, processes, main_process)


def train(paths: list[Path], base_model: Optional[str], out: Path, options: TrainOptions,
          overwrite: bool = False, show_progress: bool = True, eval_paths: Optional[list[Path]] = None,
          resume_from_checkpoint: Optional[str] = None) -> dict:
    """Train, save the model to OUT and the run's record to OUT/synthgen-train.json; returns the record
    (empty on a process other than the main one)."""
    run = prepare(paths, base_model, out, options, overwrite, show_progress, eval_paths, resume_from_checkpoint)
    from synthgen.train_log import LOG_NAME, PLOT_NAME, evaluations, loss_curve, plot, read_log
    from synthgen.train_model import save_model

    trainer, log_path = run.trainer, out / LOG_NAME
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=str(run.checkpoint) if run.checkpoint is not None else None)
    seconds = time.monotonic() - started
    records = read_log(log_path) if run.main_process else []
    if run.evaluator is not None and trainer.state.global_step not in {e["step"] for e in evaluations(records)}:
        trainer.evaluate()  # the figures of the model as saved (every process takes part)
        records = read_log(log_path) if run.main_process else []
    if not run.main_process:
        return {}
    adapter = save_model(run.model, out)
    plotted = plot(records, out / PLOT_NAME)
    curve = loss_curve(records)
    losses = [loss for _, loss in curve]
    evaluator = run.evaluator
    config = {
        "synthgen_version": __version__,
        "base_model": base_model or DEFAULT_EMBEDDING_MODEL,
        "base_model_source": run.source,
        "pooling": "last token, EOS appended" if run.decoder else "the model's own",
        "inputs": [str(p) for p in paths],
        **data_counts(run),
        "loss_function": LOSS_NAMES[options.loss],
        "temperature": 1 / options.scale,
        **{k: v for k, v in asdict(options).items() if k != "lora_settings"},
        "lora": {**asdict(options.lora_settings), **run.lora, "target_modules": "all-linear",
                 "adapter": str(adapter) if adapter else None} if run.lora else None,
        "max_seq_length": run.model.max_seq_length,
        "processes": run.processes,
        "negatives_across_processes": gather_negatives(run.processes, run.tables),
        "device": str(run.model.device),
        "steps": trainer.state.global_step,
        "warmup_steps": trainer.args.get_warmup_steps(trainer.state.max_steps),
        "resumed_from": str(run.checkpoint) if run.checkpoint is not None else None,
        "loss_first": losses[0] if losses else None,
        "loss_last_20_mean": sum(losses[-20:]) / len(losses[-20:]) if losses else None,
        "loss_curve": curve,
        "evaluator": {"held_out": "--eval-data" if eval_paths else f"--eval-share {options.eval_share}",
                      "queries": len(evaluator.queries), "documents": len(evaluator.corpus),
                      "results": evaluations(records)} if evaluator is not None else None,
        "checkpoints": [str(p) for p in checkpoints(out)],
        "log": str(log_path),
        "plot": str(plotted) if plotted else None,
        "seconds": round(seconds, 1),
        "seconds_per_step": round(result.metrics.get("train_runtime", seconds) / max(1, trainer.state.global_step), 3),
        "versions": versions(),
    }
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return config


LOSS_NAMES = {
    "mnrl": "MultipleNegativesRankingLoss (InfoNCE: in-batch negatives + the rows' hard negatives)",
    "cached-mnrl": "CachedMultipleNegativesRankingLoss (InfoNCE as MultipleNegativesRankingLoss, by GradCache: "
                   "the batch embedded a mini-batch at a time)",
}


def data_counts(run: Prepared) -> dict[str, Any]:
    return {**run.loaded.counts(), "rows_trained": len(run.train_rows) - run.left_out,
            "rows_held_out": len(run.held_out), "rows_left_out": run.left_out,
            "rows_with_negative": sum(1 for r in run.train_rows if r.negatives),
            "datasets": {name: len(next(iter(columns.values()))) for name, columns in run.tables.items()}}


def keep_log_until(path: Path, checkpoint: Path) -> None:
    from synthgen.train_log import keep_until

    if path.is_file():
        keep_until(path, json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["global_step"])
