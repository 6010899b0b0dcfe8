"""Shards and Ray: one run made by one process, by two shard processes and a merge, and by
`generate --ray local --shards 2`, against the same loopback server; and what Ray costs to have.

    python bench/shards.py [--quick] [--n 20000] [--concurrency 128]

Every run is a whole process against bench/server.py (100 ms latency), on the default kind mix
(its tasks brainstormed once, before the runs, so no run pays for them). The two shards run at
--concurrency each, so they are compared with one process at twice that (the same requests in
flight) as well as at --concurrency. Ray's own costs: the installed size of the package, its
import time, and starting and stopping a local instance. Writes the '## Shards and Ray' section of
bench/RESULTS.md.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import LATENCY, Server, machine, median, run, synthgen, table, write_sections  # noqa: E402

RAY_START = """
import logging, os, time
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
import ray
began = time.monotonic()
ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
started = time.monotonic()
ray.get([ray.remote(lambda: 1).options(num_cpus=1).remote() for _ in range(2)])
tasks = time.monotonic()
ray.shutdown()
print(started - began, tasks - started, time.monotonic() - tasks)
"""


def ray_costs(work: Path) -> dict:
    """Installed size, import time (over a bare interpreter's start), a local instance's start, first
    two tasks and stop."""
    files = importlib.metadata.files("ray") or []
    installed = sum(f.locate().stat().st_size for f in files if f.locate().is_file()) / 1e6
    bare = median([run([sys.executable, "-c", "pass"], work).wall for _ in range(5)])
    imported = median([run([sys.executable, "-c", "import ray"], work).wall for _ in range(5)])
    starts = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", RAY_START], cwd=work, capture_output=True, text=True, check=True)
        starts.append([float(x) for x in proc.stdout.split()])
    return {"version": importlib.metadata.version("ray"), "installed_mb": installed, "import_s": imported - bare,
            "init_s": median([s[0] for s in starts]), "tasks_s": median([s[1] for s in starts]),
            "shutdown_s": median([s[2] for s in starts])}


def brainstorm_once(work: Path, url: str, n: int) -> None:
    """The tasks every run below plans with, so that none of them brainstorms."""
    from synthgen.config import load_config
    from synthgen.kinds import KINDS
    from synthgen.tasks import needed_tasks

    config = load_config()
    needed = needed_tasks(n, config.active_kinds(), config.brainstorm.examples_per_task)
    for kind, count in needed.items():
        if KINDS[kind].brainstormed:
            done = run(synthgen("brainstorm", "--subtype", kind, "--n-tasks", count, "--base-url", url, "-q"), work)
            assert done.status == 0, done.out


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def complete(folder: Path, n: int) -> bool:
    merged = manifest(folder)
    return merged["status"] == "complete" and merged["valid"] == n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, to check that it works")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=128, help="each shard's; one process runs at this and twice it")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of the four runs (medians are reported)")
    args = parser.parse_args()
    n, concurrency = (2_000 if args.quick else args.n), args.concurrency
    args.repeats = 1 if args.quick else args.repeats
    stamp = f"{datetime.date.today().isoformat()}, {machine()}" + (" (--quick)" if args.quick else "")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SYNTHGEN_", "RAY_"))}
    load_before = os.getloadavg()[1]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        costs = ray_costs(work)
        print(costs, flush=True)
        server = Server(LATENCY)
        try:
            brainstorm_once(work, server.url, n)
            flags = ["--n", n, "--base-url", server.url, "--model", "m", "-q"]
            walls: dict[str, list[float]] = {}
            shard_walls: list[float] = []

            def measure(name: str, *commands: list, together: bool = False) -> None:
                began = time.monotonic()
                if together:  # started at once, as two machines would be
                    procs = [subprocess.Popen(c, cwd=work, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True) for c in commands]
                    errors = [p.communicate()[1] for p in procs]
                    assert all(p.returncode == 0 for p in procs), errors
                else:
                    for command in commands:
                        done = run(command, work, env=env)
                        assert done.status == 0, done.out
                walls.setdefault(name, []).append(time.monotonic() - began)

            for _ in range(args.repeats):  # A B C D A B C D: a drift of the shared machine hits all alike
                for c in (concurrency, 2 * concurrency):
                    measure(f"one {c}", synthgen("generate", *flags, "--concurrency", c, "--out", f"one-{c}",
                                                 "--overwrite"))
                measure("shards", *[synthgen("generate", *flags, "--concurrency", concurrency, "--shard", f"{k}/2",
                                             "--out", "sharded", "--overwrite") for k in range(2)], together=True)
                measure("merge", synthgen("merge", "sharded-shards", "--out", "sharded"))
                assert complete(work / "sharded", n)
                measure("ray", synthgen("generate", *flags, "--concurrency", concurrency, "--ray", "local",
                                        "--shards", 2, "--out", "ray", "--overwrite"))
                assert complete(work / "ray", n)
                shard_walls.append(max(manifest(work / f"ray-shards/{k}-of-2")["wall_seconds"] for k in range(2)))
            wall = {name: median(values) for name, values in walls.items()}
            rows = [[f"one process, {c} in flight", f"{wall[f'one {c}']:.1f}", "", f"{n / wall[f'one {c}']:,.0f}"]
                    for c in (concurrency, 2 * concurrency)]
            both = wall["shards"] + wall["merge"]
            rows.append([f"2 shard processes, {concurrency} in flight each, then merge", f"{both:.1f}",
                         f"merge {wall['merge']:.1f}", f"{n / both:,.0f}"])
            rows.append([f"--ray local --shards 2, {concurrency} in flight each (merge included)",
                         f"{wall['ray']:.1f}", f"shards {median(shard_walls):.1f}", f"{n / wall['ray']:,.0f}"])
        finally:
            server.stop()
    overhead = median([ray - shards for ray, shards in zip(walls["ray"], shard_walls)])
    text = table(["how", "wall s", "of which", "examples/s"], rows)
    text += (
        f"\n\n`python bench/shards.py{' --quick' if args.quick else ''}`: N {n:,} examples of the default kind mix "
        f"against bench/server.py ({LATENCY * 1000:.0f} ms latency), tasks brainstormed once before; each run a "
        "whole process (the shards: two processes started at once, as two machines would run them). "
        f"Two shards at {concurrency} each against one process at {2 * concurrency}: "
        f"{wall[f'one {2 * concurrency}'] / both:.2f}x its speed as two processes "
        f"and a merge, {wall[f'one {2 * concurrency}'] / wall['ray']:.2f}x with --ray (medians of {args.repeats} "
        "rounds, the four runs of a round back to back; the machine's 5-minute load average, from other jobs too, "
        f"was {load_before:.1f} before and {os.getloadavg()[1]:.1f} after). On 2 cores the client "
        "and the server share the CPU, so shards gain here only what one process leaves idle; their use is "
        "machines (and servers) that one process cannot reach.\n\n"
        f"What --ray adds to the shards' own time ({median(shard_walls):.1f} s, the longest shard's, from its "
        f"manifest): {overhead:.1f} s (start-up, the Ray instance, scheduling, the merge, the stop). "
        f"Ray {costs['version']} itself: {costs['installed_mb']:,.0f} MB installed; `import ray` "
        f"{costs['import_s']:.2f} s over a bare interpreter; a local instance starts in {costs['init_s']:.1f} s, "
        f"runs its first two tasks in {costs['tasks_s']:.1f} s (worker start-up) and stops in "
        f"{costs['shutdown_s']:.1f} s (medians of 2). `synthgen --help` never imports it (tests/test_startup.py)."
    )
    print(text)
    write_sections({"Shards and Ray": f"{stamp}\n\n{text}"})
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
