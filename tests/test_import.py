"""synthgen import: public data in, stored examples out; round trips through export; bad input."""

import json

import pytest

from conftest import read_jsonl
from stored import every_kind, stored, write_jsonl
from synthgen.kinds import KINDS

TASK = "Given a web search query, retrieve relevant passages that answer the query"
STORED_KEYS = ["id", "index", "kind", "task", "language", "query", "positive", "negative", "placeholders", "raw",
               "model", "seed", "source"]


def test_pairs_jsonl_with_named_fields(cli, workdir):
    rows = [{"question": "who wrote hamlet", "answer": "Shakespeare wrote Hamlet.", "wrong": "Marlowe wrote Faust."},
            {"question": "boiling point of water", "answer": "Water boils at 100 C.", "wrong": ""}]
    write_jsonl(workdir / "qa.jsonl", rows)
    result = cli("import", "qa.jsonl", "--format", "pairs", "--task", TASK, "--query-field", "question",
                 "--positive-field", "answer", "--negative-field", "wrong", "--language", "English")
    assert result.status == 0, result.err
    assert "imported 2 examples (1 with a negative) from pairs as source 'qa' -> data/imported/qa.jsonl" in result.out
    examples = read_jsonl(workdir / "data" / "imported" / "qa.jsonl")
    assert list(examples[0]) == STORED_KEYS
    assert examples[0] == {
        "id": "qa-0", "index": 0, "kind": "short-long", "task": TASK, "language": "English",
        "query": "who wrote hamlet", "positive": "Shakespeare wrote Hamlet.", "negative": "Marlowe wrote Faust.",
        "placeholders": {}, "raw": rows[0], "model": "imported", "seed": None, "source": "qa",
    }
    assert examples[1]["negative"] is None and examples[1]["id"] == "qa-1"


def test_pairs_tsv_and_csv(cli, workdir):
    (workdir / "h.tsv").write_text('query\tpositive\tnegative\nq "one"\tp one\tn one\nq two\tp two\t\n')
    result = cli("import", "h.tsv", "-f", "pairs", "--task", TASK, "--source", "msmarco", "--kind", "short-short",
                 "--out", "h.jsonl")
    assert result.status == 0, result.err
    examples = read_jsonl(workdir / "h.jsonl")
    assert [(e["query"], e["positive"], e["negative"]) for e in examples] == [
        ('q "one"', "p one", "n one"), ("q two", "p two", None)]
    assert {e["source"] for e in examples} == {"msmarco"} and {e["kind"] for e in examples} == {"short-short"}

    # MS MARCO's triples have no header: columns are 0, 1, 2.
    (workdir / "triples.tsv").write_text("q a\tp a\tn a\nq b\tp b\tn b\n")
    assert cli("import", "triples.tsv", "-f", "pairs", "--task", TASK, "--no-header", "--out", "t.jsonl").status == 0
    assert [e["negative"] for e in read_jsonl(workdir / "t.jsonl")] == ["n a", "n b"]
    assert cli("import", "triples.tsv", "-f", "pairs", "--task", TASK, "--no-header", "--query-field", "1",
               "--positive-field", "0", "--out", "t.jsonl").status == 0
    assert read_jsonl(workdir / "t.jsonl")[0]["query"] == "p a"

    (workdir / "c.csv").write_text('query,positive\n"a, quoted query","a ""positive"""\n')
    assert cli("import", "c.csv", "-f", "pairs", "--task", TASK, "--out", "c.jsonl").status == 0
    example = read_jsonl(workdir / "c.jsonl")[0]
    assert (example["query"], example["positive"], example["negative"]) == ("a, quoted query", 'a "positive"', None)


