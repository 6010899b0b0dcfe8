"""What the report tests show: a real run (generate on the fake server, with rejected answers), a
real curate output (the embedding checks through the loopback embeddings server, so the report has
hardness and ranks to draw), eval results as `synthgen eval --json` prints them, and one example
planted with a URL, markup and a </script> in its texts."""

import json
from pathlib import Path

from fake_embeddings import FakeEmbeddings, bag_of_words
from fake_llm import FakeLLM
from stored import stored, write_jsonl
from test_curate_retrieval import VOCABULARY, bag_of_words_examples

from synthgen.cli import main

PLANTED = "zebracorn-4711"
HOSTILE = (f"{PLANTED} see https://evil.example/x.png and //cdn.example/a.js "
           "<img src=x onerror=\"window.pwned=1\"> </script><script>window.pwned=2</script> <!-- & done")


def synthgen(*args: object) -> None:
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert exc.code in (0, None), (args, exc.code)


def make(folder: Path) -> dict[str, Path]:
    """raw (a run folder), curated (curate's output), passkey.json and retrieval.json, in folder."""
    raw, curated = folder / "raw", folder / "curated"
    llm = FakeLLM().start()
    try:
        endpoint = ("--base-url", llm.base_url, "--model", "fake-model", "--quiet")
        synthgen("brainstorm", "--tasks", folder / "tasks", *endpoint)
        llm.then("bad_json", "wrong_schema", "truncated", "empty")
        synthgen("generate", "--n", 60, "--out", raw, "--tasks", folder / "tasks", "--concurrency", 1, *endpoint)
    finally:
        llm.stop()
    write_jsonl(raw / "planted.jsonl", [stored(900, "sts", query=HOSTILE, positive="a plain positive",
                                              negative="a plain negative", task="Retrieve semantically similar text.",
                                              source="https://example.org/data.jsonl")])
    embeddings = FakeEmbeddings(bag_of_words(VOCABULARY), model="bow").start()
    try:
        write_jsonl(folder / "to-curate.jsonl", bag_of_words_examples())
        (folder / "curate.toml").write_text(f'[curate.embed]\ncache = "{folder / "cache"}"\n')
        synthgen("curate", folder / "to-curate.jsonl", "--out", curated, "--checks", "consistency,false-negative",
                 "--embed-base-url", embeddings.base_url, "--embed-model", "bow", "--config", folder / "curate.toml", "-q")
    finally:
        embeddings.stop()
    passkey = folder / "passkey.json"
    passkey.write_text(json.dumps({"benchmark": "passkey", "model": "tiny-embedder", "unit": "tokens", "candidates": 100,
                                   "lengths": [{"length": n, "queries": 50, "correct": c, "accuracy": c / 50, "seconds": 1.0}
                                               for n, c in ((256, 50), (512, 48), (1024, 40), (2048, 21))]}))
    retrieval = folder / "retrieval.json"
    groups = {name: {"queries": 30, "ndcg@10": v, "mrr@10": v - 0.05, "recall@1": v - 0.1, "recall@10": min(1, v + 0.1),
                     "map@100": v - 0.06, "recall@100": 1.0}
              for name, v in (("all", 0.71), ("short-long", 0.8), ("sts", 0.62))}
    retrieval.write_text(json.dumps({"benchmark": "retrieval", "model": "tiny-embedder", "source": "held-out",
                                     "queries": 90, "documents": 180, "groups": groups}))
    return {"raw": raw, "curated": curated, "passkey": passkey, "retrieval": retrieval}
