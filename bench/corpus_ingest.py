"""corpus ingest: MB of text a minute, and peak memory, on real text that ships with installed packages;
and the [corpus.near_duplicate] settings compared, in memory and in near copies found.

    python bench/corpus_ingest.py [--quick] [--mb 100]

The corpus: the README, .md, .txt, .rst and .html files, and the package descriptions (the
README inside each METADATA file), found under the site-packages of this Python, kept where
letters make up at least half the text that is not space (no number tables). .rst files,
METADATA and READMEs without a known ending are copied as .md. That is a few MB of real, varied
English nobody here wrote, so it is copied until the corpus holds --mb MB, two ways:

- "repeats": the copies as they are: every passage after the first copy's is an exact duplicate;
- "unique": in each copy after the first, one word in seven (.txt and .md files) carries the copy's
  number, so passages of two copies neither repeat nor nearly repeat each other: every passage
  is signed, compared and (but for repeats within one copy) kept, the most an ingest of this size
  costs in time and in memory.

Each is a whole `synthgen corpus ingest` process (bench/run.py's run: wall clock, and the largest
resident size of the process and of its worker processes), three times, the median taken. Then
each near-duplicate setting goes through both corpora once (memory a kept passage: the two peaks'
difference over the two counts kept), and through near copies of real passages (what it finds).
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import machine, run, synthgen, table, write_sections  # noqa: E402

ENDINGS = {".md", ".txt", ".rst", ".html", ".htm"}
_WORD = re.compile(r"\S+")


def real_text(site: Path) -> list[tuple[str, bytes]]:
    """(name in the corpus, bytes) of each file of prose under site-packages, in path order."""
    found = []
    for path in sorted(site.rglob("*")):
        name = path.name
        ending = path.suffix.lower()
        if (ending not in ENDINGS and name != "METADATA" and not name.startswith("README")) or not path.is_file():
            continue
        data = path.read_bytes()
        text = data.decode("utf-8", "replace")
        visible = [c for c in text if not c.isspace()]
        if len(visible) < 200 or sum(c.isalpha() for c in visible) < len(visible) / 2:
            continue
        relative = path.relative_to(site).as_posix()
        if ending in {".rst"} or name == "METADATA" or ending not in ENDINGS:
            relative += ".md"
        found.append((relative, data))
    return found


def mark(text: str, copy: int) -> str:
    """One word in seven carries the copy's number."""
    count = 0

    def changed(match: re.Match) -> str:
        nonlocal count
        count += 1
        return match.group(0) + str(copy) if count % 7 == copy % 7 else match.group(0)

    return _WORD.sub(changed, text)


def build(folder: Path, files: list[tuple[str, bytes]], megabytes: float, unique: bool) -> int:
    """Copies of the files under folder/copy-N/ until they hold `megabytes`; returns the bytes written."""
    written, copy = 0, 0
    while written < megabytes * 1_000_000:
        for name, data in files:
            if unique and copy and name.endswith((".md", ".txt")):
                data = mark(data.decode("utf-8", "replace"), copy).encode("utf-8")
            target = folder / f"copy-{copy:03d}" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            written += len(data)
        copy += 1
    return written