@pytest.fixture
def beir(workdir):
    folder = workdir / "scifact"
    write_jsonl(folder / "corpus.jsonl", [
        {"_id": "d1", "title": "Cells", "text": "Cells divide."},
        {"_id": "d2", "title": "", "text": "Stars shine."},
        {"_id": "d3", "title": "Genes", "text": "Genes code proteins."},
        {"_id": "d4", "text": "Rivers flow."},
        {"_id": "d5", "title": "Unused", "text": "Never named by qrels."},
    ])
    write_jsonl(folder / "queries.jsonl", [
        {"_id": "q1", "text": "how do cells work"}, {"_id": "q2", "text": "where do rivers go"},
        {"_id": "q3", "text": "a query whose document is gone"},
    ])
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq1\td3\t2\nq2\td4\t1\nq3\td9\t1\nq4\td1\t1\n")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td4\t1\n")
    return folder


def test_beir_folder(cli, beir, workdir):
    result = cli("import", beir, "-f", "beir", "--task", TASK)
    assert result.status == 0, result.err
    assert ("imported 3 examples (2 with a negative) from beir as source 'scifact' -> data/imported/scifact.jsonl; "
            "skipped: document missing from corpus.jsonl 1, query missing from queries.jsonl 1") in result.out
    examples = read_jsonl(workdir / "data" / "imported" / "scifact.jsonl")
    assert [(e["query"], e["positive"], e["negative"]) for e in examples] == [
        ("how do cells work", "Cells Cells divide.", "Stars shine."),  # a judged-irrelevant document: the negative
        ("how do cells work", "Genes Genes code proteins.", "Stars shine."),
        ("where do rivers go", "Rivers flow.", None),
    ]
    assert examples[0]["raw"] == {"query-id": "q1", "corpus-id": "d1", "score": 1.0, "negative-id": "d2",
                                  "split": "test"}
    assert cli("import", beir, "-f", "beir", "--task", TASK, "--split", "train", "--out", "train.jsonl").status == 0
    assert len(read_jsonl(workdir / "train.jsonl")) == 1


def with_negatives():
    return [e for e in every_kind(2) if e["negative"] is not None]


def held(example, keys=("kind", "task", "query", "positive", "negative")):
    return {key: example[key] for key in keys}


def test_medi_round_trip(cli, workdir):
    originals = with_negatives()
    write_jsonl(workdir / "raw" / "examples.jsonl", originals)
    assert cli("export", "raw", "-f", "medi", "--out", "medi.jsonl", "-q").status == 0
    result = cli("import", "medi.jsonl", "-f", "medi", "--out", "back.jsonl")
    assert result.status == 0, result.err
    back = read_jsonl(workdir / "back.jsonl")
    assert [held(e) for e in back] == [held(e) for e in originals]  # task_name carries the kind
    assert {e["source"] for e in back} == {"medi"}
    # And again: export(import(export(x))) == export(x).
    assert cli("export", "back.jsonl", "-f", "medi", "--out", "medi2.jsonl", "-q").status == 0
    assert (workdir / "medi2.jsonl").read_bytes() == (workdir / "medi.jsonl").read_bytes()


def test_flagembedding_round_trip(cli, workdir):
    originals = every_kind(2)
    write_jsonl(workdir / "raw" / "examples.jsonl", originals)
    assert cli("export", "raw", "-f", "flagembedding", "--out", "fe.jsonl", "-q").status == 0
    result = cli("import", "fe.jsonl", "-f", "flagembedding", "--out", "back.jsonl")
    assert result.status == 0, result.err
    assert "imported 12 examples (8 with a negative)" in result.out
    back = read_jsonl(workdir / "back.jsonl")
    keys = ("task", "query", "positive", "negative")  # flagembedding holds no kind
    assert [held(e, keys) for e in back] == [held(e, keys) for e in originals]
    assert cli("export", "back.jsonl", "-f", "flagembedding", "--out", "fe2.jsonl", "-q").status == 0
    assert (workdir / "fe2.jsonl").read_bytes() == (workdir / "fe.jsonl").read_bytes()


