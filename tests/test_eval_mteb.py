"""synthgen eval mteb: mteb itself runs the passkey benchmark and BEIR folders as its own retrieval
tasks, on a real /v1/embeddings server on 127.0.0.1 whose vectors make the answer known; a task
that is neither a folder nor MTEB's, or whose data cannot be had offline, is one line and exit 2."""

import json
import math
import os
import sys
from pathlib import Path

import pytest

import synthgen
from conftest import read_jsonl, run_subprocess
from fake_embeddings import bag_of_words, passkey_reader
from synthgen import beir
from synthgen.passkey import INSTRUCTION

pytest.importorskip("mteb")
pytest.importorskip("sentence_transformers")


@pytest.fixture
def results(workdir, monkeypatch):
    """mteb's default result cache is made at import: here, never in ~/.cache."""
    monkeypatch.setenv("MTEB_CACHE", str(workdir / "mteb-cache"))
    return workdir / "results"


def expected_top_1(folder, window):
    """Queries whose right document names its person within the reader's first WINDOW words; when it
    does not, every candidate scores 0 and mteb (pytrec_eval) ranks the highest document id first."""
    corpus = {d["_id"]: d for d in read_jsonl(folder / "corpus.jsonl")}
    gold = dict(line.split("\t")[:2] for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:])
    found = 0
    for query in read_jsonl(folder / "queries.jsonl"):
        right = corpus[gold[query["_id"]]]
        seen = right["metadata"]["name"] in " ".join(right["text"].split()[:window])
        found += seen or right["_id"] == max(query["candidates"])
    return found / len(gold)


def test_the_passkey_benchmark_is_an_mteb_retrieval_task(cli, workdir, serve, results):
    assert cli("passkey", "--lengths", "128,1024", "--queries", "12", "--candidates", "8", "--seed", "5",
               "--tokenizer", "words", "--out", "pk", "-q").status == 0
    server = serve(passkey_reader(window=300))
    result = cli("eval", "mteb", "pk", "--base-url", server.base_url, "--model", "fake-embed", "--api-key", "sk-test-key",
                 "--out", results, "--json", "-q")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    rows = {row["subset"]: row for row in report["tasks"]}
    assert set(rows) == {"128", "1024"} and {row["task"] for row in rows.values()} == {"SynthgenPasskeyRetrieval"}
    assert all(row["main_score"] == "recall_at_1" and row["split"] == "test" for row in rows.values())
    assert rows["128"]["value"] == 1.0
    assert rows["1024"]["value"] == pytest.approx(expected_top_1(workdir / "pk" / "1024", 300), abs=1e-5)
    assert 0 < rows["1024"]["value"] < 1
    # Queries carry the benchmark's instruction in synthgen's template; documents go bare.
    sent = [text for request in server.requests for text in request["input"]]
    assert any(text.startswith(f"Instruct: {INSTRUCTION}\nQuery: What is the passkey of ") for text in sent)
    assert any(text.startswith("The grass is green.") or text.startswith("The passkey of") for text in sent)
    assert len(sent) == 2 * (12 + 12 * 8)  # every query and document once, nothing twice
    # mteb's own result file, which mteb reads back; the key is in no file.
    saved = list((results / "results").rglob("SynthgenPasskeyRetrieval.json"))
    assert len(saved) == 1 and str(saved[0].parent) == report["results"]
    import mteb

    loaded = mteb.TaskResult.from_disk(saved[0])
    assert {s["hf_subset"]: s["main_score"] for s in loaded.scores["test"]} == {k: r["value"] for k, r in rows.items()}
    assert not [p for p in results.rglob("*") if p.is_file() and b"sk-test-key" in p.read_bytes()]


def test_a_beir_folder_with_graded_judgments_and_a_prompt(cli, workdir, serve, results):
    """Gains count (pytrec_eval's nDCG), and --prompt replaces MTEB's default instruction."""
    beir.write_folder(workdir / "fruit", [{"_id": "d1", "title": "", "text": "apple banana"},
                                          {"_id": "d2", "title": "", "text": "apple"},
                                          {"_id": "d3", "title": "", "text": "cherry"}],
                      [{"_id": "q1", "text": "apple"}], [beir.Judgment("q1", "d1", 2), beir.Judgment("q1", "d2", 1)])
    server = serve(bag_of_words(["apple", "banana", "cherry"]))
    result = cli("eval", "mteb", "fruit", "--base-url", server.base_url, "--model", "fake-embed", "--out", results,
                 "--prompt", "Retrieval=Find fruit", "-q")
    assert result.status == 0, result.err
    # "apple" ranks d2 (cos 1) above d1 (cos 0.71): gains 1 then 2, against the ideal 2 then 1.
    ndcg = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    header, _, row = result.out.splitlines()[1:4]
    assert header.split() == ["task", "subset", "split", "main", "score", "value"]
    assert row.split() == ["BEIR-fruit", "default", "test", "ndcg_at_10", f"{ndcg:.4f}"]
    assert "Instruct: Find fruit\nQuery: apple" in [t for r in server.requests for t in r["input"]]


