"""curate: speed, memory, and precision/recall on planted defects (issue 11's checks so far).

    python bench/curate.py [--quick]

Near duplicates: N examples of random words (query 6 to 20 words, positive 80 to 150), a tenth of
them near copies (the query restyled, one word of the positive changed: Jaccard about 0.94), through
`synthgen curate --checks near-duplicate` as a whole process. Language: UDHR snippets of 91
languages (tests/fixtures/udhr.jsonl), with planted positives and bitext targets in another
language, through `--checks language`.

Near duplicates are also measured in process, the same examples read as curate reads them and
handed to NearDuplicates in curate's batches: first_like one at a time, first_like_many in this
process, and first_like_many with worker processes (one a core). Each in a process of its own,
five times, the three in turn: the median rate, the largest peak memory (resource.getrusage).
"""

import argparse
import datetime
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from planted import planted, planted_languages  # noqa: E402
from run import machine, run, synthgen, table, write_sections  # noqa: E402


def write(path: Path, records: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def languages(count: int):
    """About `count` examples: the planted language set over and over, each copy with its own ids."""
    base = planted_languages(wrong=400, seed=1)
    data = planted_languages(wrong=0)
    data.records, data.defects = [], {"language": set()}
    for copy in range(max(1, count // len(base.records))):
        for record in base.records:
            record = dict(record, id=f"{record['id']}-{copy}")
            data.records.append(record)
            if record["id"].rsplit("-", 1)[0] in base.defects["language"]:
                data.defects["language"].add(record["id"])
    return data


def measure(work: Path, name: str, data, check: str, reason: str) -> list[str]:
    source = write(work / f"{name}.jsonl", data.records)
    out = work / f"{name}-curated"
    result = run(synthgen("curate", source, "--out", out, "--checks", check, "-q"), work)
    assert result.status == 0, result.out
    startup = run(synthgen("curate", "--help"), work).wall
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    found = {d["id"] for d in dropped if d["reason"] == reason}
    planted_ids = data.defects[reason]
    hits = len(found & planted_ids)
    n = len(data.records)
    return [check, f"{n:,}", f"{len(planted_ids):,}", f"{hits / len(found):.3f}" if found else "-",
            f"{hits / len(planted_ids):.3f}", f"{result.wall:.1f}", f"{n / max(result.wall - startup, 1e-9):,.0f}",
            f"{result.peak_mb:,.0f}"]


# In-process near-duplicate measurements: (label, --direct mode).
DIRECT = [("first_like, one at a time", "one"), ("first_like_many, 1 process", "batch"),
          (f"first_like_many, {os.cpu_count()} worker processes", "pool")]


def direct(source: Path, mode: str) -> None:
    """One in-process measurement (--direct): prints the seconds spent in NearDuplicates, the ids it
    dropped and the peak memory of this process and of its largest worker, as JSON."""
    from synthgen.config import load_config
    from synthgen.curate.near_duplicates import NearDuplicates
    from synthgen.curate.run import BATCH
    from synthgen.store import ReadCounts, read_examples

    settings = load_config().curate.near_duplicate
    examples = read_examples([source], ReadCounts())
    seconds, count, dropped = 0.0, 0, []
    processes = os.cpu_count() if mode == "pool" else 1
    with NearDuplicates(settings.threshold, settings.num_perm, settings.bands, settings.word_shingle,
                        settings.char_shingle, settings.exact, processes=processes) as index:
        while True:
            batch = list(islice(examples, BATCH))
            if not batch:
                break
            texts = ["\n".join(getattr(example, name) or "" for name in settings.fields) for example in batch]
            languages = [example.language for example in batch]
            began = time.perf_counter()
            if mode == "one":
                firsts = [index.first_like(text, language) for text, language in zip(texts, languages)]
            else:
                firsts = index.first_like_many(texts, languages)
            seconds += time.perf_counter() - began
            count += len(batch)
            dropped += [example.id for example, first in zip(batch, firsts) if first is not None]
    print(json.dumps({"examples": count, "seconds": seconds, "dropped": dropped,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def measure_direct(work: Path, data, repeats: int = 5) -> list[list[str]]:
    source = work / "near.jsonl"  # written by measure()
    planted_ids = data.defects["near-duplicate"]
    measured: dict[str, list[dict]] = {mode: [] for _, mode in DIRECT}
    for _ in range(repeats):  # A B C A B C ...: a drift of the machine's speed hits every way alike
        for mode in measured:
            result = run([sys.executable, __file__, "--direct", str(source), mode], work)
            assert result.status == 0, result.out
            measured[mode].append(json.loads(result.out.splitlines()[-1]))
    dropped = measured["one"][0]["dropped"]
    assert all(r["dropped"] == dropped for runs in measured.values() for r in runs), "runs or ways disagree"
    found = set(dropped)
    hits = len(found & planted_ids)
    rows = []
    for label, mode in DIRECT:
        runs = measured[mode]
        rate = statistics.median(r["examples"] / r["seconds"] for r in runs)
        workers = max(r["worker_peak_mb"] for r in runs)
        rows.append([label, f"{runs[0]['examples']:,}", f"{hits / len(found):.3f}" if found else "-",
                     f"{hits / len(planted_ids):.3f}", f"{rate:,.0f}", f"{max(r['peak_mb'] for r in runs):,.0f}",
                     f"{workers:,.0f}" if mode == "pool" else "-"])
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 examples instead of 100,000")
    parser.add_argument("--direct", nargs=2, metavar=("SOURCE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.direct:
        direct(Path(args.direct[0]), args.direct[1])
        return
    load = os.getloadavg()[0]
    n = 10_000 if args.quick else 100_000
    stamp = f"{datetime.date.today().isoformat()}, {machine()}" + (" (--quick)" if args.quick else "")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        near = planted(clean=n - n // 10, near_duplicates=n // 10)
        rows.append(measure(work, "near", near, "near-duplicate", "near-duplicate"))
        print(rows[-1], flush=True)
        direct_rows = measure_direct(work, near)
        rows.append(measure(work, "language", languages(n // 10), "language", "language"))
        print(rows[-1], flush=True)
    text = table(["check", "examples", "planted defects", "precision", "recall", "wall s", "examples/s (less start-up)",
                  "peak MB"], rows)
    text += ("\n\n`python bench/curate.py`: whole `synthgen curate --checks CHECK` processes; examples/s leaves out "
             "the start-up (`synthgen curate --help`). Near duplicates: random-word examples, a tenth planted near "
             "copies (query restyled, one word of the positive changed). Language: one clean short-long and one "
             "bitext example per UDHR language (91), plus 400 positives and bitext targets planted in another language, "
             "the whole repeated to a tenth of N; the fixture puts the snippets py3langid names right first, so its precision here is optimistic.")
    text += "\n\nNear duplicates in process, the same examples:\n\n" + table(
        ["NearDuplicates", "examples", "precision", "recall", "examples/s", "peak MB", "worker peak MB"], direct_rows)
    text += ("\n\nexamples/s counts the time spent in NearDuplicates only (not reading the file), in batches of "
             "curate's size, the pool's start included; the median of five runs, each a process of its own, the "
             "three ways taken in turn. Peak "
             "MB: that process's largest resident size (the examples of one batch, the index, Python and "
             "synthgen); a worker's, forked from it, counts the pages it shares. Load average (1 minute) "
             f"at the start {load:.1f}, at the end {os.getloadavg()[0]:.1f}, on {os.cpu_count()} cores (the "
             "runs themselves add one to three): where it is higher, other work shared the cores, and the rates "
             "are lower bounds.")
    print(text)
    write_sections({"Curate": f"{stamp}\n\n{text}"})


if __name__ == "__main__":
    main()
