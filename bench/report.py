"""synthgen report on a large dataset: its time and peak memory against `synthgen stats` on the same
run folder, the size of the HTML file, and a screenshot of the top of the page in a real browser.

    python bench/report.py [--quick] [--n N]

The run folder is written here, as generate writes one (examples, rejects, a manifest through the
store's own types), with N examples (1,000,000; --quick 100,000) drawn like a real run: kinds,
languages and placeholders from configs/default.toml's weights and value sets, texts of random
words whose lengths follow the length asked (a model that mostly complies), tasks from a pool per
subtype, the LLM's answer in `raw` as generate keeps it, 3% rejected answers and 2% exact repeats.
`synthgen stats` and `synthgen report` run on it as whole processes, in turn, twice (medians);
then `synthgen dedup` and a report of the run and its dedup output side by side, whose top is
saved to docs/report.png by headless Chromium (the README shows it). Rewrites the "Report" section
of bench/RESULTS.md.
"""

import argparse
import datetime
import os
import random
import sys
import tempfile
from pathlib import Path

import msgspec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from run import machine, median, run, synthgen, table, write_sections  # noqa: E402

from synthgen.store import Manifest, RunFolder  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCREENSHOT = HERE.parent / "docs" / "report.png"
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zu", "pa", "di", "go", "ha", "je", "xi", "bo"]


class Words:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.vocabulary = ["".join(rng.choices(SYLLABLES, k=rng.choice((1, 2, 2, 3)))) for _ in range(5000)]

    def __call__(self, low: int, high: int) -> str:
        return " ".join(self.rng.choices(self.vocabulary, k=self.rng.randint(low, high)))


def lengths_asked(phrase: object) -> tuple[int, int]:
    """The words to write for a length asked: mostly within it, sometimes short of it."""
    table_ = {"less than 5 words": (2, 5), "5 to 15 words": (4, 16), "at least 10 words": (8, 24),
              "less than 10": (4, 11), "at least 10": (8, 40), "at least 50": (40, 90), "at least 100": (80, 160),
              "at least 200": (160, 280)}
    if isinstance(phrase, int):
        return int(phrase * 0.8), int(phrase * 1.3)
    return table_[str(phrase)]


UNIT = {"sentence": (8, 25), "phrase": (3, 8), "passage": (40, 110)}


def texts(kind: str, placeholders: dict, words: Words) -> tuple[dict, str, str, object]:
    """(raw answer, query, positive, negative) of one example of the kind."""
    if kind == "short-long":
        q, p, n = (words(*lengths_asked(placeholders["query_length"])), words(*lengths_asked(placeholders["num_words"])),
                   words(*lengths_asked(placeholders["num_words"])))
        return {"user_query": q, "positive_document": p, "hard_negative_document": n}, q, p, n
    if kind == "long-short":
        q, p, n = words(*lengths_asked(placeholders["num_words"])), words(1, 3), words(1, 3)
        return {"input_text": q, "label": p, "misleading_label": n}, q, p, n
    if kind in ("short-short", "long-long"):
        span = (4, 14) if kind == "short-short" else (250, 420)
        q, p = words(*span), words(*span)
        return {"input": q, "positive_document": p}, q, p, None
    q, p, n = (words(*UNIT[placeholders["unit"]]) for _ in range(3))
    return {"S1": q, "S2": p, "S3": n}, q, p, n


