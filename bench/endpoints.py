"""Several endpoints at once: does a run over two endpoints get the sum of what each gives alone?

    python bench/endpoints.py            # about 7 minutes on 2 cores
    python bench/endpoints.py --quick    # smaller counts, to check that it works

Two bench/server.py processes with a fixed latency each. For each pair of latencies, in one run and
interleaved (A alone, B alone, both; repeated), whole `synthgen generate` processes: endpoint A
alone at concurrency C, B alone at C, then both at once (`--base-url A --base-url B --concurrency
C`, 2C in flight) for twice the examples, so that every process runs about as long and start-up
weighs the same. The figure is the pooled rate over the sum of the two single rates, the median
of the repeats. Then an endpoint dies mid-run: B's server is killed halfway through a pooled run,
which must still end with N valid examples. Prints the figures and rewrites the "Several
endpoints" section of bench/RESULTS.md.
"""

import argparse
import datetime
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import Server, machine, median, run, synthgen, table, write_sections  # noqa: E402

CONCURRENCY = 32
SECOND = 10**9  # where the second server's answers are numbered from: the two never answer alike


def generate(work: Path, out: str, n: int, *servers: Server, config: str = "") -> tuple[float, dict]:
    """One whole generate process: its wall time and its manifest."""
    urls = [flag for server in servers for flag in ("--base-url", server.url)]
    extra = ["--config", config] if config else []
    result = run(synthgen("generate", "--n", n, "--kinds", "sts=1", "--concurrency", CONCURRENCY, *urls, *extra,
                          "--out", out, "--overwrite", "-q"), work)
    assert result.status == 0, result.out
    return result.wall, json.loads((work / out / "manifest.json").read_text())


def pooled_against_single(work: Path, latencies: tuple[float, float], n: int, repeats: int) -> dict:
    a, b = Server(latencies[0]), Server(latencies[1], first_number=SECOND)
    try:
        # Each alone for about as long: n in proportion to what it can do (C / latency).
        share = latencies[1] / sum(latencies)
        n_a, n_b = round(2 * n * share), round(2 * n * (1 - share))
        single_a, single_b, pooled, ratios, answered_a = [], [], [], [], []
        for _ in range(repeats):
            wall_a, _ = generate(work, "a", n_a, a)
            wall_b, _ = generate(work, "b", n_b, b)
            wall_ab, manifest = generate(work, "ab", 2 * n, a, b)
            rates = n_a / wall_a, n_b / wall_b, 2 * n / wall_ab
            single_a.append(rates[0])
            single_b.append(rates[1])
            pooled.append(rates[2])
            ratios.append(rates[2] / (rates[0] + rates[1]))
            answered_a.append(manifest["endpoints"][a.url]["answered"] / (2 * n))
    finally:
        a.stop()
        b.stop()
    return {"latencies": latencies, "n": (n_a, n_b, 2 * n), "a": median(single_a), "b": median(single_b),
            "pooled": median(pooled), "ratio": median(ratios), "ratios": ratios, "share_a": median(answered_a)}


