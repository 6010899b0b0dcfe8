"""curate: speed, memory, and precision/recall on planted defects (issue 11's checks so far).

    python bench/curate.py [--quick]

Near duplicates: N examples of random words (query 6 to 20 words, positive 80 to 150), a tenth of
them near copies (the query restyled, one word of the positive changed: Jaccard about 0.94), through
`synthgen curate --checks near-duplicate` as a whole process. Language: UDHR snippets of 91
languages (tests/fixtures/udhr.jsonl), with planted positives and bitext targets in another
language, through `--checks language`.
"""

import argparse
import datetime
import json
import sys
import tempfile
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 examples instead of 100,000")
    args = parser.parse_args()
    n = 10_000 if args.quick else 100_000
    stamp = f"{datetime.date.today().isoformat()}, {machine()}" + (" (--quick)" if args.quick else "")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        rows.append(measure(work, "near", planted(clean=n - n // 10, near_duplicates=n // 10), "near-duplicate",
                            "near-duplicate"))
        print(rows[-1], flush=True)
        rows.append(measure(work, "language", languages(n // 10), "language", "language"))
        print(rows[-1], flush=True)
    text = table(["check", "examples", "planted defects", "precision", "recall", "wall s", "examples/s (less start-up)",
                  "peak MB"], rows)
    text += ("\n\n`python bench/curate.py`: whole `synthgen curate --checks CHECK` processes; examples/s leaves out "
             "the start-up (`synthgen curate --help`). Near duplicates: random-word examples, a tenth planted near "
             "copies (query restyled, one word of the positive changed). Language: one clean short-long and one "
             "bitext example per UDHR language (91), plus 400 positives and bitext targets planted in another language, "
             "the whole repeated to a tenth of N; the fixture puts the snippets py3langid names right first, so its precision here is optimistic.")
    print(text)
    write_sections({"Curate": f"{stamp}\n\n{text}"})


if __name__ == "__main__":
    main()
