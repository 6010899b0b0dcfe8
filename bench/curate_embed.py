"""curate's embedding checks: precision/recall on planted defects, the embedding step against a bare
encode, and a model trained on the planted data raw and curated.

    python bench/curate_embed.py [--quick]

Data: tests/fixtures/pydocs.jsonl (retrieval examples made from Python's documentation), with
planted defects (tests/planted.py planted_retrieval): positives swapped for another package's
document (should be `inconsistent`) and positives swapped with their negative (`false-negative`).
Held out for evaluation: fixture records not drawn into the planted set, clean.

1. `synthgen curate --checks consistency,false-negative` as a whole process, cold cache: precision
   and recall per defect class, wall time, peak memory.
2. The embedding step: EmbeddingCache.vectors over every text that curate embeds, on an empty
   cache, against SentenceTransformer.encode over the same texts in the same process, alternated,
   medians of 3.
3. Before/after: `synthgen train` (all-MiniLM-L6-v2, 1 epoch) on the raw planted set, on the curated
   one, and on the curated one with 3 mined negatives; `synthgen eval retrieval` of each, and of the
   untrained model, on the held-out examples.
"""

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from planted import planted_retrieval, pydocs  # noqa: E402
from run import machine, run, synthgen, table, write_sections  # noqa: E402

TEMPLATE = "Instruct: {task}\nQuery: {query}"
EMBED_TEXTS = 600  # enough for a stable ratio; all-MiniLM-L6-v2 reads about 20 of these texts a second here


