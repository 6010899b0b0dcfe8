"""The benchmark: throughput against a loopback server, rate limits, dedup, and the peer.

    python bench/run.py            # the full run (about 10 minutes on 2 cores)
    python bench/run.py --quick    # smaller counts, to check that it works

Run it in the environment synthgen is installed in. It starts its own OpenAI-compatible server
(bench/server.py) with a fixed latency, measures in one run a bare aiohttp loop (the ceiling),
synthgen generate at several concurrencies, distilabel 1.5.3 on the same server (installed into
bench/.venv-distilabel, not a synthgen dependency), the --rpm pacing, a 429 storm, and synthgen
dedup against `LC_ALL=C sort -u` on the same keys. Every figure is a whole process, timed from
outside (wall clock, and CPU and peak memory from the kernel's accounting of that process and its
children). It prints a table and rewrites its sections of bench/RESULTS.md.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from synthgen.native import dedup_native

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
LATENCY = 0.1


@dataclass
class Run:
    wall: float
    cpu: float  # user + sys of the process and its children
    peak_mb: float  # the largest single process
    status: int
    out: str


def run(args: list[str], cwd: Path, env: Optional[dict] = None, timeout: float = 1800) -> Run:
    """One whole process, measured by the kernel (wait4) rather than from inside."""
    with tempfile.TemporaryFile("w+") as sink:
        began = time.monotonic()
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True)
        deadline = began + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
            time.sleep(0.01)
        wall = time.monotonic() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        sink.seek(0)
        out = sink.read()
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode, out)


class Server:
    """bench/server.py in its own process."""

    def __init__(self, latency: float, reject_share: float = 0.0, retry_after: float = 1.0, task_pool: int = 0,
                 first_number: int = 0, count_prompt: str = "chars"):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "server.py"), "--latency", str(latency), "--reject-share", str(reject_share),
             "--retry-after", str(retry_after), "--task-pool", str(task_pool), "--first-number", str(first_number),
             "--count-prompt", count_prompt],
            stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def arrivals(self) -> list[float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats") as response:
            return json.load(response)["arrivals"]

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{self.port}/reset", method="POST")).read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def synthgen(*args: object) -> list[str]:
    return [sys.executable, "-m", "synthgen", *map(str, args)]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


# -- throughput ------------------------------------------------------------------------------------


def throughput(work: Path, quick: bool, repeats: int) -> tuple[list[list[str]], dict]:
    server = Server(LATENCY)
    figures: dict = {}
    rows = []
    try:
        run(synthgen("brainstorm", "--base-url", server.url, "-q"), work)
        startup = median([run(synthgen("--version"), work).cpu for _ in range(3)])
        figures["startup_cpu"] = startup
        # About 25 s at 16 and 64, so start-up (about 1 s) weighs little; 20,000 at 256 as specified.
        plans = [(16, 400 if quick else 4000), (64, 1600 if quick else 16000), (256, 4000 if quick else 20000)]
        for concurrency, n in plans:
            bare, ours = [], []
            for _ in range(repeats):  # A B A B: a drift of the machine's speed hits both alike
                bare.append(run([sys.executable, str(HERE / "bare_client.py"), server.url, str(n), str(concurrency)], work))
                ours.append(run(synthgen("generate", "--n", n, "--concurrency", concurrency, "--base-url", server.url,
                                         "--out", f"out-{concurrency}", "--overwrite", "-q"), work))
                assert ours[-1].status == 0, ours[-1].out
            ideal = concurrency / LATENCY
            bare_rate = median([n / r.wall for r in bare])
            our_rate = median([n / r.wall for r in ours])
            ratios = median([b.wall / o.wall for b, o in zip(bare, ours)])
            cpu_ms = median([(r.cpu - startup) / n * 1000 for r in ours])
            figures[concurrency] = {"n": n, "bare": bare_rate, "synthgen": our_rate, "ratio": ratios,
                                    "of_ideal": our_rate / ideal, "cpu_ms": cpu_ms}
            rows.append([f"{concurrency}", f"{n:,}", f"{ideal:,.0f}", f"{bare_rate:,.0f}", f"{our_rate:,.0f}",
                         f"{ratios:.0%}", f"{our_rate / ideal:.0%}", f"{cpu_ms:.2f}"])
        peer = distilabel(work, server.url, plans[-1][1], plans[-1][0])
        if peer is not None:
            figures["distilabel"] = plans[-1][1] / peer.wall
            figures["vs_distilabel"] = figures[256]["synthgen"] / figures["distilabel"]
    finally:
        server.stop()
    return rows, figures


def distilabel(work: Path, url: str, n: int, concurrency: int) -> Optional[Run]:
    venv = HERE / ".venv-distilabel"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "distilabel==1.5.3", "openai",
                                    "requests"], capture_output=True, text=True)
        if installed.returncode:
            print(f"distilabel could not be installed; left out:\n{installed.stderr[-500:]}")
            shutil.rmtree(venv)
            return None
    result = run([str(python), str(HERE / "distilabel_job.py"), url, str(n), str(concurrency)], work)
    if result.status or f"valid {n} of {n}" not in result.out:
        print(f"distilabel run failed; left out:\n{result.out[-800:]}")
        return None
    return result


# -- rate limits -----------------------------------------------------------------------------------


def rate_limits(work: Path, quick: bool) -> dict:
    figures: dict = {}
    rpm, seconds = 3000, (12 if quick else 30)
    n = rpm * seconds // 60
    server = Server(0.05)
    try:
        result = run(synthgen("generate", "--n", n, "--concurrency", 64, "--rpm", rpm, "--kinds", "sts=1",
                              "--base-url", server.url, "--out", "out-rpm", "--overwrite", "-q"), work)
        assert result.status == 0, result.out
        arrivals = server.arrivals()
    finally:
        server.stop()
    first, last = arrivals[0], arrivals[-1]
    windows = []
    start = first
    while start + 10 <= last:  # every 10 s window, sliding by a second
        count = sum(1 for t in arrivals if start <= t < start + 10)
        windows.append(count / 10 * 60)
        start += 1
    figures["rpm"] = {"target": rpm, "n": n, "min": min(windows), "max": max(windows),
                      "worst": max(abs(w - rpm) / rpm for w in windows)}

    n = 600 if quick else 2000
    clean_server = Server(LATENCY)
    try:
        clean = run(synthgen("generate", "--n", n, "--concurrency", 64, "--kinds", "sts=1",
                             "--base-url", clean_server.url, "--out", "out-clean", "--overwrite", "-q"), work)
    finally:
        clean_server.stop()
    storm_server = Server(LATENCY, reject_share=0.2, retry_after=1.0)
    try:
        storm = run(synthgen("generate", "--n", n, "--concurrency", 64, "--kinds", "sts=1",
                             "--base-url", storm_server.url, "--out", "out-storm", "--overwrite", "-q"), work)
    finally:
        storm_server.stop()
    manifest = json.loads((work / "out-storm" / "manifest.json").read_text())
    figures["storm"] = {"n": n, "clean": clean.wall, "storm": storm.wall, "cooldown": manifest["cooldown_seconds"],
                        "retries": manifest["retries"], "valid": manifest["valid"],
                        "excess": storm.wall - clean.wall - manifest["cooldown_seconds"]}
    return figures


# -- dedup -----------------------------------------------------------------------------------------

DEDUP_PAIRS = 3


def dedup(work: Path, quick: bool) -> list[dict]:
    """synthgen dedup and `LC_ALL=C sort -u` on the same records' keys, run in turn (ours, sort, ours,
    sort, ...): median wall times, the median of each pair's ratio, the largest peak of each."""
    figures = []
    env = {**os.environ, "LC_ALL": "C"}
    for n in ([100_000, 1_000_000] if quick else [10_000_000, 30_000_000]):
        records, keys = work / f"records-{n}.jsonl", work / f"keys-{n}.txt"
        deduped, unique = work / f"dedup-{n}.jsonl", work / f"sorted-{n}.txt"
        subprocess.run([sys.executable, str(HERE / "make_records.py"), str(n), str(records), str(keys)], check=True)
        ours, theirs = [], []
        for _ in range(1 if quick else DEDUP_PAIRS):
            ours.append(run(synthgen("dedup", records, "--out", deduped, "-q"), work))
            assert ours[-1].status == 0, ours[-1].out
            theirs.append(run(["sort", "-u", "-o", str(unique), str(keys)], work, env=env))
            assert theirs[-1].status == 0, theirs[-1].out
        figures.append({
            "n": n, "ours": median([r.wall for r in ours]), "sort": median([r.wall for r in theirs]),
            "speed_up": median([t.wall / o.wall for o, t in zip(ours, theirs)]),
            "ours_mb": max(r.peak_mb for r in ours), "sort_mb": max(r.peak_mb for r in theirs),
            "kept": int(re.search(r"kept (\d+)", ours[-1].out).group(1)),  # type: ignore[union-attr]
            "sort_unique": sum(1 for _ in open(unique, "rb")),
        })
        for path in (records, keys, deduped, unique):
            path.unlink()
    return figures