def test_flagembedding_rows_with_several_positives(cli, workdir):
    write_jsonl(workdir / "fe.jsonl", [
        {"query": "q", "pos": ["p1", "p2", "p3"], "neg": ["n1", "n2"], "prompt": "Find it."},
        {"query": "r", "pos": "p", "neg": []},
    ])
    result = cli("import", "fe.jsonl", "-f", "flagembedding", "--task", "Override.", "--out", "o.jsonl")
    assert result.status == 0, result.err
    back = read_jsonl(workdir / "o.jsonl")
    assert [(e["query"], e["positive"], e["negative"], e["task"]) for e in back] == [
        ("q", "p1", "n1", "Override."), ("q", "p2", "n2", "Override."), ("q", "p3", "n1", "Override."),
        ("r", "p", None, "Override.")]


def test_pairs_round_trip_through_sentence_transformers(cli, workdir):
    originals = every_kind(2)
    write_jsonl(workdir / "raw" / "examples.jsonl", originals)
    assert cli("export", "raw", "-f", "sentence-transformers", "--no-instruction", "--out", "st.jsonl", "-q").status == 0
    back = []
    for name in ("st.jsonl", "st-pairs.jsonl"):
        result = cli("import", name, "-f", "pairs", "--task", "T", "--query-field", "anchor", "--out", f"b-{name}")
        assert result.status == 0, result.err
        back += read_jsonl(workdir / f"b-{name}")
    keys = ("query", "positive", "negative")
    expected = [e for e in originals if e["negative"]] + [e for e in originals if not e["negative"]]
    assert [held(e, keys) for e in back] == [held(e, keys) for e in expected]


def test_imported_data_dedups_and_mixes_with_synthetic(cli, workdir):
    write_jsonl(workdir / "data" / "raw" / "examples.jsonl", [stored(i) for i in range(20)])
    write_jsonl(workdir / "pub.jsonl", [{"query": f"public q{i % 8}", "positive": f"public p{i % 8}"} for i in range(12)])
    assert cli("import", "pub.jsonl", "-f", "pairs", "--task", TASK, "--source", "msmarco").status == 0
    result = cli("dedup", "data/raw", "data/imported", "-q")
    assert "kept 28, removed 4" in result.out
    result = cli("export", "data/dedup/examples.jsonl", "-f", "sentence-transformers", "--mix",
                 "synthetic=0.5,msmarco=0.5", "-q")
    assert result.status == 0, result.err
    assert "wrote 8 (sentence-transformers)" in result.out and "8 without a negative" in result.out
    assert "by source: msmarco 8, synthetic 8" in result.out
    report = json.loads(cli("stats", "data/dedup", "--json").out)
    assert report["sources"] == {"synthetic": 20, "msmarco": 8}


BAD = [
    (["import", "nothing.jsonl", "-f", "pairs", "--task", "T"], "no such file: nothing.jsonl"),
    (["import", "nothing", "-f", "beir", "--task", "T"], "no such folder: nothing"),
    (["import", "pairs.jsonl", "-f", "xml", "--task", "T"], "Invalid value for '--format' / '-f'"),
    (["import", "pairs.jsonl", "-f", "pairs"], "--task is needed: pairs data holds no instruction"),
    (["import", "pairs.jsonl", "-f", "pairs", "--task", "T", "--kind", "medium-long"], "--kind: unknown kind 'medium-long'"),
    (["import", "pairs.jsonl", "-f", "pairs", "--task", "T", "--query-field", "question"],
     "pairs.jsonl:1: no query field 'question' (the row has: query, positive); name it with --query-field"),
    (["import", "broken.jsonl", "-f", "pairs", "--task", "T"], "broken.jsonl:2: not a JSON line"),
    (["import", "list.jsonl", "-f", "pairs", "--task", "T"], "list.jsonl:1: expected a JSON object, got list"),
    (["import", "empty-field.jsonl", "-f", "pairs", "--task", "T"],
     "empty-field.jsonl:1: the positive field 'positive' is empty or not text"),
    (["import", "ragged.tsv", "-f", "pairs", "--task", "T"], "ragged.tsv:3: 2 columns where the header has 3"),
    (["import", "pairs.jsonl", "-f", "pairs", "--task", "T", "--no-header"], "--no-header is for TSV and CSV files"),
    (["import", "pairs.jsonl", "-f", "medi", "--split", "dev"], "--split is for BEIR folders"),
    (["import", "notbeir", "-f", "beir", "--task", "T"], "notbeir is not a BEIR folder: it has no qrels/ folder"),
    (["import", "badscore", "-f", "beir", "--task", "T"], "badscore/qrels/test.tsv:2: score 'high' is not a number"),
    (["import", "badscore", "-f", "beir", "--task", "T", "--split", "dev"], "no badscore/qrels/dev.tsv: splits there are test"),
    (["import", "bad-medi.jsonl", "-f", "medi"], "bad-medi.jsonl:1: 'pos' must be an [instruction, text] pair"),
    (["import", "no-prompt.jsonl", "-f", "flagembedding"], "no-prompt.jsonl:1: the row holds no instruction: give --task"),
    (["import", "bad-fe.jsonl", "-f", "flagembedding"], "bad-fe.jsonl:1: 'pos' holds no text"),
    (["import", "array.json", "-f", "medi"], "array.json is not JSON"),
    (["import", "blank.jsonl", "-f", "pairs", "--task", "T"], "blank.jsonl: nothing to import"),
    (["import", "latin1.jsonl", "-f", "pairs", "--task", "T"], "latin1.jsonl:1: not a JSON line"),
    (["import", "latin1.tsv", "-f", "pairs", "--task", "T"], "latin1.tsv is not UTF-8 text"),
    (["import", "notbeir", "-f", "pairs", "--task", "T"], "notbeir is a folder, not a file"),
    (["import", "pairs.jsonl", "-f", "pairs", "--task", "  "], "--task is empty"),
]


