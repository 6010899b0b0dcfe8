"""synthgen export: every trainer's layout, negatives, --mix, Parquet, streaming, bad input."""

import json
import tracemalloc

import pytest

from conftest import read_jsonl
from stored import every_kind, stored, write_jsonl
from synthgen.export import export

TASK = "Given a question, retrieve passages that answer it."


def lines(path):
    """The raw text of each line: key order matters to sentence-transformers."""
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def raw(workdir):
    """A run folder: 12 examples (2 of each kind, 4 without a negative), its rejects and a task file."""
    folder = workdir / "data" / "raw"
    write_jsonl(folder / "examples.jsonl", every_kind(2))
    write_jsonl(folder / "rejects.jsonl", [{"index": 99, "kind": "sts", "reason": "bad_json", "text": "{"}])
    write_jsonl(workdir / "data" / "tasks" / "short-long.jsonl", [{"kind": "short-long", "task": TASK, "model": "m"}])
    return folder


def test_e5_is_the_papers_template_on_the_query_side_only(cli, raw, workdir):
    result = cli("export", raw, "--format", "e5", "-q")
    assert result.status == 0, result.err
    out = workdir / "data" / "export" / "e5.jsonl"
    assert f"read 12 examples from 1 files: wrote 12 (e5) -> {out.relative_to(workdir)}; left out: none" in result.out
    rows = read_jsonl(out)
    examples = every_kind(2)
    assert rows[0] == {
        "query": f"Instruct: {examples[0]['task']}\nQuery: {examples[0]['query']}",
        "positive": examples[0]["positive"],
        "negative": examples[0]["negative"],
        "negatives": [examples[0]["negative"]],
    }
    assert lines(out)[0].startswith('{"query":"Instruct: ')
    sts = rows[4]
    assert sts["query"] == f"Instruct: Retrieve semantically similar text.\nQuery: {examples[4]['query']}"
    assert rows[2]["negative"] is None and rows[3]["negative"] is None  # short-short, long-long
    assert [r["positive"] for r in rows] == [e["positive"] for e in examples]


def test_sentence_transformers_columns_in_order_and_pairs_apart(cli, raw, workdir):
    result = cli("export", raw, "--format", "sentence-transformers", "--out", "st/train.jsonl", "-q")
    assert result.status == 0, result.err
    assert ("wrote 8 (sentence-transformers) -> st/train.jsonl; 4 without a negative as (anchor, positive) pairs "
            "-> st/train-pairs.jsonl; left out: none") in result.out
    triplets, pairs = lines(workdir / "st" / "train.jsonl"), lines(workdir / "st" / "train-pairs.jsonl")
    assert all(list(json.loads(line)) == ["anchor", "positive", "negative"] for line in triplets)
    assert all(list(json.loads(line)) == ["anchor", "positive"] for line in pairs)
    first = json.loads(triplets[0])
    example = every_kind(2)[0]
    assert first["anchor"] == f"Instruct: {example['task']}\nQuery: {example['query']}"

    # Without the instruction, and with --require-negative: no pairs file (a stale one is removed).
    result = cli("export", raw, "--format", "sentence-transformers", "--out", "st/train.jsonl",
                 "--no-instruction", "--require-negative", "-q")
    assert result.status == 0, result.err
    assert "wrote 8 (sentence-transformers)" in result.out and "left out: no negative 4" in result.out
    assert not (workdir / "st" / "train-pairs.jsonl").exists()
    assert read_jsonl(workdir / "st" / "train.jsonl")[0]["anchor"] == example["query"]


