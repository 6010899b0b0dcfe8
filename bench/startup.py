"""Start-up time of the CLI: `synthgen --help` and `synthgen stats` on a small file, whole processes.

Each command is started --runs times (after one warm-up run that is not counted) as
`python -m synthgen ...` with PYTHONPATH set to the source tree under test, and the wall time of
each whole process is taken, and its CPU time (user + system, steadier than wall time on a busy
machine); medians are reported, with min and max wall time for the spread. The .pyc files are
written on the warm-up run (into a temporary PYTHONPYCACHEPREFIX, even under PYTHONDONTWRITEBYTECODE)
and read on the timed ones, as an installed package's are. With
--baseline REV the same commands also run against REV's synthgen package (extracted with
`git archive` into a temporary folder), taking turns with this checkout's run by run, so that a
machine slowing down during the call moves both alike. A last row times `import typer,
typer._adapters` alone: the floor under any command that takes a value, which Typer coerces with
pydantic. The small file is 100 stored examples (design.md §3), written by this script. It prints a
table and rewrites the "Start-up" section of bench/RESULTS.md, keeping the other sections.

    python bench/startup.py                      # this checkout only
    python bench/startup.py --baseline 6992cbc   # and before the lazy imports, for comparison
"""

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from run import machine, write_sections  # bench/run.py: the same machine line and RESULTS.md sections

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
SECTION = "Start-up"
FLOOR = "floor: import typer, typer._adapters"
KINDS = ("short-long", "long-short", "short-short", "long-long", "sts", "bitext")
NO_NEGATIVE = ("short-short", "long-long")


def stored(i: int) -> dict:
    """A stored example as `synthgen generate` writes it (the shape of tests/stored.py)."""
    kind = KINDS[i % len(KINDS)]
    task = f"Given a question, retrieve passages that answer it ({i % 3})."
    return {
        "id": f"run-{i}", "index": i, "kind": kind, "task": task, "language": "English",
        "query": f"what is thing number {i}", "positive": f"thing number {i} is a thing of note",
        "negative": None if kind in NO_NEGATIVE else f"negative document {i} on another matter",
        "placeholders": {"task": task, "language": "English"}, "raw": {}, "model": "fake-model", "seed": 0,
    }


def write_examples(path: Path, n: int = 100) -> Path:
    path.write_text("".join(json.dumps(stored(i)) + "\n" for i in range(n)), encoding="utf-8")
    return path


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def extract(rev: str, into: Path) -> Path:
    """REV's synthgen package, unpacked into INTO (nothing in the checkout changes)."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "synthgen"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    into.mkdir(parents=True)
    with tempfile.TemporaryFile() as tmp:
        tmp.write(archive)
        tmp.seek(0)
        with tarfile.open(fileobj=tmp) as tar:
            tar.extractall(into, filter="data")
    return into


def once(source: Path, args: list[str], work: Path, label: str) -> tuple[float, float]:
    """Wall and CPU seconds of one `python ARGS` with SOURCE's package, run in WORK."""
    env = {**os.environ, "PYTHONPATH": str(source), "PYTHONPYCACHEPREFIX": str(work / "pycache" / label)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # cwd: `python -m` puts the working folder first on sys.path, ahead of PYTHONPATH.
    done = subprocess.run([sys.executable, *args], env=env, cwd=work,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"python {' '.join(args)} failed ({done.returncode}) with {source}:\n{done.stderr}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def load() -> str:
    """The 1-minute load average: above the core count, other work was competing for the CPU."""
    return f"{os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each command (at least 5)")
    parser.add_argument("--baseline", metavar="REV", help="also time REV's synthgen (a git revision), for comparison")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs: at least 5")
    load_before = load()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        small = write_examples(work / "examples.jsonl")
        commands = {"synthgen --help": ["-m", "synthgen", "--help"],
                    f"synthgen stats <{small.name}, 100 examples>": ["-m", "synthgen", "stats", str(small)]}
        head = git("rev-parse", "--short", "HEAD") + (" + changes" if git("status", "--porcelain", "synthgen") else "")
        sources: dict[str, Path] = {f"this checkout ({head})": ROOT}
        if args.baseline:
            rev = git("rev-parse", "--short", args.baseline)
            sources = {f"before ({rev})": extract(rev, work / "baseline"), **sources}
        jobs = [(command, label, source, argv) for command, argv in commands.items() for label, source in sources.items()]
        # The floor of any command with a parameter: Typer imports pydantic to coerce every value but a flag.
        jobs.append((FLOOR, "python, typer, pydantic", ROOT, ["-c", "import typer, typer._adapters"]))
        times: dict[tuple[str, str], list[tuple[float, float]]] = {(command, label): [] for command, label, _, _ in jobs}
        for _command, label, source, argv in jobs:  # warm-up: the disk cache and .pyc files
            once(source, argv, work, label)
        for _ in range(args.runs):
            for command, label, source, argv in jobs:  # taking turns: drift moves all alike
                times[command, label].append(once(source, argv, work, label))
    rows = []
    for (command, label), runs in times.items():
        wall, cpu = [w for w, _ in runs], [c for _, c in runs]
        rows.append([command, label, f"**{median(wall):.3f}**", f"{min(wall):.3f}", f"{max(wall):.3f}",
                     f"{median(cpu):.3f}"])
    header = ["command", "code", "wall s, median", "min", "max", "CPU s, median"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines)
    print(table)
    invocation = "python bench/startup.py" + (f" --baseline {args.baseline}" if args.baseline else "")
    if args.runs != 7:
        invocation += f" --runs {args.runs}"
    text = (f"{datetime.date.today().isoformat()}, {machine()}\n\n{table}\n\n"
            f"Whole processes (`python -m synthgen ...`), {args.runs} runs each after one warm-up (which writes "
            f"the .pyc files), taking turns; CPU is user + system. `{invocation}`. The small file is 100 "
            f"stored examples of the six kinds. The floor is what Python and Typer cost before synthgen does "
            f"anything: Typer imports pydantic (typer._adapters) to coerce every parameter but a flag, so stats "
            f"pays it and --help does not. Load average before and after: {load_before} / {load()}.")
    if not args.no_write:
        write_sections({SECTION: text})
        print(f"wrote the {SECTION!r} section of {RESULTS}")


if __name__ == "__main__":
    main()
