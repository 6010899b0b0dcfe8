"""synthgen curate's embedding checks: consistency, false negatives, hard-negative mining.

On real text with the real embedder (all-MiniLM-L6-v2 on Python's documentation, planted defects:
tests/planted.py's planted_retrieval) each check's precision and recall on its own defect class
are measured; through a loopback /v1/embeddings server whose vectors are counts of words, the HTTP
path and the exact evidence.
"""

import json

import numpy as np
import pytest

from conftest import read_jsonl
from fake_embeddings import FakeEmbeddings, bag_of_words
import planted
from stored import stored, write_jsonl
from test_curate import precision_recall

@pytest.fixture(scope="module")
def cache_folder(tmp_path_factory):
    """One embedding cache for the module's tests: the planted set is embedded once, not per test."""
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture
def config(workdir, cache_folder):
    path = workdir / "curate.toml"
    path.write_text(f'[curate.embed]\ncache = "{cache_folder}"\n')
    return path


# -- real text, the real embedder --------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted_set():
    return planted.planted_retrieval(clean=300, swapped=30, better_negatives=30)


def test_consistency_and_false_negatives_find_their_planted_defects(cli, workdir, config, planted_set):
    write_jsonl(workdir / "in.jsonl", planted_set.records)
    result = cli("curate", "in.jsonl", "--out", "cur", "--checks", "consistency,false-negative",
                 "--config", config, "-q")
    assert result.status == 0, result.err
    kept, dropped = read_jsonl(workdir / "cur/examples.jsonl"), read_jsonl(workdir / "cur/dropped.jsonl")
    assert sorted(e["id"] for e in kept + dropped) == sorted(r["id"] for r in planted_set.records)
    for reason, defect in (("inconsistent", "inconsistent"), ("false-negative", "false-negative")):
        precision, recall = precision_recall(dropped, reason, planted_set.defects[defect])
        assert precision >= 0.9 and recall >= 0.9, (reason, precision, recall)
    inconsistent = next(d for d in dropped if d["reason"] == "inconsistent")
    assert inconsistent["evidence"]["rank"] > 3 and inconsistent["evidence"]["best_score"] > \
        inconsistent["evidence"]["positive_score"]
    false_negative = next(d for d in dropped if d["reason"] == "false-negative")
    assert false_negative["evidence"]["negative_score"] > false_negative["evidence"]["positive_score"]

    report = json.loads((workdir / "cur/report.json").read_text())
    assert report["embedder"]["model"] == "all-MiniLM-L6-v2"
    assert report["embedder"]["computed"] + report["embedder"]["reused"] >= 2 * len(planted_set.records)
    assert report["check_counts"]["consistency"]["checked"] == len(planted_set.records)

    # Again: the same files, and nothing embedded a second time.
    before = {name: (workdir / "cur" / name).read_bytes() for name in ("examples.jsonl", "dropped.jsonl")}
    assert cli("curate", "in.jsonl", "--out", "cur", "--checks", "consistency,false-negative",
               "--config", config, "-q").status == 0
    assert {name: (workdir / "cur" / name).read_bytes() for name in before} == before
    assert json.loads((workdir / "cur/report.json").read_text())["embedder"]["computed"] == 0


def test_swapped_false_negatives_are_kept_with_their_scores(cli, workdir, config, planted_set):
    write_jsonl(workdir / "in.jsonl", planted_set.records)
    result = cli("curate", "in.jsonl", "--out", "cur", "--checks", "false-negative", "--on-false-negative", "swap",
                 "--config", config, "-q")
    assert result.status == 0, result.err
    originals = {r["id"]: r for r in planted_set.records}
    swapped = [e for e in read_jsonl(workdir / "cur/examples.jsonl") if "curation" in e]
    assert len(swapped) >= 0.9 * len(planted_set.defects["false-negative"])
    for example in swapped:
        original = originals[example["id"]]
        assert (example["positive"], example["negative"]) == (original["negative"], original["positive"])
        scores = example["curation"]["swapped"]
        assert scores["negative_score"] > scores["positive_score"]
    assert read_jsonl(workdir / "cur/dropped.jsonl") == []