def test_mined_negatives_follow_the_generated_one_in_every_format(cli, workdir):
    """What `curate --mine-negatives` added: a list after the generated negative, or the only ones."""
    mined = [stored(0, negative="generated", negatives=["mined 1", "mined 2"]),
             stored(1, "short-short", negatives=["mined 3"])]
    write_jsonl(workdir / "in.jsonl", mined)
    assert cli("export", "in.jsonl", "--format", "e5", "--out", "e5.jsonl", "-q").status == 0
    e5 = read_jsonl(workdir / "e5.jsonl")
    assert [(r["negative"], r["negatives"]) for r in e5] == [("generated", ["generated", "mined 1", "mined 2"]),
                                                             ("mined 3", ["mined 3"])]
    assert cli("export", "in.jsonl", "--format", "flagembedding", "--out", "fe.jsonl", "-q").status == 0
    assert [r["neg"] for r in read_jsonl(workdir / "fe.jsonl")] == [["generated", "mined 1", "mined 2"], ["mined 3"]]
    result = cli("export", "in.jsonl", "--format", "sentence-transformers", "--out", "st.jsonl", "-q")
    assert "wrote 4 (sentence-transformers)" in result.out and not (workdir / "st-pairs.jsonl").exists()
    rows = read_jsonl(workdir / "st.jsonl")
    assert [r["negative"] for r in rows] == ["generated", "mined 1", "mined 2", "mined 3"]
    assert len({(r["anchor"], r["positive"]) for r in rows}) == 2  # one row per negative
    assert cli("export", "in.jsonl", "--format", "medi", "--out", "medi.jsonl", "-q").status == 0
    assert [r["neg"] for r in read_jsonl(workdir / "medi.jsonl")] == [["", "generated"], ["", "mined 3"]]


def test_flagembedding_lists_and_prompt(cli, raw, workdir):
    result = cli("export", raw, "--format", "flagembedding", "--out", "fe.jsonl", "-q")
    assert result.status == 0, result.err
    rows, examples = read_jsonl(workdir / "fe.jsonl"), every_kind(2)
    assert rows[0] == {"query": examples[0]["query"], "pos": [examples[0]["positive"]],
                       "neg": [examples[0]["negative"]], "prompt": examples[0]["task"]}
    assert rows[2]["neg"] == [] and rows[2]["pos"] == [examples[2]["positive"]]
    result = cli("export", raw, "--format", "flagembedding", "--out", "fe.jsonl", "--require-negative", "-q")
    assert "wrote 8 (flagembedding)" in result.out and "left out: no negative 4" in result.out
    assert all(len(r["neg"]) == 1 for r in read_jsonl(workdir / "fe.jsonl"))


def test_medi_pairs_of_instruction_and_text(cli, raw, workdir):
    result = cli("export", raw, "--format", "medi", "--out", "medi.jsonl", "-q")
    assert result.status == 0, result.err
    assert "wrote 8 (medi)" in result.out and "left out: no negative 4" in result.out  # Instructor needs one
    rows, examples = read_jsonl(workdir / "medi.jsonl"), every_kind(2)
    assert rows[0] == {"query": [examples[0]["task"], examples[0]["query"]], "pos": ["", examples[0]["positive"]],
                       "neg": ["", examples[0]["negative"]], "task_name": "short-long"}
    assert [r["task_name"] for r in rows[:4]] == ["short-long", "long-short", "sts", "bitext"]


EXPECTED_COLUMNS = {
    "e5": (["query", "positive", "negative", "negatives"], None),
    "sentence-transformers": (["anchor", "positive", "negative"], ["anchor", "positive"]),
    "flagembedding": (["query", "pos", "neg", "prompt"], None),
    "medi": (["query", "pos", "neg", "task_name"], None),
}


@pytest.mark.parametrize("fmt", list(EXPECTED_COLUMNS))
def test_every_export_loads_with_datasets(cli, raw, workdir, fmt):
    datasets = pytest.importorskip("datasets")
    out = workdir / f"{fmt}.jsonl"
    assert cli("export", raw, "--format", fmt, "--out", out, "-q").status == 0
    columns, pair_columns = EXPECTED_COLUMNS[fmt]
    data = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(workdir / "hf"))
    assert data.column_names == columns
    assert len(data) == {"e5": 12, "flagembedding": 12}.get(fmt, 8)
    if fmt in ("flagembedding", "medi"):
        assert all(isinstance(row["pos"], list) and isinstance(row["neg"], list) for row in data)
    if fmt == "medi":
        assert all(len(row["query"]) == 2 for row in data)
    if pair_columns:
        pairs = datasets.load_dataset("json", data_files=str(workdir / f"{fmt}-pairs.jsonl"), split="train",
                                      cache_dir=str(workdir / "hf"))
        assert pairs.column_names == pair_columns and len(pairs) == 4
        assert None not in data["negative"]


