"""The embedded model's throughput through the real pipeline: valid examples a minute and % valid.

    python bench/local.py              # 60 examples of the default kind mix (about 25 minutes on 2 cores)
    python bench/local.py --quick      # 12 examples, to check that it works
    python bench/local.py --n 100 --kinds sts=1,short-short=1 --config my.toml --repeats 2

Run it in the environment synthgen is installed in, with the local extra. In a temporary folder it
runs `synthgen brainstorm --backend local` (one round for each subtype the mix needs; timed apart,
not part of the figure), then `synthgen generate --n N --backend local` as a whole process: the
figure is the valid examples over that process's wall time, model load included. % valid is valid
over all answers judged (valid + rejected). Then, on the same tasks and seed, the naive loop of
bench/naive_local.py (one create_chat_completion at a time) makes as many valid examples of the same
plan (--baseline-n to change it): the ratio of the two rates is the figure that noise on a shared
machine moves least. It prints the figures and rewrites the "Local model"
section of bench/RESULTS.md with them, the machine (nproc, CPU model), the load average around the
run (other processes on the same cores lower the figure) and the date.
"""

import argparse
import collections
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTION = "Local model"


def synthgen(*args: str, cwd: Path, config: Optional[Path]) -> tuple[float, float, subprocess.CompletedProcess]:
    """One synthgen process: (wall seconds, CPU seconds of it and its children, the result)."""
    command = [sys.executable, "-m", "synthgen", *args, "--backend", "local", "--quiet"]
    if config is not None:
        command += ["--config", str(config)]
    before = os.times()
    began = time.monotonic()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    wall = time.monotonic() - began
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if result.returncode not in (0, 1):
        sys.exit(f"synthgen {' '.join(args)} failed ({result.returncode}):\n{result.stderr.strip()}")
    return wall, cpu, result


def subtypes_of(kinds: Optional[str]) -> list[str]:
    from synthgen.config import load_config, parse_weights
    from synthgen.kinds import KINDS

    overrides = {"kinds": parse_weights(kinds, "kinds")} if kinds else {}
    config = load_config(overrides=overrides)
    return [k for k in config.active_kinds() if KINDS[k].brainstormed]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


def naive(n: int, kinds: Optional[str], seed: int, tasks: Path) -> dict:
    """The baseline (bench/naive_local.py) on the same plan and tasks, as a process of its own."""
    command = [sys.executable, str(HERE / "naive_local.py"), "--tasks", str(tasks), "--n", str(n), "--seed", str(seed)]
    result = subprocess.run(command + (["--kinds", kinds] if kinds else []), capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"the naive baseline failed:\n{result.stderr.strip()}")
    figures = json.loads(result.stdout.splitlines()[-1])
    figures["per_minute"] = figures["valid"] / figures["wall"] * 60
    figures["valid_share"] = figures["valid"] / max(1, figures["valid"] + figures["rejected"])
    return figures


def one_run(n: int, kinds: Optional[str], seed: int, config: Optional[Path], tasks: Optional[Path],
            baseline_n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="synthgen-bench-local-") as folder:
        work = Path(folder)
        task_dir = tasks or work / "tasks"
        brainstorm_wall = 0.0
        if tasks is None:
            for subtype in subtypes_of(kinds):
                wall, _, result = synthgen("brainstorm", "--subtype", subtype, "--tasks", str(task_dir),
                                           cwd=work, config=config)
                brainstorm_wall += wall
                print(f"  brainstorm {subtype}: {wall:.0f} s; {result.stdout.strip()}", flush=True)
        load_before = load()
        args = ["generate", "--n", str(n), "--seed", str(seed), "--out", str(work / "out"), "--tasks", str(task_dir)]
        if kinds:
            args += ["--kinds", kinds]
        wall, cpu, result = synthgen(*args, cwd=work, config=config)
        load_after = load()
        manifest = json.loads((work / "out" / "manifest.json").read_text())
        examples = [json.loads(line) for line in (work / "out" / "examples.jsonl").read_text().splitlines() if line]
        baseline = naive(baseline_n, kinds, seed, task_dir) if baseline_n else None
    valid, rejected = manifest["valid"], manifest["rejected_total"]
    # Document lengths against the lengths asked for (short-long: num_words; long-long: at least 300).
    words = collections.defaultdict(list)
    for example in examples:
        if example["kind"] == "short-long":
            asked = example["placeholders"].get("num_words", "?")
            words["short-long"].append((len(example["positive"].split()), int(asked) if asked.isdigit() else 0))
        elif example["kind"] == "long-long":
            words["long-long"].append((len(example["positive"].split()), 300))
    return {
        "n": n,
        "valid": valid,
        "rejected": rejected,
        "reasons": manifest.get("rejected", {}),
        "per_kind": manifest.get("per_kind", {}),
        "wall": wall,
        "cpu": cpu,
        "per_minute": valid / wall * 60,
        "valid_share": valid / max(1, valid + rejected),
        "prompt_tokens": manifest.get("prompt_tokens", 0),
        "completion_tokens": manifest.get("completion_tokens", 0),
        "brainstorm_wall": brainstorm_wall,
        "load": (load_before, load_after),
        "words": {kind: (statistics.median(w for w, _ in pairs), statistics.median(a for _, a in pairs))
                  for kind, pairs in sorted(words.items())},
        "baseline": baseline,
        "description": next((line for line in result.stderr.splitlines() if "embedded model" in line), ""),
    }