def test_mined_negatives_are_hard_but_below_the_positive(cli, workdir, config, planted_set):
    clean = [r for r in planted_set.records if r["id"] not in set().union(*planted_set.defects.values())]
    write_jsonl(workdir / "in.jsonl", clean)
    result = cli("curate", "in.jsonl", "--out", "cur", "--checks", "", "--mine-negatives", "2",
                 "--config", config, "-q")
    assert result.status == 0, result.err
    kept = read_jsonl(workdir / "cur/examples.jsonl")
    assert len(kept) == len(clean)
    mined = [e for e in kept if e.get("negatives")]
    assert len(mined) >= 0.9 * len(kept)
    by_kind = {}
    for example in kept:
        by_kind.setdefault(example["kind"], set()).update([example["positive"], *filter(None, [example.get("negative")])])
    from sentence_transformers import SentenceTransformer

    from synthgen.models import default_embedding_model_path

    model = SentenceTransformer(str(default_embedding_model_path()))
    for example in mined[:40]:
        assert len(example["negatives"]) <= 2 and example["positive"] not in example["negatives"]
        assert example.get("negative") not in example["negatives"]
        assert set(example["negatives"]) <= by_kind[example["kind"]]  # from the documents of its own kind
        query = f"Instruct: {example['task']}\nQuery: {example['query']}"
        q, p, *n = model.encode([query, example["positive"], *example["negatives"]], normalize_embeddings=True)
        # No candidate within 5% of the positive's score (NV-Retriever's TopK-PercPos).
        assert all(float(q @ v) <= 0.95 * float(q @ p) + 1e-4 for v in n)

    assert cli("export", "cur", "--format", "flagembedding", "--out", "fe.jsonl", "-q").status == 0
    rows = read_jsonl(workdir / "fe.jsonl")
    assert sum(len(r["neg"]) for r in rows) == sum(len(e.get("negatives", [])) + (e.get("negative") is not None)
                                                   for e in kept)


# -- the HTTP path, exact figures ------------------------------------------------------------------------

SPEAKERS = ["how", "what", "why", "when"]
TOPICS = [["router", "modem", "reset", "cable"], ["bread", "yeast", "flour", "oven"],
          ["violin", "bow", "string", "rosin"], ["glacier", "ice", "valley", "moraine"],
          ["comet", "tail", "orbit", "nucleus"], ["tax", "refund", "form", "deadline"]]
MARKS = ["one", "two", "three", "four"]
VOCABULARY = SPEAKERS + [word for topic in TOPICS for word in topic] + MARKS


def bag_of_words_examples() -> list[dict]:
    """Four examples a topic. Query "how router modem", positive "router modem reset one": the
    query meets its positive and its topic's others at cos 0.577, its negative at 0.408."""
    records = []
    for t, (a, b, c, d) in enumerate(TOPICS):
        for j, (speaker, mark) in enumerate(zip(SPEAKERS, MARKS)):
            records.append(stored(len(records), query=f"{speaker} {a} {b}", positive=f"{a} {b} {c} {mark}",
                                  negative=f"{a} {d}", task="Find it."))
    # A positive from another topic: scores 0, below the topic's three others -> rank 4.
    records[0]["positive"] = records[4]["positive"]
    # A negative that is the query itself: scores 1 against the positive's 0.577.
    records[9]["negative"] = records[9]["query"]
    return records