@pytest.mark.parametrize("args,message", [
    (["NoSuchTaskAnywhere"], "NoSuchTaskAnywhere is neither a folder nor an MTEB task"),
    (["SciFcat"], "Did you mean: 'SciFact'"),
    (["data"], "is neither a passkey benchmark (synthgen passkey) nor a BEIR folder"),
    (["SciFact", "--prompt", "Retrieval"], "--prompt 'Retrieval': give KEY=INSTRUCTION"),
])
def test_bad_input(cli, workdir, results, args, message):
    (workdir / "data").mkdir()
    result = cli("eval", "mteb", *args, "--out", results, "-q")
    assert result.status == 2, result.err
    assert message in result.err and len(result.err.strip().splitlines()) == 1


def test_a_task_whose_data_is_not_on_disk_offline_is_one_line(workdir):
    """A fresh process with an empty Hugging Face cache and the Hub offline: the task and the cache
    named in one line, before any model is loaded."""
    source = str(Path(synthgen.__file__).resolve().parents[1])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(workdir / "hf"), "MTEB_CACHE": str(workdir / "mc"),
           "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    result = run_subprocess("eval", "mteb", "SciFact", "--model", "no/such-model", "--out", workdir / "out", "-q",
                            cwd=workdir, env=env)
    assert result.status == 2, result.err
    line = result.err.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert "MTEB task SciFact" in line and "mteb/scifact" in line and str(workdir / "hf" / "hub") in line
    assert not (workdir / "out").exists() or not list((workdir / "out").rglob("*.json"))


@pytest.mark.parametrize("missing,command,message", [
    ("mteb", ["eval", "mteb", "SciFact"], "synthgen eval mteb needs the mteb extra: pip install torch==2.13.0 'synthgen[train,mteb]'"),
    ("sentence_transformers", ["eval", "retrieval", "test.jsonl", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
     "synthgen eval retrieval needs the train extra: pip install torch==2.13.0 'synthgen[train]'"),
])
def test_without_the_extra_one_line_and_exit_2(cli, workdir, results, monkeypatch, missing, command, message):
    for name in [missing, *(m for m in sys.modules if m.startswith(missing + "."))]:  # as if never installed
        monkeypatch.setitem(sys.modules, name, None)
    (workdir / "test.jsonl").write_text(json.dumps({
        "id": "e0", "index": 0, "kind": "short-long", "task": "t", "language": "English", "query": "q",
        "positive": "p", "negative": None, "placeholders": {}, "raw": {}, "model": "m", "seed": 0}) + "\n")
    result = cli(*command, "--out" if missing == "mteb" else "-q", *([results] if missing == "mteb" else []))
    assert result.status == 2, result.err
    assert result.err.strip() == f"synthgen: {message}"


def test_in_a_symmetric_task_every_text_is_a_query_with_mteb_s_instruction(workdir, serve, results):
    """An STS task of mteb's own (its mock, data inline): both sides carry the task type's instruction."""
    import mteb
    from mteb.mocks.mock_tasks.sts import MockSTSTask

    from synthgen.embedders import EndpointEmbedder
    from synthgen.instructions import QUERY_TEMPLATE
    from synthgen.mteb_encoder import SynthgenEncoder

    server = serve(bag_of_words(["a", "the", "is", "cat", "dog"]))
    encoder = SynthgenEncoder(EndpointEmbedder(server.base_url, "fake-embed"), QUERY_TEMPLATE)
    outcome = mteb.evaluate(encoder, MockSTSTask(), cache=None, show_progress_bar=False, co2_tracker=False)
    assert outcome.task_results[0].task_name == "MockSTSTask"
    sent = [text for request in server.requests for text in request["input"]]
    assert len(sent) == 4 and all(t.startswith("Instruct: Retrieve semantically similar text.\nQuery: ") for t in sent)
