"""generate --corpus: examples grounded in the passages of a corpus folder, against the loopback LLM.

The corpus is written through the store's own writer (CorpusFolder.open), as `synthgen corpus ingest`
writes it; the plan, the provenance, the checks of a grounded answer, resume and bad input are
tested through the CLI."""

import collections
import json
import re

import pytest

from conftest import read_jsonl
from fake_llm import chat_body
from synthgen.config import load_config
from synthgen.grounded import GROUNDED
from synthgen.kinds import GROUNDED_KINDS
from synthgen.sampling import GroundedPlanner
from synthgen.store import CorpusFolder, Passage

PASSAGE_IN_PROMPT = re.compile(r"<passage>\n(.*)\n</passage>", re.DOTALL)


def write_corpus(folder, documents: dict[str, list[str]]):
    """A corpus whose documents are named and hold these passages, in this order."""
    with CorpusFolder(folder).open() as output:
        count = 0
        for doc_id, texts in documents.items():
            offset = 0
            for n, text in enumerate(texts):
                output.keep(Passage(id=f"{doc_id}-{n}", doc_id=doc_id, source=f"{doc_id}.txt", offset=offset, text=text))
                offset += len(text) + 2
                count += 1
        output.commit({"passages": count, "documents": len(documents)})
    return folder


def sentences(doc: str, n: int) -> str:
    return " ".join(f"Fact {i} of {doc} passage {n} is remarkable." for i in range(4))


@pytest.fixture
def corpus(workdir):
    return write_corpus(workdir / "corpus", {f"doc{d}": [sentences(f"doc{d}", n) for n in range(3)] for d in range(6)})


def passages_by_id(folder) -> dict[str, Passage]:
    return {p.id: p for p in CorpusFolder(folder)}


def config_file(workdir, kinds: str, negatives: int = 0, extra: str = "") -> str:
    """A config with these grounded kinds; no mining unless `negatives` (it needs an embedder)."""
    (workdir / "corpus.toml").write_text(f"[generate.corpus]\nkinds = {{ {kinds} }}\nnegatives = {negatives}\n"
                                         + extra)
    return "corpus.toml"


def quoting(llm):
    """A model whose every answer starts with its passage's first 30 characters, and that copies a
    sentence of the passage where asked to."""

    def answer(body):
        prompt = body["messages"][-1]["content"]
        keys = tuple(body["response_format"]["json_schema"]["schema"]["properties"])
        passage = PASSAGE_IN_PROMPT.search(prompt).group(1)
        reply = {key: f"{key} for {passage[:30]} {len(llm.requests)}" for key in keys}
        if "sentence" in reply:
            reply["sentence"] = passage.split(". ")[1] + "."
        return 200, {}, chat_body(json.dumps(reply))

    return answer


def test_every_grounded_kind_keeps_its_passage_and_provenance(cli, endpoint, llm, workdir, corpus):
    llm.default = quoting(llm)
    config = config_file(workdir, ", ".join(f'{k} = 1' for k in GROUNDED_KINDS))
    result = cli("generate", "--n", 24, "--corpus", corpus, "--config", config, *endpoint)
    assert result.status == 0, result.err
    examples = read_jsonl(workdir / "data/raw/examples.jsonl")
    passages = passages_by_id(corpus)
    assert len(examples) == 24 and {e["kind"] for e in examples} == set(GROUNDED_KINDS)
    for example in examples:
        passage = passages[example["passage_id"]]
        assert example["doc_id"] == passage.doc_id
        assert example["task"] == example["raw"]["task"] and example["negative"] is None
        if example["kind"] in ("short-long", "long-long"):
            assert example["positive"] == passage.text
        elif example["kind"] == "long-short":
            assert example["query"] == passage.text and example["positive"] == example["raw"]["label"]
        else:
            assert example["positive"] in passage.text and example["query"] == example["raw"]["user_query"]
        prompt = next(r["messages"][-1]["content"] for r in llm.requests if passage.text in r["messages"][-1]["content"])
        assert "{" not in PASSAGE_IN_PROMPT.sub("", prompt).replace('{"', "")  # every placeholder filled
    manifest = json.loads((workdir / "data/raw/manifest.json").read_text())
    assert manifest["corpus"]["passages"] == 18 and manifest["corpus"]["documents"] == 6
    assert manifest["brainstorm"] is None and manifest["tasks"] == {}
    assert not (workdir / "data/tasks").exists()  # no brainstorm in corpus mode