def one_dies(work: Path, n: int) -> dict:
    """A pooled run whose endpoint B is killed once half the examples are in."""
    a, b = Server(0.1), Server(0.1, first_number=SECOND)
    (work / "dies.toml").write_text("[llm]\nmax_attempts = 3\n")
    examples = work / "dies" / "examples.jsonl"
    killed_at: list[float] = []

    def kill_halfway() -> None:
        began = time.monotonic()
        while True:
            time.sleep(0.05)
            try:
                if sum(1 for _ in open(examples, "rb")) >= n // 2:
                    break
            except FileNotFoundError:
                pass
        b.stop()
        killed_at.append(time.monotonic() - began)

    watcher = threading.Thread(target=kill_halfway, daemon=True)
    watcher.start()
    try:
        wall, manifest = generate(work, "dies", n, a, b, config=str(work / "dies.toml"))
    finally:
        a.stop()
        b.stop()
    watcher.join(timeout=5)
    lines = [json.loads(line) for line in open(examples)]
    rejects_path = work / "dies" / "rejects.jsonl"
    rejects = [json.loads(line) for line in open(rejects_path)] if rejects_path.exists() else []
    indices = [r["index"] for r in lines + rejects]
    return {"n": n, "wall": wall, "killed_at": killed_at[0] if killed_at else None, "valid": manifest["valid"],
            "distinct": len({e["index"] for e in lines}), "rejects": len(rejects),
            "reasons": sorted({r["reason"] for r in rejects}), "none_lost": sorted(indices) == list(range(len(indices))),
            "a": manifest["endpoints"][a.url], "b": manifest["endpoints"][b.url],
            "retried": manifest["endpoints"][b.url]["failed"] - sum(r["reason"] == "request_failed" for r in rejects)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, to check that it works")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    stamp = f"{datetime.date.today().isoformat()}, {machine()}" + (" (--quick)" if args.quick else "")
    n = 1000 if args.quick else 6400  # about 20 s a process at concurrency 32 and 100 ms
    repeats = 1 if args.quick else args.repeats
    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        run(synthgen("--version"), work)  # warm the file cache before the first timed process
        figures = [pooled_against_single(work, latencies, n, repeats) for latencies in ((0.1, 0.1), (0.05, 0.2))]
        dies = one_dies(work, 2000 if args.quick else 8000)
    for f in figures:
        la, lb = (f"{x * 1000:.0f}" for x in f["latencies"])
        rows.append([f"{la} / {lb}", f"{f['n'][0]:,} / {f['n'][1]:,} / {f['n'][2]:,}", f"{f['a']:,.0f}",
                     f"{f['b']:,.0f}", f"{f['a'] + f['b']:,.0f}", f"{f['pooled']:,.0f}", f"{f['ratio']:.0%}",
                     ", ".join(f"{r:.0%}" for r in f["ratios"]), f"{f['share_a']:.0%}"])
    text = table(["latency A / B ms", "N: A / B / both", "A alone req/s", "B alone req/s", "sum", "both req/s",
                  "both / sum (median)", "each repeat", "answered by A"], rows)
    text += (f"\n\n`python bench/endpoints.py`: two bench/server.py processes; whole `synthgen generate --kinds sts=1` "
             f"processes, concurrency {CONCURRENCY} at each endpoint (so {2 * CONCURRENCY} in flight with both), "
             "run in turn (A alone, B alone, both), the median of the ratios of each turn. Each single run is "
             "given the examples it makes in about the time the pooled run takes, so start-up (about 1 s) "
             "weighs alike. Client and servers share the cores; load average (1 minute) at the start "
             f"{load_before:.1f}, at the end {os.getloadavg()[0]:.1f}.")
    b = dies["b"]
    text += (f"\n\nAn endpoint that dies: N {dies['n']:,} over two endpoints at 100 ms, B's server killed once "
             f"{dies['n'] // 2:,} examples were in ({dies['killed_at']:.1f} s into the run; `[llm] max_attempts = 3`): "
             f"the run ended with {dies['valid']:,} valid examples ({dies['distinct']:,} distinct indices; "
             f"every index sent is an example or a reject: {'yes' if dies['none_lost'] else 'NO'}) in "
             f"{dies['wall']:.1f} s; {dies['rejects']} rejects ({', '.join(dies['reasons']) or 'none'}). {b['failed']} "
             f"requests failed on B: the first {b['failed'] - dies['retried']} counted (rejected and replaced, as with "
             f"one endpoint), then B was benched ({b['benched']} time) and the other {dies['retried']} were asked of A. "
             f"B answered {b['answered']:,}, A {dies['a']['answered']:,}: {b['answered'] + dies['a']['answered']:,} "
             f"answers for {dies['valid']:,} examples"
             + (", none paid twice." if b["answered"] + dies["a"]["answered"] == dies["valid"] else "."))
    print(text)
    write_sections({"Several endpoints": f"{stamp}\n\n{text}"})
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