def digest(path: Path) -> str:
    """A file's digest, read a MB at a time: this process stays small (see measure)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            hasher.update(block)
    return hasher.hexdigest()


def measure(work: Path, corpus: Path, size: int, repeats: int, config: Optional[Path] = None,
            keep: Optional[Path] = None) -> dict:
    """Each run is started from this process, whose own peak a child counts as its own (Linux keeps the
    larger resident size across exec): so this process reads no corpus, and builds none."""
    runs, outputs = [], set()
    for attempt in range(repeats):
        out = work / f"out-{corpus.name}-{attempt}"
        result = run(synthgen("corpus", "ingest", corpus, "--out", out, "-q",
                              *(["--config", config] if config else [])), work)
        assert result.status == 0, result.out
        runs.append(result)
        manifest = json.loads((out / "manifest.json").read_text())
        outputs.add(digest(out / "passages.jsonl"))
        if keep is not None and not keep.exists():
            shutil.copy(out / "passages.jsonl", keep)
        shutil.rmtree(out)
    assert len(outputs) == 1, "two runs wrote different passages"
    wall = statistics.median(r.wall for r in runs)
    return {"wall": wall, "mb_min": size / 1e6 / wall * 60, "peak_mb": max(r.peak_mb for r in runs),
            "manifest": manifest, "size": size}


# Near-duplicate settings compared: (permutations, bands); the default is [corpus.near_duplicate]'s.
SETTINGS = [(128, 16), (64, 8), (40, 5), (32, 4)]
BUCKETS = [(0.0, 0.8), (0.8, 0.85), (0.85, 0.9), (0.9, 0.95), (0.95, 1.01)]


def near_copies(passages: Path, perm: int, bands: int) -> dict:
    """(--near) 15,000 kept passages of 100 words or more indexed, then 3,000 of them again with 1 to 14
    words changed: the share of those copies found, by their true Jaccard similarity (word 3-grams)."""
    import random

    from synthgen.curate.near_duplicates import NearDuplicates, shingles

    texts = [json.loads(line)["text"] for line in open(passages, encoding="utf-8")]
    originals = [text for text in texts if len(text.split()) >= 100][:15_000]
    rng = random.Random(1)
    copies = []
    for number, text in enumerate(originals[:3_000]):
        words = text.split()
        for at in rng.sample(range(len(words)), rng.choice([1, 2, 3, 4, 6, 8, 10, 14])):
            words[at] += "x"
        copy = " ".join(words)
        a, b = set(shingles(text, "")), set(shingles(copy, ""))
        copies.append((number, copy, len(a & b) / len(a | b)))
    index = NearDuplicates(0.9, perm, bands, processes=1)
    kept, numbers = 0, {}
    for number, first in enumerate(index.first_like_many(originals, [""] * len(originals))):
        if first is None:
            numbers[number] = kept
            kept += 1
    found = index.first_like_many([copy for _, copy, _ in copies], [""] * len(copies))
    shares = []
    for low, high in BUCKETS:
        hits = [first == numbers[number] for (number, _, similarity), first in zip(copies, found)
                if low <= similarity < high and number in numbers]
        shares.append((sum(hits), len(hits)))
    return {"originals": len(originals), "originals_dropped": len(originals) - kept, "shares": shares}


def near_settings(work: Path, corpora: dict, passages: Path) -> str:
    rows = []
    for perm, bands in SETTINGS:
        config = work / f"near-{perm}-{bands}.toml"
        config.write_text(f"[corpus.near_duplicate]\nnum_perm = {perm}\nbands = {bands}\n")
        peaks = {label: measure(work, corpus, size, 1, config) for label, (corpus, size) in corpora.items()}
        kept = {label: peak["manifest"]["passages"]["kept"] for label, peak in peaks.items()}
        per_passage = ((peaks["unique"]["peak_mb"] - peaks["repeats"]["peak_mb"]) * 2**20
                       / (kept["unique"] - kept["repeats"]))
        found = json.loads(subprocess.run([sys.executable, __file__, "--near", str(passages), str(perm), str(bands)],
                                          check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        rows.append([f"{perm} in {bands}", f"{per_passage:,.0f}", f"{peaks['unique']['mb_min']:,.0f}",
                     *(f"{hits / count:.3f}" if count else "-" for hits, count in found["shares"]),
                     f"{found['originals_dropped']} of {found['originals']:,}"])
        print(rows[-1], flush=True)
    counts = [count for _, count in found["shares"]]
    return table(["permutations in bands", "bytes a kept passage", "MB / minute (unique)",
                  *(f"found, J {low:.2f}-{min(high, 1):.2f} (n {count:,})" for (low, high), count in zip(BUCKETS, counts)),
                  "originals dropped"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 MB, one run each")
    parser.add_argument("--mb", type=float, default=100.0, help="corpus size in MB (default 100)")
    parser.add_argument("--build", nargs=3, metavar=("FOLDER", "MB", "UNIQUE"), help=argparse.SUPPRESS)
    parser.add_argument("--near", nargs=3, metavar=("PASSAGES", "PERM", "BANDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    site = Path(sysconfig.get_paths()["purelib"])
    if args.build:
        folder, size, unique = args.build
        files = real_text(site)
        written = build(Path(folder), files, float(size), unique == "unique")
        print(json.dumps({"written": written, "files": len(files), "prose": sum(len(data) for _, data in files)}))
        return
    if args.near:
        print(json.dumps(near_copies(Path(args.near[0]), int(args.near[1]), int(args.near[2]))))
        return
    megabytes = 10.0 if args.quick else args.mb
    repeats = 1 if args.quick else 3
    stamp = f"{datetime.date.today().isoformat()}, {machine()}" + (" (--quick)" if args.quick else "")
    load = os.getloadavg()[0]
    rows, figures, corpora = [], {}, {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        passages = work / "passages-unique.jsonl"
        for label in ("unique", "repeats"):
            corpus = work / label
            # Built by a process of its own (see measure): walking site-packages takes a hundred MB.
            built = json.loads(subprocess.run([sys.executable, __file__, "--build", str(corpus), str(megabytes), label],
                                              check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            size = built["written"]
            corpora[label] = (corpus, size)
            figures[label] = result = measure(work, corpus, size, repeats, keep=passages)
            manifest = result["manifest"]
            kept, documents = manifest["passages"], manifest["documents"]
            rows.append([label, f"{manifest['files']['read']:,}", f"{size / 1e6:,.1f}", f"{documents['words']:,}",
                         f"{kept['kept']:,}", f"{sum(kept['dropped'].values()):,}", f"{result['wall']:.1f}",
                         f"{result['mb_min']:,.0f}", f"{result['peak_mb']:,.0f}"])
            print(rows[-1], flush=True)
        settings = near_settings(work, corpora, passages)
    unique, repeated = figures["unique"], figures["repeats"]
    per_passage = ((unique["peak_mb"] - repeated["peak_mb"]) * 2**20
                   / (unique["manifest"]["passages"]["kept"] - repeated["manifest"]["passages"]["kept"]))
    text = table(["corpus", "files", "MB", "words", "passages kept", "dropped", "wall s", "MB of text / minute",
                  "peak MB"], rows)
    text += (f"\n\n`python bench/corpus_ingest.py{' --quick' if args.quick else ''}`: whole `synthgen corpus ingest "
             f"-q` processes, the median of {repeats}. The text: {built['files']:,} files of prose ({built['prose'] / 1e6:.1f} MB) "
             f"from this machine's site-packages (READMEs, .md, .txt, .rst, .html, and the README in each METADATA), "
             "copied until the corpus holds the size above: as they are (\"repeats\": every passage after the first "
             "copy's is dropped as a duplicate), or with one word in seven of each copy's .txt and .md files marked "
             "with the copy's number (\"unique\": passages kept but for the repeats within one copy, each signed and "
             "compared for near duplicates). Peak MB: the largest resident size of the process or of a worker it "
             f"started. Load average (1 minute) at the start {load:.1f}, at the end {os.getloadavg()[0]:.1f}, on "
             f"{os.cpu_count()} cores.")
    text += (f"\n\nWhat grows with the corpus is the near-duplicate index: about {per_passage:,.0f} bytes a kept "
             "passage (the two peaks' difference over the two counts of passages kept), against some "
             f"{unique['size'] / unique['manifest']['passages']['kept']:,.0f} bytes of this text a passage: a corpus "
             "of unique text needs about as much memory as "
             f"{per_passage / (unique['size'] / unique['manifest']['passages']['kept']):.0%} of its size, plus "
             f"{repeated['peak_mb']:.0f} MB.")
    text += ("\n\n[corpus.near_duplicate] settings (threshold 0.9), each through the same two corpora (one run each; "
             "bytes a kept passage as above), and on near copies of real passages: 15,000 passages of 100 words or "
             "more that the unique run kept, indexed, then 3,000 of them again with 1 to 14 words changed; \"found\": "
             "the share of the copies named as repeating their original, by their true Jaccard similarity (word "
             "3-grams); \"originals dropped\": originals taken for near copies of one another:\n\n" + settings)
    print(text)
    write_sections({"Corpus ingest": f"{stamp}\n\n{text}"})


if __name__ == "__main__":
    main()