@pytest.fixture
def bad_files(workdir):
    write_jsonl(workdir / "pairs.jsonl", [{"query": "q", "positive": "p"}])
    write_jsonl(workdir / "broken.jsonl", [{"query": "q", "positive": "p"}], raw_lines=['{"query": '])
    write_jsonl(workdir / "list.jsonl", [["q", "p"]])
    write_jsonl(workdir / "empty-field.jsonl", [{"query": "q", "positive": " "}])
    (workdir / "ragged.tsv").write_text("query\tpositive\tnegative\na\tb\tc\nd\te\n")
    (workdir / "notbeir").mkdir()
    (workdir / "badscore" / "qrels").mkdir(parents=True)
    (workdir / "badscore" / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
    write_jsonl(workdir / "bad-medi.jsonl", [{"query": ["i", "q"], "pos": "p", "neg": ["", "n"], "task_name": "x"}])
    write_jsonl(workdir / "no-prompt.jsonl", [{"query": "q", "pos": ["p"], "neg": []}])
    write_jsonl(workdir / "bad-fe.jsonl", [{"query": "q", "pos": [], "neg": ["n"], "prompt": "t"}])
    (workdir / "array.json").write_text('[{"query": ["i", "q"], ')
    (workdir / "blank.jsonl").write_text("\n\n")
    (workdir / "latin1.jsonl").write_bytes('{"query": "café", "positive": "p"}\n'.encode("latin-1"))
    (workdir / "latin1.tsv").write_bytes("query\tpositive\ncafé\tp\n".encode("latin-1"))
    return workdir


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_status_2(cli, bad_files, args, message):
    result = cli(*args)
    assert result.status == 2, (result.out, result.err)
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert message in result.err
    assert "Traceback" not in result.err
    assert not (bad_files / "data" / "imported").exists() or not any((bad_files / "data" / "imported").iterdir())


def test_medi_as_one_json_array(cli, workdir):
    rows = [{"query": ["Represent the question: ", "q"], "pos": ["Represent the answer: ", "p"],
             "neg": ["Represent the answer: ", "n"], "task_name": "quora"}]
    (workdir / "medi-data.json").write_text(json.dumps(rows))
    result = cli("import", "medi-data.json", "-f", "medi", "--out", "m.jsonl")
    assert result.status == 0, result.err
    example = read_jsonl(workdir / "m.jsonl")[0]
    assert (example["task"], example["kind"], example["source"]) == ("Represent the question:", "short-long", "medi-data")
    assert example["raw"] == rows[0]
    assert set(KINDS) >= {example["kind"]}
