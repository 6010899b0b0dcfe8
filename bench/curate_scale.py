"""curate at scale: memory against the number and the length of examples, and 100,000 examples
through every check that needs no LLM, with the embedder taken out of the cost.

    python bench/curate_scale.py [--quick]

Examples of random words (query 6 to 20 words, positive and negative 80 to 150 words, times a
length factor), short-long, each with a negative, through `synthgen curate --checks
near-duplicate,consistency,false-negative --mine-negatives 3` as a whole process. The embedder is
a loopback /v1/embeddings server in this process (a random direction per topic, 64 dimensions, a
query's topic its positive's): nearly free,
so what is timed and measured is curate's own work; the real embedder's cost is the texts embedded
times its rate (bench/curate_embed.py). The language check is left out: random words are no
language. Peak MB: the curate process's largest resident size, from the kernel (wait4).
"""

import argparse
import datetime
import json
import math
import os
import random
import sys
import tempfile
import re
import zlib
from pathlib import Path

import numpy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from fake_embeddings import FakeEmbeddings  # noqa: E402
from planted import text  # noqa: E402
from run import machine, run, synthgen, table, write_sections  # noqa: E402
from stored import stored  # noqa: E402

DIMENSIONS = 64
CHECKS = "near-duplicate,consistency,false-negative"


def topic_vectors(value: str) -> list[float]:
    """The sum of a fixed random unit vector for each topic mark ("k" and a number) in the text: an
    example's query and positive share their mark, so the positive ranks first for its query, as a
    good embedder would rank a good example's; other texts get their own random direction."""
    marks = re.findall(r"\bk(\d+)\b", value) or [str(zlib.crc32(value.encode()))]
    vector = sum(numpy.random.default_rng(int(mark)).standard_normal(DIMENSIONS) for mark in marks)
    return (vector / numpy.linalg.norm(vector)).tolist()


def write_examples(path: Path, count: int, length: int, seed: int = 0) -> int:
    """`count` short-long examples with a negative, documents `length` times 80 to 150 words."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(count):
            mark, other = f"k{i}", f"k{rng.randrange(count)}{count}"  # the negative: a topic of its own
            record = stored(i, "short-long", query=f"{text(rng, rng.randint(6, 20))} {mark}",
                            positive=f"{mark} {text(rng, rng.randint(80, 150) * length)}",
                            negative=f"{other} {text(rng, rng.randint(80, 150) * length)}")
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path.stat().st_size


def measure(work: Path, server: FakeEmbeddings, count: int, length: int) -> dict:
    source = work / f"in-{count}-{length}.jsonl"
    size = write_examples(source, count, length)
    out = work / f"out-{count}-{length}"
    config = work / "curate.toml"
    config.write_text(f'[curate.embed]\ncache = "{work / f"cache-{count}-{length}"}"\n')
    result = run(synthgen("curate", source, "--out", out, "--checks", CHECKS, "--mine-negatives", "3",
                          "--embed-base-url", server.base_url, "--embed-model", server.model,
                          "--config", config, "-q"), work, env={**os.environ, "OPENAI_API_KEY": "unused"})
    assert result.status == 0, result.out
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] + sum(report["dropped"].values()) == count, report
    return {"examples": count, "length": length, "input_mb": size / 2**20, "wall": result.wall,
            "peak_mb": result.peak_mb, "texts": report["embedder"]["computed"], "kept": report["kept"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 and 10,000 examples instead of 20,000 and 100,000")
    args = parser.parse_args()
    small, large = (2_000, 10_000) if args.quick else (20_000, 100_000)
    stamp = f"{datetime.date.today().isoformat()}, {machine()}" + (" (--quick)" if args.quick else "")
    server = FakeEmbeddings(topic_vectors).start()
    figures = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for count, length in ((small, 1), (small, 8), (large, 1)):
                figures.append(measure(Path(folder), server, count, length))
                print(figures[-1], flush=True)
    finally:
        server.stop()
    rows = [[f"{f['examples']:,}", f"{f['length']}x", f"{f['input_mb']:,.0f}", f"{f['texts']:,}", f"{f['kept']:,}",
             f"{f['wall']:.1f}", f"{f['examples'] / f['wall']:,.0f}", f"{f['peak_mb']:,.0f}"] for f in figures]
    text_ = table(["examples", "document length", "input MB", "texts embedded", "kept", "wall s", "examples/s",
                   "peak MB"], rows)
    text_ += (f"\n\n`python bench/curate_scale.py`: `synthgen curate --checks {CHECKS} --mine-negatives 3` as a whole "
              "process on random-word short-long examples with negatives (documents 80 to 150 words, times the "
              "length factor), the embedder a loopback /v1/embeddings server in the bench's process (a random "
              "direction per topic, 64 dimensions; its time on the shared cores is in the wall time), so the figures are "
              "curate's own cost. Peak MB is the curate process's (torch and sentence-transformers, loaded for "
              "mining, are most of it).")
    print(text_)
    write_sections({"Curate at scale": f"{stamp}\n\n{text_}"})


if __name__ == "__main__":
    main()