def test_the_checks_through_an_embeddings_endpoint(cli, workdir, config):
    server = FakeEmbeddings(bag_of_words(VOCABULARY), model="bow").start()
    try:
        write_jsonl(workdir / "in.jsonl", bag_of_words_examples())
        args = ("curate", "in.jsonl", "--out", "cur", "--checks", "consistency,false-negative",
                "--embed-base-url", server.base_url, "--embed-model", "bow", "--config", config, "-q")
        result = cli(*args)
        assert result.status == 0, result.err
        dropped = {d["id"]: d for d in read_jsonl(workdir / "cur/dropped.jsonl")}
        assert set(dropped) == {"run-0", "run-9"}
        assert dropped["run-0"]["reason"] == "inconsistent"
        assert dropped["run-0"]["evidence"] == {
            "rank": 4, "top_k": 3, "documents": 23, "positive_score": 0.0, "best_score": 0.5774,
            "best_document_of": "run-1", "best_document": "router modem reset two"}
        assert dropped["run-9"]["reason"] == "false-negative"
        assert dropped["run-9"]["evidence"] == {"positive_score": 0.5774, "negative_score": 1.0}
        report = json.loads((workdir / "cur/report.json").read_text())
        assert report["embedder"]["via"] == "embeddings endpoint" and report["embedder"]["languages"] == "all"
        assert report["check_counts"]["consistency"]["positive rank"] == {"1": 23, ">3": 1}
        # Every example's margin, in bins of 0.05: the two defects' below 0 (the report draws it).
        assert report["check_counts"]["false-negative"]["margin"] == {"-0.45": 2, "0.15": 22}

        sent = len(server.requests)
        assert cli(*args).status == 0
        assert len(server.requests) == sent  # every vector from the cache
    finally:
        server.stop()


