"""The record of a training run a person reads: every step's loss and learning rate, and every
evaluation's figures, one JSON object a line in OUT/train-log.jsonl as they come (a run killed
half-way keeps what it logged), and a plot of them beside the model.

A TrainerCallback, so it sees what the Trainer logs, on the main process only.
"""

import json
from pathlib import Path
from typing import Any, Optional

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

LOG_NAME = "train-log.jsonl"
PLOT_NAME = "train-loss.png"
EVAL_PREFIX = "eval_"
# The figure plotted beside the loss, when the evaluator reports it.
PLOTTED_METRIC = "ndcg@10"


class StepLog(TrainerCallback):
    """Appends each of the Trainer's logs (with its step and epoch) to a JSONL file."""

    def __init__(self, path: Path):
        self.path = path
        self.records: list[dict[str, Any]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: Optional[dict] = None, **kwargs: Any) -> None:
        if not logs or not state.is_world_process_zero:
            return
        record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), **logs}
        self.records.append(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a log; a line torn by a kill is passed over."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def keep_until(path: Path, step: int) -> None:
    """A resumed run logs the steps after its checkpoint again: the old lines for them go."""
    kept = [r for r in read_log(path) if r.get("step", 0) <= step]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


def loss_curve(records: list[dict[str, Any]]) -> list[list[float]]:
    """[step, loss] of every training step logged."""
    return [[r["step"], r["loss"]] for r in records if "loss" in r and not any(k.startswith(EVAL_PREFIX) for k in r)]


def evaluations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each evaluation: its step and its figures, the Trainer's eval_ prefix and timings left out."""
    found = []
    for record in records:
        figures = {k[len(EVAL_PREFIX):]: v for k, v in record.items()
                   if k.startswith(EVAL_PREFIX) and not k.endswith(("_runtime", "_per_second"))}
        if figures:
            found.append({"step": record["step"], **figures})
    return found


def plotted_key(evaluation: dict[str, Any]) -> Optional[str]:
    return next((k for k in evaluation if k.endswith(PLOTTED_METRIC)), None)


def plot(records: list[dict[str, Any]], path: Path) -> Optional[Path]:
    """Loss against step, and the evaluator's nDCG@10 on a second axis; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    curve = loss_curve(records)
    if not curve:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4))
    lines = ax.plot([s for s, _ in curve], [v for _, v in curve], color="tab:blue", label="training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    evals = evaluations(records)
    key = plotted_key(evals[-1]) if evals else None
    if key is not None:
        other = ax.twinx()
        points = [(e["step"], e[key]) for e in evals if key in e]
        lines += other.plot([s for s, _ in points], [v for _, v in points], color="tab:orange", marker="o",
                            label=f"held-out {PLOTTED_METRIC}")
        other.set_ylabel(f"held-out {PLOTTED_METRIC}")
        other.set_ylim(-0.02, 1.02)
    ax.legend(lines, [str(line.get_label()) for line in lines], loc="center right")
    ax.set_title("synthgen train")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


class StepBar(ProgressCallback):
    """The Trainer's progress bar, with the loss beside it and a line per evaluation, instead of a
    printed dict per step."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Optional[dict] = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        if "loss" in logs:
            self.training_bar.set_postfix_str(f"loss={logs['loss']:.4f}")
        figures = evaluations([{"step": state.global_step, **logs}])
        if figures:
            key = plotted_key(figures[0])
            if key is not None:
                self.training_bar.write(f"step {state.global_step}: held-out {PLOTTED_METRIC} {figures[0][key]:.4f}")

    @staticmethod
    def replace_progress(trainer: Any, show_progress: bool) -> None:
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        if show_progress:
            trainer.add_callback(StepBar())