def test_e5_loads_when_the_first_rows_have_no_negative(cli, workdir):
    datasets = pytest.importorskip("datasets")
    records = [stored(i, "short-short") for i in range(3)] + [stored(i, "short-long") for i in range(3, 6)]
    write_jsonl(workdir / "in.jsonl", records)
    assert cli("export", "in.jsonl", "--format", "e5", "--out", "e5.jsonl", "-q").status == 0
    data = datasets.load_dataset("json", data_files=str(workdir / "e5.jsonl"), split="train",
                                 cache_dir=str(workdir / "hf"))
    assert data["negative"][:3] == [None, None, None] and all(data["negative"][3:])


def sources(workdir, synthetic=30, msmarco=10, nq=5):
    records = [stored(i) for i in range(synthetic)]
    records += [stored(100 + i, source="msmarco") for i in range(msmarco)]
    records += [stored(200 + i, source="nq") for i in range(nq)]
    records += [stored(300, source="synthetic")]  # named "synthetic" explicitly: the same source
    write_jsonl(workdir / "mixed" / "a.jsonl", records[::2])
    write_jsonl(workdir / "mixed" / "b.jsonl", records[1::2])
    return workdir / "mixed"


def exported_ids(path):
    return [r["query"] for r in read_jsonl(path)]


def test_mix_sources_by_ratio_deterministically(cli, workdir):
    folder = sources(workdir)
    result = cli("export", folder, "--format", "flagembedding", "--out", "a.jsonl", "--mix",
                 "synthetic=0.5,msmarco=0.5", "--seed", 3, "-q")
    assert result.status == 0, result.err
    # msmarco has 10: the largest 1:1 mix is 10 + 10; nq is not in the mix.
    assert "wrote 20 (flagembedding)" in result.out
    assert "left out: over the --mix ratio 21, source not in --mix 5" in result.out
    assert "by source: msmarco 10, synthetic 10" in result.out
    a = exported_ids(workdir / "a.jsonl")
    assert sum(q.startswith("what is thing number 1") and len(q) == len("what is thing number 100") for q in a) == 10

    assert cli("export", folder, "-f", "flagembedding", "--out", "b.jsonl", "--mix", "synthetic=0.5,msmarco=0.5",
               "--seed", 3, "-q").status == 0
    assert exported_ids(workdir / "b.jsonl") == a  # same seed, same selection
    assert cli("export", folder, "-f", "flagembedding", "--out", "c.jsonl", "--mix", "synthetic=1,msmarco=1",
               "--seed", 4, "-q").status == 0
    assert exported_ids(workdir / "c.jsonl") != a  # another seed picks other synthetic examples

    result = cli("export", folder, "-f", "e5", "--out", "d.jsonl", "--mix", "synthetic=3,nq=1", "-q")
    assert "wrote 20 (e5)" in result.out and "by source: nq 5, synthetic 15" in result.out


def test_mix_counts_only_what_the_format_can_write(cli, workdir):
    records = [stored(i, "short-short") for i in range(10)] + [stored(20 + i, source="pub") for i in range(4)]
    records += [stored(40 + i) for i in range(4)]
    write_jsonl(workdir / "in.jsonl", records)
    result = cli("export", "in.jsonl", "-f", "medi", "--out", "m.jsonl", "--mix", "synthetic=1,pub=1", "-q")
    assert result.status == 0, result.err
    assert "wrote 8 (medi)" in result.out and "no negative 10" in result.out


@pytest.mark.parametrize("mix,message", [
    ("synthetic=1,wiki=1", "--mix: no examples from source 'wiki' (sources found: msmarco 10, nq 5, synthetic 31)"),
    ("synthetic=0,msmarco=0", "--mix: the weights sum to zero"),
    ("synthetic=-1,msmarco=2", "must be a finite number >= 0"),
    ("synthetic", "not NAME=WEIGHT"),
])
def test_bad_mix(cli, workdir, mix, message):
    folder = sources(workdir)
    result = cli("export", folder, "-f", "e5", "--out", "x.jsonl", "--mix", mix, "-q")
    assert result.status == 2 and message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (workdir / "x.jsonl").exists()