def extrapolated(a: dict, b: dict, n: int) -> dict:
    """Times and peaks at n records on the straight line through two measured sizes (linear in records)."""
    at = {key: a[key] + (b[key] - a[key]) * (n - a["n"]) / (b["n"] - a["n"])
          for key in ("ours", "sort", "ours_mb", "sort_mb")}
    return {**at, "n": n, "speed_up": at["sort"] / at["ours"]}


# -- the local model -------------------------------------------------------------------------------


def local_model(quick: bool) -> Optional[str]:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return None
    script = HERE / "local.py"
    if not script.exists():
        return None
    result = subprocess.run([sys.executable, str(script), *(["--quick"] if quick else [])], text=True)
    return "measured by bench/local.py" if result.returncode == 0 else None


# -- report ----------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


def write_sections(sections: dict[str, str]) -> None:
    """Replace the named `## ` sections of RESULTS.md, keeping the others (bench/local.py writes one)."""
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    parts = re.split(r"(?m)^(?=## )", existing)
    head, body = parts[0], {p.splitlines()[0][3:].strip(): p for p in parts[1:]}
    for title, text in sections.items():
        body[title] = f"## {title}\n\n{text.strip()}\n\n"
    # Every section ends in a blank line, the file's last one (kept as it was read) included.
    sections_text = "".join(part.rstrip() + "\n\n" for part in body.values())
    RESULTS.write_text(head.rstrip() + "\n\n" + sections_text.rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, to check that it works")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each throughput pair")
    parser.add_argument("--skip", action="append", default=[], choices=["throughput", "limits", "dedup", "local"])
    args = parser.parse_args()
    stamp = f"{datetime.date.today().isoformat()}, {machine()}" + (" (--quick)" if args.quick else "")
    sections = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if "throughput" not in args.skip:
            rows, figures = throughput(work, args.quick, 1 if args.quick else args.repeats)
            text = table(["concurrency", "N", "ideal req/s", "bare aiohttp req/s", "synthgen req/s",
                          "synthgen / bare", "synthgen / ideal", "client CPU ms / example"], rows)
            peer = figures.get("distilabel")
            text += (f"\n\ndistilabel 1.5.3 (GenerateTextRetrievalData + OpenAILLM, {rows[-1][0]} in flight, "
                     f"N {rows[-1][1]}): " + (f"{peer:,.0f} req/s; synthgen is {figures['vs_distilabel']:.1f}x "
                                               "faster." if peer else "not measured."))
            text += (f"\n\nServer latency {LATENCY * 1000:.0f} ms; ideal = concurrency / latency. Ratios are medians of "
                     "pairs run back to back; CPU per example is the generate process's user + sys time less "
                     f"its start-up ({figures['startup_cpu']:.2f} s), over N. Client and server share the cores.")
            sections["Throughput"] = f"{stamp}\n\n{text}"
            print(text, flush=True)
        if "limits" not in args.skip:
            figures = rate_limits(work, args.quick)
            rpm, storm = figures["rpm"], figures["storm"]
            text = (f"--rpm {rpm['target']} for {rpm['n']:,} requests: every 10 s window ran at "
                    f"{rpm['min']:,.0f} to {rpm['max']:,.0f} requests a minute, at most "
                    f"{rpm['worst']:.1%} from the target.\n\n"
                    f"A server answering 429 (Retry-After 1 s) to 20% of requests, N {storm['n']:,} at concurrency 64: "
                    f"{storm['storm']:.1f} s against {storm['clean']:.1f} s without the 429s; the cool-downs it asked "
                    f"for add up to {storm['cooldown']:.1f} s (one shared pause per burst), {storm['retries']} "
                    f"retries, {storm['valid']:,} valid; time beyond the cool-downs: {storm['excess']:+.1f} s.")
            sections["Rate limits"] = f"{stamp}\n\n{text}"
            print(text, flush=True)
        if "dedup" not in args.skip:
            load_before = os.getloadavg()[0]
            measured = dedup(work, args.quick)
            load_after = os.getloadavg()[0]
            far = extrapolated(*measured, 100_000_000)
            rows = [[f"{f['n']:,}", f"{f['ours']:.1f}", f"{f['sort']:.1f}", f"{f['speed_up']:.2f}x",
                     f"{f['ours_mb']:,.0f}", f"{f['sort_mb']:,.0f}", f"{f['kept']:,} / {f['sort_unique']:,}"]
                    for f in measured]
            rows.append([f"{far['n']:,} (extrapolated)", f"{far['ours']:.0f}", f"{far['sort']:.0f}",
                         f"{far['speed_up']:.2f}x", f"{far['ours_mb']:,.0f}", f"{far['sort_mb']:,.0f}", "-"])
            text = table(["records", "synthgen dedup s", "LC_ALL=C sort -u s", "speed-up", "synthgen peak MB",
                          "sort peak MB", "kept / sort's unique"], rows)
            pairs = "1 pair" if args.quick else f"{DEDUP_PAIRS} pairs"
            text += ("\n\nRecords of about 260 bytes, a tenth of them repeats; sort -u gets the same keys "
                     "(kind, query, positive, negative) one a line. Whole processes, run in turn "
                     f"({pairs} at each size): median wall times; speed-up = sort's time / synthgen's, the "
                     "median of the pairs' ratios. Peak memory is the largest single process (for synthgen, "
                     "the writer, which holds a 16-byte digest a distinct key in a table at most 70% full; "
                     f"the compiled module {'was' if dedup_native else 'was not'} built). The "
                     f"{far['n']:,} row is not measured: it extrapolates the {measured[0]['n']:,} and "
                     f"{measured[1]['n']:,} rows on a straight line (linear in records). Load average (1 minute) "
                     f"at the start {load_before:.1f}, at the end {load_after:.1f}: the cores were shared.")
            sections["Dedup"] = f"{stamp}\n\n{text}"
            print(text, flush=True)
        if "local" not in args.skip and local_model(args.quick) is None:
            print("local model: not measured (install the local extra)")
    write_sections(sections)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