def test_a_sentence_not_in_the_passage_is_rejected(cli, endpoint, llm, workdir, corpus):
    # The fake's own answers make up their sentence.
    result = cli("generate", "--n", 3, "--corpus", corpus, "--config", config_file(workdir, "short-short = 1"),
                 "--max-requests", 5, *endpoint)
    assert result.status == 1
    rejects = read_jsonl(workdir / "data/raw/rejects.jsonl")
    assert len(rejects) == 5 and {r["reason"] for r in rejects} == {"not-in-passage"}


def test_the_plan_depends_on_the_seed_and_the_corpus_alone(workdir, corpus):
    config = load_config()
    index = CorpusFolder(corpus).index()
    try:
        first = [GroundedPlanner(config, index).item(i) for i in range(50)]
        again = [GroundedPlanner(config, index).item(i) for i in reversed(range(50))][::-1]
        assert first == again  # item i from (seed, i) alone, in any order
        other = load_config(overrides={"generate": {"seed": 1}})
        assert [i.passage for i in first] != [GroundedPlanner(other, index).item(i).passage for i in range(50)]
        kinds = collections.Counter(item.kind for item in first)
        assert set(kinds) <= set(GROUNDED) and kinds["short-long"] > 25  # the default weights: 0.7
        assert all(set(item.placeholders) == set(GROUNDED[item.kind].placeholders) for item in first)
    finally:
        index.close()


@pytest.mark.parametrize("draw,expected", [("document", 0.5), ("passage", 100 / 101)])
def test_draw_by_document_keeps_one_huge_file_from_dominating(workdir, draw, expected):
    corpus = write_corpus(workdir / "c", {"huge": [f"huge part {n}" for n in range(100)], "small": ["small only"]})
    config = load_config(overrides={"generate": {"corpus": {"draw": draw}}})
    index = CorpusFolder(corpus).index()
    try:
        planner = GroundedPlanner(config, index)
        share = sum(index[planner.item(i).passage].doc_id == "huge" for i in range(2000)) / 2000
    finally:
        index.close()
    assert abs(share - expected) < 0.04


def test_a_run_resumes_on_its_corpus_and_refuses_another(cli, endpoint, llm, workdir, corpus):
    config = config_file(workdir, "short-long = 1")
    assert cli("generate", "--n", 4, "--corpus", corpus, "--config", config, *endpoint).status == 0
    sent = len(llm.requests)
    assert cli("generate", "--n", 7, "--corpus", corpus, "--config", config, *endpoint).status == 0
    assert len(llm.requests) == sent + 3  # nothing asked twice
    assert len(read_jsonl(workdir / "data/raw/examples.jsonl")) == 7

    changed = write_corpus(workdir / "corpus2", {"doc0": ["Another text altogether."]})
    result = cli("generate", "--n", 9, "--corpus", changed, "--config", config, *endpoint)
    assert result.status == 2 and "corpus" in result.err and len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize("make,message", [
    (lambda w: w / "missing", "not a corpus"),
    (lambda w: (w / "empty").mkdir() or w / "empty", "not a corpus"),
    (lambda w: write_corpus(w / "none", {}), "holds no passages"),
])
def test_a_folder_that_is_no_corpus_is_one_line(cli, endpoint, workdir, make, message):
    result = cli("generate", "--n", 2, "--corpus", make(workdir), *endpoint)
    assert result.status == 2 and message in result.err and len(result.err.strip().splitlines()) == 1