def write(path: Path, records: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def precision_recall(dropped: list[dict], reason: str, planted: set[str]) -> tuple[float, float, int]:
    found = {d["id"] for d in dropped if d["reason"] == reason}
    hits = len(found & planted)
    return (hits / len(found) if found else 1.0), hits / len(planted), len(found)


def checks(work: Path, data, env: dict) -> tuple[list[list[str]], Path]:
    source = write(work / "raw.jsonl", data.records)
    out = work / "curated"
    result = run(synthgen("curate", source, "--out", out, "--checks", "consistency,false-negative", "-q"), work, env)
    assert result.status == 0, result.out
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    rows = []
    for reason in ("inconsistent", "false-negative"):
        p, r, found = precision_recall(dropped, reason, data.defects[reason])
        rows.append([reason, f"{len(data.records):,}", f"{len(data.defects[reason])}", f"{found}", f"{p:.3f}",
                     f"{r:.3f}", f"{result.wall:.1f}", f"{result.peak_mb:,.0f}"])
    return rows, out


def embedding_step(data) -> list[str]:
    """Our cached embedding against a bare encode of the same texts, alternated in one process."""
    from sentence_transformers import SentenceTransformer

    from synthgen.embedders import SentenceTransformerEmbedder
    from synthgen.embedding_cache import EmbeddingCache

    texts: list[str] = []
    for r in data.records:
        texts += [TEMPLATE.format(task=r["task"], query=r["query"]), r["positive"]] + ([r["negative"]] if r["negative"] else [])
    texts = list(dict.fromkeys(texts))[:EMBED_TEXTS]
    embedder = SentenceTransformerEmbedder(None, batch_size=64)
    model: SentenceTransformer = embedder.model
    bare, ours = [], []
    for _ in range(3):
        began = time.perf_counter()
        model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        bare.append(time.perf_counter() - began)
        with tempfile.TemporaryDirectory() as folder:
            began = time.perf_counter()
            EmbeddingCache(embedder, Path(folder)).vectors(texts, show_progress=False)
            ours.append(time.perf_counter() - began)
    b, o = statistics.median(bare), statistics.median(ours)
    return [f"{len(texts):,}", f"{b:.1f}", f"{o:.1f}", f"{o / b:.3f}", f"{len(texts) / o:,.0f}"]


def retrieval(work: Path, model: str, heldout: Path, env: dict) -> dict:
    result = run(synthgen("eval", "retrieval", heldout, *(["--model", model] if model else []), "--json", "-q"), work, env)
    assert result.status == 0, result.out
    return json.loads(result.out[result.out.index("{"):])


def before_after(work: Path, data, curated: Path, heldout: Path, env: dict) -> list[list[str]]:
    mined = work / "mined"
    result = run(synthgen("curate", work / "raw.jsonl", "--out", mined, "--checks", "consistency,false-negative",
                          "--mine-negatives", "3", "-q"), work, env)
    assert result.status == 0, result.out
    rows = []
    base = retrieval(work, "", heldout, env)
    rows.append(["untrained all-MiniLM-L6-v2", "-", *metrics(base)])
    for name, folder in (("raw (planted defects in)", work / "raw.jsonl"), ("curated", curated / "examples.jsonl"),
                         ("curated + 3 mined negatives", mined / "examples.jsonl")):
        out = work / f"model-{folder.parent.name}-{folder.stem}"
        trained = run(synthgen("train", folder, "--out", out, "--epochs", "1", "--batch-size", "32", "-q"), work, env,
                      timeout=7200)
        assert trained.status == 0, trained.out
        examples = sum(1 for _ in open(folder))
        rows.append([name, f"{examples:,}", *metrics(retrieval(work, str(out), heldout, env))])
        print(rows[-1], flush=True)
    return rows


def metrics(result: dict) -> list[str]:
    overall = result["groups"]["all"]
    return [f"{overall[name]:.4f}" for name in ("ndcg@10", "mrr@10", "recall@1", "recall@10")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small planted set, no training")
    parser.add_argument("--clean", type=int, default=1500, help="clean examples (planted: a tenth more of each defect)")
    args = parser.parse_args()
    clean = 300 if args.quick else args.clean
    planted = clean // 10
    data = planted_retrieval(clean=clean, swapped=planted, better_negatives=planted)
    used = {r["query"] for r in data.records}
    heldout_records = [r for r in pydocs() if r["query"] not in used][:400]
    stamp = f"{datetime.date.today().isoformat()}, {machine()}" + (" (--quick)" if args.quick else "")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
        from stored import stored

        heldout = write(work / "heldout.jsonl", [stored(i, r["kind"], query=r["query"], positive=r["positive"],
                                                        negative=r["negative"], task=r["task"])
                                                 for i, r in enumerate(heldout_records)])
        check_rows, curated = checks(work, data, env)
        for row in check_rows:
            print(row, flush=True)
        step = embedding_step(data)
        print(step, flush=True)
        trained = [] if args.quick else before_after(work, data, curated, heldout, env)
    text = table(["defect", "examples", "planted", "dropped", "precision", "recall", "wall s (whole curate)",
                  "peak MB"], check_rows)
    text += ("\n\n`python bench/curate_embed.py`: `synthgen curate --checks consistency,false-negative` with "
             "all-MiniLM-L6-v2 on an empty embedding cache, over clean retrieval examples made from Python's "
             "documentation (tests/fixtures/pydocs.jsonl) with planted positives from another package "
             "(inconsistent) and positives swapped with their negative (false-negative).\n\n")
    text += table(["texts", "bare encode s", "curate's cached embedding s", "ratio", "texts/s"], [step])
    text += ("\n\nThe embedding step: `EmbeddingCache.vectors` on an empty cache against `SentenceTransformer.encode` "
             "of the same texts (batch 64), alternated in one process, medians of 3.")
    if trained:
        text += "\n\n" + table(["trained on", "examples", "nDCG@10", "MRR@10", "recall@1", "recall@10"], trained)
        text += (f"\n\n`synthgen train` (all-MiniLM-L6-v2, 1 epoch, batch 32) on each, `synthgen eval retrieval` on "
                 f"{len(heldout_records)} held-out clean examples of the fixture (every query against the pool of all "
                 "their positives and negatives).")
    print(text)
    write_sections({"Curate: embedding checks": f"{stamp}\n\n{text}"})


if __name__ == "__main__":
    main()
