import json
import tracemalloc

from conftest import read_jsonl
from synthgen.dedup import CHUNK_BYTES, dedup


def example(query, positive="p", negative="n", kind="short-long", **extra):
    return {"kind": kind, "query": query, "positive": positive, "negative": negative, **extra}


def write(path, records, raw_lines=()):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r) for r in records] + list(raw_lines)
    path.write_text("\n".join(lines) + "\n")


def test_first_occurrence_kept_across_files_and_folders(cli, workdir):
    write(workdir / "a" / "1.jsonl", [example("q1", id=1), example("q2", id=2), example("q1", id=3)])
    write(workdir / "a" / "sub" / "2.jsonl", [example("q2", id=4), example("q3", id=5)])
    write(workdir / "b.jsonl", [example("q3", id=6), example("q4", id=7)])
    result = cli("dedup", "a", "b.jsonl", "--out", "out.jsonl", "--quiet")
    assert result.status == 0, result.err
    assert [r["id"] for r in read_jsonl(workdir / "out.jsonl")] == [1, 2, 5, 7]
    assert "read 7 lines from 3 files: kept 4, removed 3, unreadable 0" in result.out


def test_key_example_and_key_query(cli, workdir):
    records = [
        example("q", "p1"),
        example("q", "p2"),  # same query, other positive
        example("q", "p1", None),  # no negative differs from a negative
        example("q", "p1", kind="sts"),  # other kind
        example("q", "p1"),  # exact repeat
    ]
    write(workdir / "in.jsonl", records)
    assert "kept 4, removed 1" in cli("dedup", "in.jsonl", "--out", "e.jsonl", "-q").out
    assert "kept 2, removed 3" in cli("dedup", "in.jsonl", "--out", "q.jsonl", "--key", "query", "-q").out


def test_fields_cannot_run_into_each_other(cli, workdir):
    write(workdir / "in.jsonl", [example("a|b", "c"), example("a", "b|c")])
    assert "kept 2, removed 0" in cli("dedup", "in.jsonl", "-q").out


def test_bad_lines_are_counted_and_skipped(cli, workdir):
    raw = ["{not json", "[1, 2]", '{"kind": "sts"}', "\xff garbage", ""]
    write(workdir / "in.jsonl", [example("q1")], raw_lines=raw)
    with open(workdir / "in.jsonl", "a") as f:
        f.write(json.dumps(example("q2")))  # a last line without its newline
    result = cli("dedup", "in.jsonl", "--out", "o.jsonl", "-q")
    assert result.status == 0, result.err
    assert "kept 2, removed 0, unreadable 2, 2 not examples" in result.out
    assert (workdir / "o.jsonl").read_text().count("\n") == 2


def test_rejects_files_in_folders_are_passed_over_and_the_output_is_not_read(cli, workdir):
    write(workdir / "raw" / "examples.jsonl", [example("q1")])
    write(workdir / "raw" / "rejects.jsonl", [{"index": 3, "reason": "schema", "text": "x"}])
    assert "kept 1" in cli("dedup", "raw", "--out", "raw/deduped.jsonl", "-q").out
    assert "read 1 lines from 1 files: kept 1" in cli("dedup", "raw", "--out", "raw/deduped.jsonl", "-q").out


def test_memory_grows_with_unique_keys_not_with_text(workdir):
    """A key costs a fixed-size digest; text is held a chunk at a time, never a file at a time."""

    def peak(size):
        path = workdir / f"in{size}.jsonl"
        write(path, [example(f"q{i}", "p" * size, "n" * size) for i in range(3000)])
        tracemalloc.start()
        dedup([path], workdir / f"out{size}.jsonl", show_progress=False, processes=1)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, path.stat().st_size

    (short, _), (long, long_file) = peak(10), peak(20000)
    assert long_file > 100_000_000
    assert long < 5 * CHUNK_BYTES  # a few chunks of lines in flight, not the 120 MB file
    assert short < 2_000_000  # 3,000 keys


def test_parallel_and_serial_runs_agree(workdir):
    records = [example(f"q{i % 700}", f"p{i % 3}") for i in range(5000)]
    write(workdir / "in.jsonl", records, raw_lines=["garbage", "", '{"kind": 1}'])
    # Small chunks: many of them, handed to two worker processes, must still keep input order.
    serial = dedup([workdir / "in.jsonl"], workdir / "a.jsonl", show_progress=False, processes=1)
    parallel = dedup([workdir / "in.jsonl"], workdir / "b.jsonl", show_progress=False, processes=2, chunk_bytes=999)
    assert serial == parallel and serial.kept == 2100
    assert (workdir / "a.jsonl").read_bytes() == (workdir / "b.jsonl").read_bytes()


def test_a_line_that_is_not_utf8_is_counted_as_unreadable(cli, workdir):
    write(workdir / "in.jsonl", [example("q1")])
    with open(workdir / "in.jsonl", "ab") as f:
        f.write(b'{"kind": "sts", "query": "\xff\xfe", "positive": "p"}\n')
    result = cli("dedup", "in.jsonl", "--out", "o.jsonl", "-q")
    assert result.status == 0, result.err
    assert "kept 1, removed 0, unreadable 1" in result.out


def test_input_with_no_example_is_bad_input_and_writes_nothing(cli, workdir):
    (workdir / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (workdir / "latin1.jsonl").write_bytes('{"kind": "sts", "query": "caf\xe9"}\n'.encode("latin-1"))
    (workdir / "empty.jsonl").write_bytes(b"")
    write(workdir / "tasks.jsonl", [{"kind": "short-long", "task": "t", "model": "m"}])
    for name in ("binary.jsonl", "latin1.jsonl", "empty.jsonl", "tasks.jsonl"):
        result = cli("dedup", name, "--out", "out/o.jsonl", "-q")
        assert result.status == 2 and result.err.count("\n") == 1, name
        assert f"no stored example in {name}" in result.err
        assert not (workdir / "out").exists()


def test_dedup_in_place_and_messages_name_the_out_given(cli, workdir):
    write(workdir / "in.jsonl", [example("q1"), example("q1"), example("q2")])
    result = cli("dedup", "in.jsonl", "--out", "in.jsonl", "-q")
    assert result.status == 0 and "kept 2, removed 1" in result.out
    assert [r["query"] for r in read_jsonl(workdir / "in.jsonl")] == ["q1", "q2"]
    (workdir / "taken").mkdir()
    result = cli("dedup", "in.jsonl", "--out", "taken", "-q")
    assert result.status == 2 and "cannot write taken" in result.err and ".tmp" not in result.err