def write_run(folder: Path, n: int, seed: int = 0) -> dict:
    config = tomllib.loads((HERE.parent / "configs" / "default.toml").read_text(encoding="utf-8"))
    rng = random.Random(seed)
    words = Words(rng)
    kinds, kind_weights = zip(*config["kinds"].items())
    languages, language_weights = zip(*config["languages"].items())
    pools = {kind: [f"Given a {words(1, 1)} question about {words(2, 4)}, retrieve {words(3, 8)}."
                    for _ in range(max(10, n // 12))] for kind in ("short-long", "long-short", "short-short", "long-long")}
    fixed = {"sts": "Retrieve semantically similar text.", "bitext": "Retrieve parallel sentences."}
    encode = msgspec.json.Encoder().encode
    run = RunFolder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    per_kind: dict[str, int] = {}
    rejected: dict[str, int] = {}
    previous, repeats = None, 0
    with open(run.examples, "wb") as examples, open(run.rejects, "wb") as rejects:
        for i in range(n + n // 32):
            kind = rng.choices(kinds, kind_weights)[0]
            if rng.random() < 0.03:
                reason = rng.choice(["invalid_json", "schema", "truncated", "empty"])
                rejected[reason] = rejected.get(reason, 0) + 1
                rejects.write(encode({"index": i, "kind": kind, "reason": reason, "detail": f"{reason} answer",
                                      "text": words(5, 40), "model": "bench-model", "seed": seed}) + b"\n")
                continue
            if previous is not None and rng.random() < 0.02:
                examples.write(previous)  # an exact repeat, as a model that repeats itself writes
                repeats += 1
                continue
            language = rng.choices(languages, language_weights)[0]
            placeholders = {name: rng.choice(values) for name, values in config["placeholders"].get(kind, {}).items()}
            if kind == "bitext":
                placeholders["src_lang"], placeholders["tgt_lang"] = language, rng.choice(languages)
            task = fixed.get(kind) or rng.choice(pools[kind])
            raw, query, positive, negative = texts(kind, placeholders, words)
            record = {"id": f"bench-{i}", "index": i, "kind": kind, "task": task, "language": language, "query": query,
                      "positive": positive, "negative": negative,
                      "placeholders": {"task": task, "language": language, **{k: str(v) for k, v in placeholders.items()}},
                      "raw": raw, "model": "bench-model", "seed": seed,
                      "usage": {"http_requests": 1, "prompt_tokens": 400, "completion_tokens": len(positive) // 4}}
            previous = encode(record) + b"\n"
            examples.write(previous)
            per_kind[kind] = per_kind.get(kind, 0) + 1
    valid = sum(per_kind.values())
    run.write_manifest(Manifest(status="complete", model="bench-model", backend="openai", seed=seed, n=valid,
                                requests=valid + sum(rejected.values()), valid=valid, rejected_total=sum(rejected.values()),
                                rejected=rejected, per_kind=per_kind, http_requests=valid + sum(rejected.values()),
                                prompt_tokens=400 * valid, completion_tokens=300 * valid, wall_seconds=valid / 40,
                                sessions=1))
    return {"examples": valid + repeats, "mb": run.examples.stat().st_size / 2**20}


def screenshot(page: Path) -> None:
    from browser import open_browser

    driver = open_browser(1280, 1000)
    try:
        driver.get(page.as_uri())
        SCREENSHOT.parent.mkdir(exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 examples instead of 1,000,000")
    parser.add_argument("--n", type=int, help="examples to write (overrides --quick)")
    parser.add_argument("--no-screenshot", action="store_true")
    args = parser.parse_args()
    n = args.n or (100_000 if args.quick else 1_000_000)
    stamp = f"{datetime.date.today().isoformat()}, {machine()}" + (" (--quick)" if args.quick else "")
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        work = Path(folder)
        written = write_run(work / "raw", n)
        print(f"wrote {written['examples']:,} examples, {written['mb']:,.0f} MB", flush=True)
        times: dict[str, list] = {"stats": [], "report": []}
        load_before = os.getloadavg()[0]
        for _ in range(2):
            for name, command in (("stats", synthgen("stats", "raw", "-q")),
                                  ("report", synthgen("report", "raw", "--out", "report.html", "-q"))):
                result = run(command, work, env=env, timeout=3600)
                assert result.status == 0, result.out
                times[name].append(result)
                print(f"{name}: {result.wall:.1f} s, CPU {result.cpu:.1f} s, peak {result.peak_mb:.0f} MB, load {os.getloadavg()[0]:.1f}",
                      flush=True)
        size = (work / "report.html").stat().st_size
        assert run(synthgen("dedup", "raw", "--out", "dedup/examples.jsonl", "-q"), work, env=env).status == 0
        both = run(synthgen("report", "raw", "dedup", "--out", "both.html", "-q"), work, env=env, timeout=3600)
        assert both.status == 0, both.out
        both_size = (work / "both.html").stat().st_size
        print(f"report raw dedup: {both.wall:.1f} s, {both_size / 2**20:.1f} MB", flush=True)
        if not args.no_screenshot:
            screenshot(work / "both.html")
    def figures(results: list) -> list[str]:
        return [f"{median([r.wall for r in results]):.1f}", f"{median([r.cpu for r in results]):.1f}",
                f"{median([r.peak_mb for r in results]):,.0f}"]

    stats_cpu, report_cpu = median([r.cpu for r in times["stats"]]), median([r.cpu for r in times["report"]])
    rows = [["synthgen stats raw", *figures(times["stats"]), "-"],
            ["synthgen report raw", *figures(times["report"]), f"{size / 2**20:.1f}"],
            ["synthgen report raw dedup (side by side)", *figures([both]), f"{both_size / 2**20:.1f}"]]
    text = table(["command", "wall s", "CPU s", "peak MB", "HTML MB"], rows)
    text += (f"\n\n`python bench/report.py{' --quick' if args.quick else ''}`: a run folder of {written['examples']:,} "
             f"examples ({written['mb']:,.0f} MB of JSONL, with rejects and a manifest) drawn like a real run from "
             "configs/default.toml's kinds, languages and placeholders, texts of random words whose lengths follow "
             f"the length asked. The report takes {report_cpu / stats_cpu:.2f}x the CPU time of stats on the same "
             f"folder, {report_cpu - stats_cpu:.1f} s more (one streaming pass like stats', then the charts: those and "
             "matplotlib's import are about 5 s at any size, as `--n 3000` shows): medians of two runs each, in turn, "
             "as whole processes. Wall times follow the machine's load "
             f"(load average {load_before:.1f} before the runs, {os.getloadavg()[0]:.1f} after; 2 shared cores). Its "
             "browser holds a sample of 2,000 examples, so its size does not grow with the data. The second report "
             "shows the run and its `synthgen dedup` output side by side; its top, in headless Chromium, is "
             "docs/report.png.")
    print(text)
    write_sections({"Report": f"{stamp}\n\n{text}"})


if __name__ == "__main__":
    main()