def test_split_by_document_then_eval_against_the_whole_corpus(cli, endpoint, llm, workdir, corpus):
    from fake_embeddings import FakeEmbeddings, bag_of_words

    config = config_file(workdir, "short-long = 1")
    assert cli("generate", "--n", 30, "--corpus", corpus, "--config", config, *endpoint).status == 0
    assert cli("split", "data/raw", "--out", "split", "--test-share", "0.3").status == 0
    train, test = read_jsonl(workdir / "split/train.jsonl"), read_jsonl(workdir / "split/test.jsonl")
    assert len(train) + len(test) == 30 and test
    assert not {e["doc_id"] for e in train} & {e["doc_id"] for e in test}  # no document on both sides
    summary = json.loads((workdir / "split/split.json").read_text())
    assert sorted(summary["test_documents"]) == sorted({e["doc_id"] for e in test})

    # The fake's queries begin with their passage's first words: "Fact 0 of doc3 passage 1".
    server = FakeEmbeddings(bag_of_words([f"doc{d}" for d in range(6)] + ["0", "1", "2"])).start()
    try:
        result = cli("eval", "retrieval", "split/test.jsonl", "--corpus", corpus, "--base-url", server.base_url,
                     "--model", "fake-embed", "--json", "-q")
    finally:
        server.stop()
    assert result.status == 0, result.err
    report = json.loads(result.out)
    assert report["queries"] == len(test) and report["documents"] == 18  # every passage, not only the positives
    assert "against the passages of" in report["source"]


def test_negatives_are_mined_from_the_corpus_never_the_own_passage(cli, endpoint, llm, workdir):
    from fake_embeddings import FakeEmbeddings, bag_of_words

    topics = [["router", "modem", "reset"], ["bread", "yeast", "flour"], ["violin", "bow", "rosin"]]
    marks = ["one", "two", "three", "four"]
    corpus = write_corpus(workdir / "corpus", {f"doc{t}": [f"{a} {b} {c} {mark}" for mark in marks]
                                               for t, (a, b, c) in enumerate(topics)})
    config = config_file(workdir, "short-long = 1")
    llm.default = quoting(llm)
    assert cli("generate", "--n", 12, "--corpus", corpus, "--config", config, *endpoint).status == 0
    # The query (and the task) hold the passage whole: cos 1 with it, 0.75 with its topic's three others.
    server = FakeEmbeddings(bag_of_words([w for topic in topics for w in topic] + marks), model="bow").start()
    try:
        (workdir / "c.toml").write_text(f'[curate.embed]\ncache = "{workdir / "e"}"\n')
        result = cli("curate", "data/raw", "--out", "cur", "--checks", "near-duplicate", "--mine-negatives", 2,
                     "--corpus", corpus, "--embed-base-url", server.base_url, "--embed-model", "bow",
                     "--config", "c.toml", "-q")
    finally:
        server.stop()
    assert result.status == 0, result.err
    passages = {p.text: p for p in CorpusFolder(corpus)}
    kept = read_jsonl(workdir / "cur/examples.jsonl")
    assert len(kept) == 12
    for example in kept:
        own = passages[example["positive"]]
        assert example["passage_id"] == own.id and len(example["negatives"]) == 2
        assert all(passages[n].doc_id == own.doc_id and n != example["positive"] for n in example["negatives"])
    report = json.loads((workdir / "cur/report.json").read_text())
    assert report["check_counts"]["mine"]["examples mined from the corpus"] == 12

    result = cli("curate", "data/raw", "--out", "cur2", "--checks", "near-duplicate", "--corpus", corpus, "-q")
    assert result.status == 2 and "--mine-negatives" in result.err and len(result.err.strip().splitlines()) == 1


TOPICS = [["router", "modem", "reset"], ["bread", "yeast", "flour"], ["violin", "bow", "rosin"]]
MARKS = ["one", "two", "three", "four"]


