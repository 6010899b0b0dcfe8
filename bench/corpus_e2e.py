"""Your own documents, end to end: ingest -> generate --corpus -> split by document -> train -> eval.

    python bench/corpus_e2e.py [--quick] [--embedded K]

The corpus: the long descriptions (READMEs) in the METADATA of the packages installed in this
environment, one document each: real, varied English nobody here wrote. Generation runs against
bench/server.py, whose answer to a passage is a query of six of its longer words (a stand-in for
an LLM, for speed; the figures measure the pipeline, not an LLM's queries). With --embedded K, K
examples are also written by the embedded model, to show what a real model's queries look like.
The held-out documents' examples are evaluated against every passage of the corpus, with
all-MiniLM-L6-v2 before and after `synthgen train` on the training documents' examples.
"""

import argparse
import datetime
import email.parser
import json
import re
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import Server, machine, run, synthgen, table, write_sections  # noqa: E402

MIN_WORDS = 150


def package_readmes(folder: Path, limit: int) -> int:
    """Up to `limit` installed packages' long descriptions of MIN_WORDS words or more, as .md files."""
    folder.mkdir(parents=True)
    site = Path(sysconfig.get_paths()["purelib"])
    written = 0
    for metadata in sorted(site.glob("*.dist-info/METADATA")):
        message = email.parser.Parser().parsestr(metadata.read_text(encoding="utf-8", errors="replace"))
        body = message.get_payload() or message.get("Description") or ""
        if not isinstance(body, str) or len(body.split()) < MIN_WORDS:
            continue
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", message.get("Name") or metadata.parent.name)
        (folder / f"{name}.md").write_text(body, encoding="utf-8")
        written += 1
        if written == limit:
            break
    return written


def evaluate(work: Path, model: str, corpus: Path) -> dict:
    result = run(synthgen("eval", "retrieval", "split/test.jsonl", "--corpus", corpus,
                          *(["--model", model] if model else []), "--json", "-q"), work)
    assert result.status == 0, result.out
    return json.loads(result.out[result.out.index("{"):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 documents and 300 examples")
    parser.add_argument("--embedded", type=int, default=0, metavar="K", help="K examples by the embedded model too")
    parser.add_argument("--negatives", type=int, default=1, metavar="K",
                        help="hard negatives generate mines per example among the passages (0: none)")
    args = parser.parse_args()
    documents, n = (30, 300) if args.quick else (150, 3000)
    stamp = f"{datetime.date.today().isoformat()}, {machine()}" + (" (--quick)" if args.quick else "")
    steps: list[list[str]] = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        found = package_readmes(work / "docs", documents)
        ingest = run(synthgen("corpus", "ingest", "docs", "--out", "corpus", "-q"), work)
        assert ingest.status == 0, ingest.out
        passages = sum(1 for _ in open(work / "corpus/passages.jsonl", encoding="utf-8"))
        steps.append(["corpus ingest", f"{found} documents -> {passages:,} passages", f"{ingest.wall:.1f}"])

        (work / "corpus.toml").write_text('[generate.corpus]\nkinds = { short-long = 1 }\n'
                                          f'negatives = {args.negatives}\n[curate.embed]\ncache = "{work / "cache"}"\n')
        server = Server(latency=0.0)
        try:
            generated = run(synthgen("generate", "--n", n, "--corpus", "corpus", "--config", "corpus.toml",
                                     "--base-url", server.url, "--model", "bench", "--concurrency", "32", "-q"), work)
        finally:
            server.stop()
        assert generated.status == 0, generated.out
        mined = f", {args.negatives} negative each mined among the passages (MiniLM)" if args.negatives else ""
        steps.append(["generate --corpus (loopback LLM)", f"{n:,} examples{mined}", f"{generated.wall:.1f}"])

        examples = "data/raw-mined" if args.negatives else "data/raw"
        split = run(synthgen("split", examples, "--out", "split", "--test-share", "0.2"), work)
        assert split.status == 0, split.out
        summary = json.loads((work / "split/split.json").read_text())
        steps.append(["split by document", f"train {summary['train']:,}, test {summary['test']:,} "
                      f"({len(summary['test_documents'])} documents held out)", f"{split.wall:.1f}"])

        before = evaluate(work, "", Path("corpus"))
        trained = run(synthgen("train", "split/train.jsonl", "--out", "model", "--epochs", "1", "--batch-size", "32",
                               "-q"), work, timeout=4 * 3600)  # 15 minutes on an idle machine; shared cores are slower
        assert trained.status == 0, trained.out
        steps.append(["train all-MiniLM-L6-v2, 1 epoch", f"{summary['train']:,} examples", f"{trained.wall:.1f}"])
        after = evaluate(work, str(work / "model"), Path("corpus"))

        samples: list[dict] = []
        if args.embedded:
            (work / "embedded.toml").write_text('[generate.corpus]\nkinds = { short-long = 1 }\nnegatives = 0\n')
            local = run(synthgen("generate", "--n", args.embedded, "--corpus", "corpus", "--config", "embedded.toml",
                                 "--out", "embedded", "-q"), work, timeout=3600)
            assert local.status == 0, local.out
            samples = [json.loads(line) for line in open(work / "embedded/examples.jsonl", encoding="utf-8")]
            steps.append(["generate --corpus (embedded model)", f"{len(samples)} examples", f"{local.wall:.1f}"])

    text = table(["step", "what", "wall s"], steps)
    text += "\n\n" + table(["model", "test queries", "documents in the pool", "nDCG@10", "MRR@10", "recall@1",
                            "recall@10"], [
        [name, f"{r['queries']:,}", f"{r['documents']:,}", *(f"{r['groups']['all'][m]:.4f}" for m in
                                                            ("ndcg@10", "mrr@10", "recall@1", "recall@10"))]
        for name, r in (("all-MiniLM-L6-v2", before), ("trained on the training documents", after))])
    text += ("\n\n`python bench/corpus_e2e.py`: the long descriptions of installed packages (METADATA, "
             f"{MIN_WORDS}+ words each) ingested as a corpus; {n:,} short-long examples generated against the "
             f"loopback server (`--negatives {args.negatives}`: "
             f"{'each given that many hard negatives from the passages by generate itself' if args.negatives else 'no negatives'}, "
             "trained as triplets where there are), "
             "the loopback server's query for a passage being six of its longer words (a stand-in for an LLM, so "
             "the gain measures the pipeline, not a model's queries); split by document; the held-out documents' "
             "queries searched against every passage of the corpus. The keyword queries are easy for a trained "
             "model and hard for an untrained one: the size of the gain is the stand-in's, its direction the "
             f"pipeline's. Ingest said: `{ingest.out.strip().splitlines()[-1]}`")
    for sample in samples:
        text += (f"\n\n- embedded model, {sample['kind']} on `{sample['passage_id']}`: task \"{sample['task']}\", "
                 f"query \"{sample['query'][:200]}\"")
    print(text)
    write_sections({"Your own documents, end to end": f"{stamp}\n\n{text}"})


if __name__ == "__main__":
    main()