def write_section(text: str) -> None:
    """Replace the "Local model" section of RESULTS.md, keeping the others (bench/run.py writes them)."""
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    parts = re.split(r"(?m)^(?=## )", existing)
    head, body = parts[0], {p.splitlines()[0][3:].strip(): p for p in parts[1:]}
    body[SECTION] = f"## {SECTION}\n\n{text.strip()}\n\n"
    RESULTS.write_text(head.rstrip() + "\n\n" + "".join(body.values()).rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 examples, to check that it works")
    parser.add_argument("--n", type=int, help="valid examples to make (default 60; 12 with --quick)")
    parser.add_argument("--kinds", help="kind mix, e.g. sts=1,short-short=1 (default: the config's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="generate runs (the median is reported)")
    parser.add_argument("--config", type=Path, help="a synthgen config over configs/default.toml")
    parser.add_argument("--tasks", type=Path, help="a task folder to use instead of brainstorming one")
    parser.add_argument("--baseline-n", type=int,
                        help="valid examples for the naive loop it is compared with (default: N; 0: none)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        sys.exit("the local extra is not installed: pip install 'synthgen[local]'")
    n = args.n or (12 if args.quick else 60)
    config = args.config.resolve() if args.config else None
    tasks = args.tasks.resolve() if args.tasks else None
    runs = []
    for repeat in range(args.repeats):
        print(f"run {repeat + 1} of {args.repeats}: {n} examples", flush=True)
        run = one_run(n, args.kinds, args.seed + repeat, config, tasks, n if args.baseline_n is None else args.baseline_n)
        runs.append(run)
        print(f"  {run['valid']} valid, {run['rejected']} rejected {run['reasons'] or ''} in {run['wall']:.0f} s: "
              f"{run['per_minute']:.2f} valid examples/minute, {run['valid_share']:.1%} valid "
              f"(load average {run['load'][0]:.2f} -> {run['load'][1]:.2f})", flush=True)
        if run["baseline"]:
            b = run["baseline"]
            print(f"  naive loop: {b['valid']} valid, {b['rejected']} rejected in {b['wall']:.0f} s: "
                  f"{b['per_minute']:.2f} valid examples/minute; synthgen {run['per_minute'] / b['per_minute']:.2f}x",
                  flush=True)
    best = sorted(runs, key=lambda r: r["per_minute"])[len(runs) // 2]
    import llama_cpp

    machine = (f"{nproc()} cores (nproc), {cpu_model()}, {platform.system()}, Python {platform.python_version()}, "
               f"llama-cpp-python {llama_cpp.__version__}")
    mix = args.kinds or "the default mix of configs/default.toml"
    per_kind = ", ".join(f"{k} {v}" for k, v in sorted(best["per_kind"].items()))
    words = "; ".join(f"{k}: {got:.0f} (asked {asked:.0f})" for k, (got, asked) in best["words"].items()) or "none made"
    figures = ", ".join(f"{r['per_minute']:.2f}" for r in runs)
    flags = (("--n", args.n), ("--kinds", args.kinds), ("--seed", args.seed or None),
             ("--repeats", args.repeats if args.repeats > 1 else None), ("--config", args.config), ("--tasks", args.tasks),
             ("--baseline-n", None if args.baseline_n is None else str(args.baseline_n)))
    command = "python bench/local.py" + "".join(f" {flag} {value}" for flag, value in flags if value)
    command += " --quick" if args.quick and not args.n else ""
    b = best["baseline"]
    baseline_row = (f"| naive loop on the same plan (bench/naive_local.py, {b['valid']} valid, {b['rejected']} rejected) | "
                    f"{b['per_minute']:.2f} a minute, {b['valid_share']:.1%} valid: synthgen is "
                    f"**{best['per_minute'] / b['per_minute']:.2f}x** |\n") if b else ""
    text = f"""{datetime.date.today().isoformat()}, {machine}

**{best['per_minute']:.2f} valid examples a minute, {best['valid_share']:.1%} valid**
({best['valid']} valid and {best['rejected']} rejected of {mix}, seed {args.seed}; `{command}`).

| | |
|---|---|
| generate wall time (one process, model load included) | {best['wall']:.0f} s |
| CPU time of that process | {best['cpu']:.0f} s |
| examples per kind | {per_kind} |
| rejected | {json.dumps(best['reasons']) if best['reasons'] else 'none'} |
| tokens: prompt / completion | {best['prompt_tokens']:,} / {best['completion_tokens']:,} |
| median words of a positive document | {words} |
| brainstorm before it (not in the figure) | {f"{best['brainstorm_wall']:.0f} s" if tasks is None else "none: --tasks given"} |
| load average before / after | {best['load'][0]:.2f} / {best['load'][1]:.2f} |
| runs (examples a minute) | {figures} |
{baseline_row}
Backend: {best['description'].removeprefix('synthgen ').split(': ', 1)[-1]}. Other processes on the same
cores lower the figure: the load average shows how busy the machine was.
"""
    print(text)
    if not args.no_write:
        write_section(text)
        print(f"wrote the {SECTION!r} section of {RESULTS}")


if __name__ == "__main__":
    main()