def topic_corpus(workdir, extra: dict[str, list[str]] | None = None):
    """Three documents of one topic each, four passages apiece told apart by a mark."""
    documents = {f"doc{t}": [f"{a} {b} {c} {mark}" for mark in MARKS] for t, (a, b, c) in enumerate(TOPICS)}
    return write_corpus(workdir / "corpus", {**documents, **(extra or {})})


def bow_embedder():
    """A loopback embedder of the topic words: a query holding its passage whole is cos 1 with it,
    0.75 with its topic's three others."""
    from fake_embeddings import FakeEmbeddings, bag_of_words

    return FakeEmbeddings(bag_of_words([w for topic in TOPICS for w in topic] + MARKS), model="bow").start()


def embed_settings(workdir, server) -> str:
    return (f'[curate.embed]\nbase_url = "{server.base_url}"\nmodel = "bow"\ncache = "{workdir / "e"}"\n')


def test_generate_mines_the_corpus_negatives_itself(cli, endpoint, llm, workdir):
    """The two commands a user runs: ingest, then generate --corpus, which ends by mining each
    example's negatives among the passages into OUT-mined, with curate's own code."""
    corpus = topic_corpus(workdir)
    llm.default = quoting(llm)
    server = bow_embedder()
    try:
        config = config_file(workdir, "short-long = 1", negatives=2, extra=embed_settings(workdir, server))
        result = cli("generate", "--n", 12, "--corpus", corpus, "--config", config, *endpoint)
        assert result.status == 0, result.err
        assert "12 examples with 24 negatives mined from the corpus in " in result.out
        sent = len(llm.requests)
        # Run again: the run is complete, nothing is asked of the LLM, the mining is done again alike.
        mined = (workdir / "data/raw-mined/examples.jsonl").read_bytes()
        assert cli("generate", "--n", 12, "--corpus", corpus, "--config", config, "-q", *endpoint).status == 0
        assert len(llm.requests) == sent and (workdir / "data/raw-mined/examples.jsonl").read_bytes() == mined
    finally:
        server.stop()
    passages = {p.text: p for p in CorpusFolder(corpus)}
    raw, kept = read_jsonl(workdir / "data/raw/examples.jsonl"), read_jsonl(workdir / "data/raw-mined/examples.jsonl")
    assert [e["id"] for e in kept] == [e["id"] for e in raw] and all("negatives" not in e for e in raw)
    for example in kept:
        own = passages[example["positive"]]
        assert example["passage_id"] == own.id and len(example["negatives"]) == 2
        assert all(passages[n].doc_id == own.doc_id and n != example["positive"] for n in example["negatives"])
    report = json.loads((workdir / "data/raw-mined/report.json").read_text())
    assert report["check_counts"]["mine"]["examples mined from the corpus"] == 12 and report["checks"] == []


