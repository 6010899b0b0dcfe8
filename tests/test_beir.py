"""The one BEIR reader and writer: the layout, the score rule, strict rows, and import and eval agreeing."""

import pytest

from synthgen import beir
from synthgen.beir import Judgment
from synthgen.errors import BadInput
from synthgen.evaluate import load_beir
from synthgen.importers import read_beir

CORPUS = [
    {"_id": "d1", "title": "Cells", "text": " Cells divide. "},
    {"_id": "d2", "title": "", "text": "Stars shine."},
    {"_id": 3, "title": "Genes", "text": "Genes code proteins.", "metadata": {"source": "x"}},
    {"_id": "d4", "text": "Rivers flow."},
    {"_id": "d5", "title": "Unused", "text": "Never named by qrels."},
]
QUERIES = [
    {"_id": "q1", "text": "how do cells work", "instruction": "Find the biology"},
    {"_id": "q2", "text": "where do rivers go"},
    {"_id": "q3", "text": "a query judged only at 0"},
]
JUDGMENTS = [Judgment("q1", "d1", 1), Judgment("q1", "d2", 0), Judgment("q1", "3", 2),
             Judgment("q2", "d4", 0.5), Judgment("q3", "d5", 0)]


@pytest.fixture
def folder(tmp_path):
    beir.write_folder(tmp_path / "set", CORPUS, QUERIES, JUDGMENTS)
    return tmp_path / "set"


def test_write_then_read_gives_the_rows_back(folder):
    assert beir.is_folder(folder)
    assert (folder / "qrels" / "test.tsv").read_text().splitlines() == [
        "query-id\tcorpus-id\tscore", "q1\td1\t1", "q1\td2\t0", "q1\t3\t2", "q2\td4\t0.5", "q3\td5\t0"]
    assert beir.read_qrels(beir.qrels_file(folder)) == JUDGMENTS
    documents = list(beir.corpus(folder))
    # Ids are strings; title and text are joined as BEIR joins them; extra fields stay on the row.
    assert [(d.id, d.text) for d in documents] == [
        ("d1", "Cells Cells divide."), ("d2", "Stars shine."), ("3", "Genes Genes code proteins."),
        ("d4", "Rivers flow."), ("d5", "Unused Never named by qrels.")]
    assert documents[2].fields["metadata"] == {"source": "x"}
    assert [q.fields.get("instruction") for q in beir.queries(folder)] == ["Find the biology", None, None]


def test_one_score_rule(folder):
    """Above 0: relevant, with the score as its gain. At 0: judged and not relevant."""
    assert [j.relevant for j in JUDGMENTS] == [True, False, True, True, False]
    assert beir.relevance(JUDGMENTS) == {"q1": {"d1": 1, "3": 2}, "q2": {"d4": 0.5}}


def test_import_and_eval_agree_on_what_is_relevant(folder):
    skipped = {}
    pairs = list(read_beir(folder, None, skipped))
    imported = {(p.raw["query-id"], p.raw["corpus-id"]) for p in pairs}
    data = load_beir(folder, "Retrieve it")
    evaluated = {(q, d) for q, docs in data.qrels.items() for d in docs}
    assert imported == evaluated == {("q1", "d1"), ("q1", "3"), ("q2", "d4")}
    # The importer's negative is the judged-irrelevant document; eval keeps it in the pool, not relevant.
    assert [p.negative for p in pairs] == ["Stars shine.", "Stars shine.", None]
    assert data.doc_ids == ["d1", "d2", "3", "d4", "d5"]
    # A query judged only at 0 has nothing to find: eval leaves it out.
    assert data.query_ids == ["q1", "q2"] and data.instructions == ["Find the biology", "Retrieve it"]


def test_texts_keeps_only_what_is_wanted(folder):
    assert beir.texts(beir.corpus(folder), {"d4", "3", "d9"}) == {"3": "Genes Genes code proteins.",
                                                                  "d4": "Rivers flow."}


def test_qrels_header_is_optional_and_may_reorder_columns(tmp_path):
    plain = tmp_path / "plain.tsv"
    plain.write_text("q1\td1\t1\nq1\td2\t0\n")
    assert beir.read_qrels(plain) == [Judgment("q1", "d1", 1), Judgment("q1", "d2", 0)]
    reordered = tmp_path / "reordered.tsv"
    reordered.write_text("corpus-id\tquery-id\tscore\nd1\tq1\t2\n")
    assert beir.read_qrels(reordered) == [Judgment("q1", "d1", 2)]


@pytest.mark.parametrize("qrels,message", [
    ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", "test.tsv:2: score 'high' is not a number"),
    ("query-id\tcorpus-id\tscore\nq1\td1\n", "test.tsv:2: 2 columns where the first row has 3"),
    ("q1\td1\n", "test.tsv:1: expected query-id, corpus-id, score separated by tabs"),
])
def test_bad_qrels(tmp_path, qrels, message):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text(qrels)
    with pytest.raises(BadInput, match=message):
        beir.read_qrels(beir.qrels_file(tmp_path))


def test_bad_folders_and_rows(tmp_path, folder):
    with pytest.raises(BadInput, match="is not a BEIR folder: it has no qrels/ folder"):
        beir.qrels_file(tmp_path)
    with pytest.raises(BadInput, match="no .*dev.tsv: splits there are test"):
        beir.qrels_file(folder, "dev")
    (folder / "qrels" / "train.tsv").write_text("q1\td1\t1\n")
    assert beir.qrels_file(folder) == folder / "qrels" / "test.tsv"  # test when there is one
    (folder / "qrels" / "test.tsv").unlink()
    assert beir.qrels_file(folder) == folder / "qrels" / "train.tsv"  # else the only split
    (folder / "queries.jsonl").unlink()
    with pytest.raises(BadInput, match="is not a BEIR folder: it has no queries.jsonl"):
        list(beir.queries(folder))
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "fine"}\n{"_id": "d2", "title": "no text"}\n')
    with pytest.raises(BadInput, match="corpus.jsonl:2: a BEIR row needs _id and text"):
        list(beir.corpus(folder))