def test_parquet(cli, raw, workdir):
    pq = pytest.importorskip("pyarrow.parquet")
    result = cli("export", raw, "-f", "sentence-transformers", "--to-parquet", "-q")
    assert result.status == 0, result.err
    table = pq.read_table(workdir / "data" / "export" / "sentence-transformers.parquet")
    assert table.column_names == ["anchor", "positive", "negative"] and table.num_rows == 8
    pairs = pq.read_table(workdir / "data" / "export" / "sentence-transformers-pairs.parquet")
    assert pairs.column_names == ["anchor", "positive"] and pairs.num_rows == 4
    assert cli("export", raw, "-f", "flagembedding", "--out", "fe.parquet", "-q").status == 0
    table = pq.read_table(workdir / "fe.parquet")
    pa = pytest.importorskip("pyarrow")
    pos = table.schema.field("pos").type
    assert pa.types.is_list(pos) and pos.value_type == pa.string()
    assert table.to_pylist() == read_jsonl_export(cli, raw, workdir, "flagembedding")
    assert cli("export", raw, "-f", "e5", "--to-parquet", "--out", "x.jsonl").status == 2


def read_jsonl_export(cli, raw, workdir, fmt):
    assert cli("export", raw, "-f", fmt, "--out", "tmp.jsonl", "-q").status == 0
    return read_jsonl(workdir / "tmp.jsonl")


def test_lines_that_are_not_examples_are_counted_and_passed_over(cli, workdir):
    write_jsonl(workdir / "in.jsonl", [stored(0), {"kind": "short-long", "task": "t"}, stored(1)],
                raw_lines=["not json", '{"torn": '])
    with open(workdir / "in.jsonl", "ab") as f:
        f.write(b'{"kind": "sts", "query": "\xff", "positive": "p", "negative": null}\n')  # not UTF-8
    result = cli("export", "in.jsonl", "-f", "e5", "--out", "out.jsonl", "-q")
    assert result.status == 0, result.err
    assert "read 2 examples from 1 files, unreadable 3, not examples 1: wrote 2 (e5)" in result.out


def test_memory_does_not_grow_with_the_file(workdir):
    def peak(count, mix=None):
        path = workdir / f"in{count}.jsonl"
        if not path.exists():
            write_jsonl(path, [stored(i, positive="p" * 2000, source="pub" if i % 4 == 0 else None)
                               for i in range(count)])
        tracemalloc.start()
        result = export([path], workdir / "out.jsonl", "sentence-transformers", mix=mix, show_progress=False)
        used = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return used, path.stat().st_size, result

    small, _, _ = peak(500)
    large, size, result = peak(20000)
    assert size > 40_000_000 and result.written == 20000
    assert large < 1_000_000 and large < 3 * small + 200_000
    mixed, _, result = peak(20000, mix="synthetic=1,pub=1")
    assert result.written == 10000 and mixed < 1_000_000


BAD = [
    (["export", "missing.jsonl", "-f", "e5"], "no such file or folder: missing.jsonl"),
    (["export", "in.jsonl", "-f", "tsv"], "Invalid value for '--format' / '-f'"),
    (["export", "in.jsonl"], "Missing option '--format'"),
    (["export", "empty", "-f", "e5"], "no JSONL file in empty"),
    (["export", "junk.jsonl", "-f", "e5"], "no stored examples in junk.jsonl (2 lines, unreadable 1, not examples 1)"),
    (["export", "in.jsonl", "-f", "e5", "--no-instruction"], "--no-instruction is for --format sentence-transformers"),
    (["export", "in.jsonl", "-f", "medi", "--out", "x.parquet"], None),  # pyarrow present: fine; absent: one line
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_status_2(cli, workdir, args, message):
    write_jsonl(workdir / "in.jsonl", [stored(0)])
    write_jsonl(workdir / "junk.jsonl", [{"kind": 3}], raw_lines=["{"])
    (workdir / "empty").mkdir()
    result = cli(*args)
    if message is None:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            assert result.status == 2 and "needs pyarrow" in result.err
        else:
            assert result.status == 0, result.err
        return
    assert result.status == 2, (result.out, result.err)
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert message in result.err
    assert not list(workdir.glob("**/.*.tmp"))