def test_without_an_embedder_the_run_is_kept_and_a_rerun_mines(cli, endpoint, llm, workdir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    corpus = topic_corpus(workdir)
    llm.default = quoting(llm)
    config = config_file(workdir, "short-long = 1", negatives=1,
                         extra='[curate.embed]\nmodel = "no-such-org/no-such-embedder"\n')
    result = cli("generate", "--n", 5, "--corpus", corpus, "--config", config, *endpoint)
    assert result.status == 1 and "Traceback" not in result.err
    assert result.err.strip().splitlines()[-1].startswith("negatives not mined: ")
    assert len(read_jsonl(workdir / "data/raw/examples.jsonl")) == 5 and not (workdir / "data/raw-mined").exists()
    sent = len(llm.requests)
    server = bow_embedder()
    try:
        config = config_file(workdir, "short-long = 1", negatives=1, extra=embed_settings(workdir, server))
        assert cli("generate", "--n", 5, "--corpus", corpus, "--config", config, *endpoint).status == 0
    finally:
        server.stop()
    assert len(llm.requests) == sent
    assert all(len(e["negatives"]) == 1 for e in read_jsonl(workdir / "data/raw-mined/examples.jsonl"))


def test_relabelling_judges_the_corpus_passages_and_moves_the_example(cli, endpoint, llm, workdir):
    """FRet's second step on the corpus: the judge grades 3 the passage holding MARKER (a passage of
    doc0's topic that no query was written for) and 1 the others, so each doc0 example moves to it,
    its own passage becoming its negative; the others keep their positive."""
    from test_relabel import grade

    corpus = topic_corpus(workdir, {"docM": ["router modem reset MARKER"]})
    generating = quoting(llm)
    llm.default = lambda body: grade(body) if "grades" in json.dumps(body["response_format"]) else generating(body)
    server = bow_embedder()
    try:
        config = config_file(workdir, "short-long = 1", negatives=1,
                             extra="relabel = true\n" + embed_settings(workdir, server))
        result = cli("generate", "--n", 12, "--corpus", corpus, "--config", config, "-q", *endpoint)
    finally:
        server.stop()
    assert result.status == 0, result.err
    passages = {p.text: p for p in CorpusFolder(corpus)}
    marker = passages["router modem reset MARKER"]
    raw = {e["id"]: e for e in read_jsonl(workdir / "data/raw/examples.jsonl")}
    moved = 0
    for example in read_jsonl(workdir / "data/raw-mined/examples.jsonl"):
        before = raw[example["id"]]
        verdict = example["curation"]["relabel"]["verdict"]
        if before["doc_id"] == "doc0":
            assert verdict == "relabelled" and example["positive"] == marker.text
            assert (example["passage_id"], example["doc_id"]) == (marker.id, "docM")
            assert example["negative"] == before["positive"] and before["positive"] not in example["negatives"]
            moved += 1
        else:
            assert example["positive"] == before["positive"] and example["passage_id"] == before["passage_id"]
    assert moved > 0
    assert len(read_jsonl(workdir / "data/raw-mined/relabel.jsonl")) == 12


def test_a_given_task_set_is_dealt_evenly(workdir, corpus):
    tasks = {"short-long": [f"task {n}" for n in range(7)]}
    config = load_config(overrides={"generate": {"corpus": {"kinds": {"short-long": 1}}}})
    index = CorpusFolder(corpus).index()
    try:
        planner = GroundedPlanner(config, index, tasks)
        items = [planner.item(i) for i in range(100)]
        again = [GroundedPlanner(config, index, tasks).item(i) for i in reversed(range(100))][::-1]
    finally:
        index.close()
    uses = collections.Counter(item.task for item in items)
    assert set(uses) == set(tasks["short-long"]) and max(uses.values()) - min(uses.values()) <= 1
    assert items == again


def test_a_given_task_set_is_used_and_the_llm_writes_only_the_query(cli, endpoint, llm, workdir, corpus):
    assert cli("brainstorm", "--subtype", "short-long", *endpoint).status == 0
    tasks = {t["task"] for t in read_jsonl(workdir / "data/tasks/short-long.jsonl")}
    config = config_file(workdir, "short-long = 1")
    sent = len(llm.requests)
    result = cli("generate", "--n", 6, "--corpus", corpus, "--tasks", "data/tasks", "--config", config, *endpoint)
    assert result.status == 0, result.err
    examples = read_jsonl(workdir / "data/raw/examples.jsonl")
    assert len(examples) == 6 and all(e["task"] in tasks and "task" not in e["raw"] for e in examples)
    asked = [r["messages"][-1]["content"] for r in llm.requests[sent:]]
    assert all(any(f"The retrieval task is: {e['task']}\n" in prompt for prompt in asked) for e in examples)
    assert all(list(r["response_format"]["json_schema"]["schema"]["properties"]) == ["user_query"]
               for r in llm.requests[sent:])
    assert len(llm.requests) == sent + 6  # nothing brainstormed

    result = cli("generate", "--n", 2, "--out", "other", "--corpus", corpus, "--tasks", "data/tasks",
                 "--config", config_file(workdir, "long-long = 1"), *endpoint)
    assert result.status == 2 and "no long-long tasks" in result.err and len(result.err.strip().splitlines()) == 1
