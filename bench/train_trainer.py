"""synthgen train on the sentence-transformers Trainer against the hand-written loop it replaced.

The data and settings of the "Retrieval before and after training" table in RESULTS.md:
`bench/facts.py --per-task 25 --seed 0`, `synthgen split --test-share 0.25 --seed 0`, then
`synthgen train --epochs 3 --batch-size 32` from all-MiniLM-L6-v2, run twice in one sitting: with
this checkout's synthgen (the Trainer) and with BASELINE's (the hand-written PyTorch loop, extracted
with `git archive`, nothing in the checkout changes). Each trained model, and the base model, is
scored by this checkout's `synthgen eval retrieval` on the held-out tasks. Time per step is each
run's training time (model loading and saving left out, as each run reports it) over its steps;
the two runs fill their batches differently (the loop cut a batch short at a repeated text, the
Trainer's NO_DUPLICATES sampler fills it from further on; its rows per epoch are counted from its
own sampler, with the run's seed), so time per row trained is given too.

    HF_HUB_OFFLINE=1 python bench/train_trainer.py --epochs 1            # baseline: 0e31ff8, the last loop
    HF_HUB_OFFLINE=1 python bench/train_trainer.py --epochs 3 --no-write  # the table's 3 epochs, prints only

Writes the "Training: the Trainer against the hand-written loop" section of bench/RESULTS.md.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from run import machine, table, write_sections  # noqa: E402
from startup import extract  # noqa: E402

SECTION = "Training: the Trainer against the hand-written loop"
BASELINE = "0e31ff8"  # the last commit with the hand-written loop
DATE = "2026-11-29"
METRICS = ("ndcg@10", "mrr@10", "recall@1", "recall@10")


def synthgen(source: Path, *args: object) -> str:
    """`python -m synthgen ARGS` with SOURCE's package: run outside the checkout, whose own synthgen
    `python -m` would otherwise find first (the current directory leads sys.path)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(source)}
    proc = subprocess.run([sys.executable, "-m", "synthgen", *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        sys.exit(f"synthgen {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def retrieval(test: Path, model: list[str]) -> dict:
    report = json.loads(synthgen(ROOT, "eval", "retrieval", test, *model, "--json", "-q"))
    groups = report["groups"]
    return {"documents": report["documents"], "groups": groups}


def trainer_rows_per_epoch(train: Path, work: Path, batch_size: int) -> int:
    """The rows the Trainer's samplers put in the first epoch's batches (the same seed as the run)."""
    sys.path.insert(0, str(ROOT))
    from synthgen.train import TrainOptions, prepare

    run = prepare([train], None, work / "probe", TrainOptions(batch_size=batch_size, device="cpu"), show_progress=False)
    return sum(len(batch) for batch in run.trainer.get_train_dataloader().batch_sampler)


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--per-task", type=int, default=25)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        facts = work / "facts"
        subprocess.run([sys.executable, str(HERE / "facts.py"), "--out", str(facts / "examples.jsonl"),
                        "--per-task", str(args.per_task), "--seed", "0"], check=True)
        print(synthgen(ROOT, "split", facts / "examples.jsonl", "--out", facts / "split", "--test-share", "0.25",
                       "--seed", "0").strip())
        train, test = facts / "split" / "train.jsonl", facts / "split" / "test.jsonl"
        baseline = extract(args.baseline, work / "baseline")
        # The baseline's own words: the loop printed "for N steps", the Trainer "to step N".
        assert "for {config['steps']} steps" in (baseline / "synthgen" / "cli.py").read_text()
        runs, loads = {}, {"before": load()}
        for name, source in (("hand-written loop", baseline), ("Trainer", ROOT)):
            out = work / name.replace(" ", "-")
            said = synthgen(source, "train", train, "--out", out, "--epochs", args.epochs, "--batch-size",
                            args.batch_size, "-q").strip().splitlines()[0]
            print(said, flush=True)
            assert ("to step" in said) == (source == ROOT), f"{name} ran the wrong synthgen: {said}"
            config = json.loads((out / "synthgen-train.json").read_text())
            runs[name] = {"config": config, "retrieval": retrieval(test, ["--model", str(out)])}
        loads["after"] = load()
        base = retrieval(test, [])
        runs["hand-written loop"]["rows_per_epoch"] = runs["hand-written loop"]["config"]["rows"]  # every row, each epoch
        runs["Trainer"]["rows_per_epoch"] = trainer_rows_per_epoch(train, work, args.batch_size)
    rows = [["all-MiniLM-L6-v2 (base)", "-", "-", "-", "-", "-", *(f"{base['groups']['all'][m]:.3f}" for m in METRICS)]]
    for name, run in runs.items():
        config, groups = run["config"], run["retrieval"]["groups"]
        run["per_step"] = config["seconds"] / config["steps"]
        run["rows_per_step"] = run["rows_per_epoch"] * args.epochs / config["steps"]
        run["per_row"] = run["per_step"] / run["rows_per_step"]
        rows.append([f"trained: {name}", str(config["steps"]), f"{run['rows_per_step']:.1f}", f"{config['seconds']:.0f}",
                     f"{run['per_step']:.2f}", f"{run['per_row'] * 1000:.0f}", *(f"{groups['all'][m]:.3f}" for m in METRICS)])
    loop, trainer = runs["hand-written loop"], runs["Trainer"]
    ratio = trainer["per_step"] / loop["per_step"]
    by_kind = [[name, group, str(g["queries"]), *(f"{g[m]:.3f}" for m in METRICS)]
               for name, result in (("base", base), *((n, r["retrieval"]) for n, r in runs.items()))
               for group, g in result["groups"].items() if group != "all"]
    text = "\n\n".join([
        f"{DATE}, {machine()}, torch on 2 threads; load average {loads['before']} before, {loads['after']} after "
        f"(the machine is shared). `{' '.join(['HF_HUB_OFFLINE=1 python bench/train_trainer.py', *sys.argv[1:]])}` "
        f"(baseline {args.baseline}).",
        table(["model", "steps", "rows / step", "training s", "s / step", "ms / row", *METRICS], rows),
        table(["model", "kind", "queries", *METRICS], by_kind),
        f"Same data as \"Retrieval before and after training\" above: {loop['config']['rows']} training rows of "
        f"`bench/facts.py --per-task {args.per_task} --seed 0` split by task (`--test-share 0.25 --seed 0`), "
        f"{args.epochs} epoch(s) at batch size {args.batch_size}, lr 2e-5, warm-up 10%, scale 50, from all-MiniLM-L6-v2; "
        f"the test pool is the held-out examples' {base['documents']} documents. The Trainer takes "
        f"{ratio:.2f}x the loop's time per step ({trainer['per_step']:.2f} s against {loop['per_step']:.2f} s) and "
        f"{trainer['per_row'] / loop['per_row']:.2f}x its time per row trained (a step of the loop held "
        f"{loop['rows_per_step']:.1f} rows on average, a step of the Trainer {trainer['rows_per_step']:.1f}: the loop "
        f"cut a batch short at a repeated long-short label, the Trainer's NO_DUPLICATES sampler fills it from further "
        f"on). The Trainer's time includes its checkpoint at the epoch's end (model and optimizer state). "
        + (f"It takes {trainer['config']['steps']} steps where the loop took {loop['config']['steps']}: the loop packed "
           f"rows into batches itself, the Trainer's samplers draw as many batches from each dataset as full "
           f"batches would take. " if trainer['config']['steps'] != loop['config']['steps'] else "")
        + "Training loss: loop "
        f"{loop['config']['loss_first']:.3f} -> {loop['config']['loss_last_20_mean']:.3f}, Trainer "
        f"{trainer['config']['loss_first']:.3f} -> {trainer['config']['loss_last_20_mean']:.3f} (first step -> mean of "
        f"the last 20).",
    ])
    print(text)
    if not args.no_write:
        write_sections({SECTION: text})
        print(f"wrote {SECTION!r} in bench/RESULTS.md")


if __name__ == "__main__":
    main()