def test_without_an_embedder_the_default_skips_the_embedding_checks_and_says_so(cli, workdir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the name is not looked up on the hub (no network here anyway)
    write_jsonl(workdir / "in.jsonl", bag_of_words_examples())
    (workdir / "c.toml").write_text('[curate]\nchecks = ["near-duplicate", "consistency"]\n'
                                    '[curate.embed]\nmodel = "no/such-folder"\ncache = "embeddings"\n')
    result = cli("curate", "in.jsonl", "--out", "cur", "--config", "c.toml", "-q")
    assert result.status == 0, result.err
    report = json.loads((workdir / "cur/report.json").read_text())
    assert report["checks"] == ["near-duplicate"] and "no/such-folder" in report["skipped"]["consistency"]
    assert len(read_jsonl(workdir / "cur/examples.jsonl")) == 24

    # Asked for by name, it is an error: one line, exit 2, nothing written.
    result = cli("curate", "in.jsonl", "--out", "cur2", "--checks", "consistency", "--config", "c.toml", "-q")
    assert result.status == 2 and "no/such-folder" in result.err and len(result.err.strip().splitlines()) == 1
    assert not (workdir / "cur2").exists()


def test_a_cache_folder_survives_a_second_process(workdir):
    """Two caches on one folder (two processes): the second finds what the first wrote."""
    from synthgen.embedders import EndpointEmbedder
    from synthgen.embedding_cache import EmbeddingCache

    server = FakeEmbeddings(bag_of_words(VOCABULARY), model="bow").start()
    try:
        embedder = EndpointEmbedder(server.base_url, "bow")
        first = EmbeddingCache(embedder, workdir / "e").vectors(["how router", "bread oven"], show_progress=False)
        second = EmbeddingCache(embedder, workdir / "e")
        assert np.array_equal(second.vectors(["bread oven"], show_progress=False), first[1:])
        assert second.computed == 0
    finally:
        server.stop()


def test_relabel_through_curate_with_an_llm_and_an_embedder_on_loopback(cli, workdir, config, llm):
    """The fake LLM grades 3 a document holding MARKER, 1 any other: the three other router
    examples' queries are shown run-3's positive, which holds it, so two are relabelled to it."""
    from test_relabel import grade

    llm.default = grade
    records = bag_of_words_examples()
    records[3]["positive"] += " MARKER"  # not a word the embedder counts: retrieval is unchanged
    write_jsonl(workdir / "in.jsonl", records)
    server = FakeEmbeddings(bag_of_words(VOCABULARY), model="bow").start()
    try:
        args = ("curate", "in.jsonl", "--out", "cur", "--checks", "consistency,false-negative", "--relabel",
                "--embed-base-url", server.base_url, "--embed-model", "bow", "--base-url", llm.base_url,
                "--model", "fake-model", "--config", config, "-q")
        result = cli(*args)
        assert result.status == 0, result.err
        kept = {e["id"]: e for e in read_jsonl(workdir / "cur/examples.jsonl")}
        assert len(kept) == 22 and len(llm.requests) == 22  # one judgement per example the checks kept
        for id_ in ("run-1", "run-2"):
            assert kept[id_]["positive"] == records[3]["positive"]
            assert kept[id_]["negative"] == records[int(id_[4:])]["positive"]
            assert kept[id_]["negatives"] == [records[int(id_[4:])]["negative"]]
            assert kept[id_]["curation"]["relabel"]["verdict"] == "relabelled"
        assert kept["run-3"]["curation"]["relabel"]["verdict"] == "kept"
        assert kept["run-5"]["positive"] == records[5]["positive"]
        report = json.loads((workdir / "cur/report.json").read_text())
        assert report["check_counts"]["relabel"]["relabelled"] == 2 and report["checks"][-1] == "relabel"

        # Again: every judgement from the ledger, no request; the same output.
        before = (workdir / "cur/examples.jsonl").read_bytes()
        assert cli(*args).status == 0
        assert len(llm.requests) == 22 and (workdir / "cur/examples.jsonl").read_bytes() == before

        # action "drop": relabelled ones are dropped as relabelled-out, the judgements reused.
        (workdir / "drop.toml").write_text(config.read_text() + '[curate.relabel]\naction = "drop"\n')
        result = cli(*args[:-3], "--config", workdir / "drop.toml", "-q")
        assert result.status == 0, result.err
        dropped = read_jsonl(workdir / "cur/dropped.jsonl")
        assert {d["id"] for d in dropped if d["reason"] == "relabelled-out"} == {"run-1", "run-2"}
    finally:
        server.stop()


def test_stats_quality_measures_what_the_checks_would_find(cli, workdir, config):
    """stats --quality on the bag-of-words set plus one exact copy: the figures are known exactly,
    and nothing is changed or dropped."""
    records = bag_of_words_examples()
    records.append(dict(records[5], id="copy-of-5", index=24))
    write_jsonl(workdir / "in.jsonl", records)
    before = (workdir / "in.jsonl").read_bytes()
    server = FakeEmbeddings(bag_of_words(VOCABULARY), model="bow").start()
    try:
        (workdir / "q.toml").write_text(config.read_text() + f'base_url = "{server.base_url}"\nmodel = "bow"\n')
        result = cli("stats", "in.jsonl", "--quality", "--json", "--config", "q.toml", "-q")
    finally:
        server.stop()
    assert result.status == 0, result.err
    quality = json.loads(result.out)["quality"]
    assert quality["near_duplicates"] == {"examples": 25, "near_duplicates": 1, "share": 0.04}
    retrieval = quality["retrieval"]
    assert retrieval["examples"] == 25 and retrieval["passed_through"] == 0
    # run-0's positive (another topic's) ranks 4th; every other positive first (the copy's is the same document).
    assert retrieval["positive_rank"]["first"] == round(24 / 25, 4) and retrieval["positive_rank"]["top_3"] == 0.96
    margin = retrieval["margin"]
    # Margins: 0.5774 - 0.4082 for 23; run-0 0 - 0.4082; run-9 0.5774 - 1 (its negative is its query).
    assert margin["examples"] == 25 and margin["negative_wins"] == 0.08
    assert (margin["min"], margin["median"], margin["max"]) == (-0.4226, 0.1691, 0.1691)
    assert (workdir / "in.jsonl").read_bytes() == before

    # The table, with the server gone: every vector from the cache.
    text = cli("stats", "in.jsonl", "--quality", "--config", "q.toml", "-q")
    assert text.status == 0 and "negative wins" in text.out.lower(), text.err
