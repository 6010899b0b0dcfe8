import errno
import json
import os
import tracemalloc

from multiprocessing.connection import Connection

import msgspec
import pytest

from conftest import read_jsonl
from synthgen import dedup as dedup_module
from synthgen.dedup import CHUNK_BYTES, DedupResult, Workers, dedup, digest_chunk
from synthgen.store import decode_key, example_digest


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


def reference(paths, key="example"):
    """The rule, a line at a time: lines as bytes.splitlines cuts them, blank ones passed over, the
    first line of each key kept as it is (a newline added to a file's last line if it lacks one)."""
    result, seen, kept = DedupResult(files=len(paths)), set(), []
    for path in paths:
        for line in path.read_bytes().splitlines(keepends=True):
            if line.isspace():
                continue
            result.read += 1
            try:
                digest = example_digest(decode_key(line), key)
            except msgspec.ValidationError:
                result.not_examples += 1
            except (msgspec.DecodeError, UnicodeDecodeError):
                result.unreadable += 1
            else:
                if digest in seen:
                    result.removed += 1
                else:
                    seen.add(digest)
                    kept.append(line if line.endswith(b"\n") else line + b"\n")
    result.kept = len(kept)
    return result, b"".join(kept)


def awkward_files(folder):
    """Files with every kind of line dedup meets, line ends \n and \r\n, some repeated."""
    lines = [json.dumps(example(f"q{i % 40}", f"p{i % 80 // 40}", id=i)).encode() for i in range(120)]
    lines[5] = '{"kind": "sts", "query": "caf\\u00e9", "positive": "p"}'.encode()  # an escape ...
    lines[90] = '{"kind": "sts", "query": "caf\u00e9", "positive": "p"}'.encode()  # ... is the same key
    lines[7] = b""  # blank
    lines[8] = b" \t"  # blank too
    lines[11] = lines[12][:-9]  # torn
    lines[20] = b'{"kind": "sts", "query": "\xff\xfe", "positive": "p"}'  # not UTF-8
    lines[21] = b"[1, 2]"  # JSON, not an example
    lines[30] = b"\x00\x01 binary"
    folder.mkdir()
    files = []
    for n, (start, stop, end) in enumerate([(0, 50, b"\n"), (50, 51, b"\n"), (51, 100, b"\r\n"), (100, 120, b"\n")]):
        path = folder / f"{n}.jsonl"
        path.write_bytes(b"".join(line + end for line in lines[start:stop]))
        files.append(path)
    with open(files[0], "ab") as f:
        f.write(json.dumps(example("last line, no newline")).encode())
    empty = folder / "empty.jsonl"
    empty.write_bytes(b"")
    return [files[0], empty, *files[1:]]


@pytest.mark.parametrize("key", ["example", "query"])
def test_chunks_and_workers_never_change_what_is_written(workdir, key):
    """Chunk edges fall inside lines of every length, a chunk is a line or less, one or two workers:
    the same bytes and counts as the rule, line at a time."""
    paths = awkward_files(workdir / "in")
    expected, text = reference(paths, key)
    assert expected.unreadable == 3 and expected.not_examples == 1 and expected.removed > 30  # the input is awkward
    for chunk_bytes in (1, 7, 64, 333, 1000, CHUNK_BYTES):
        for processes in (1, 2):
            out = workdir / f"out-{chunk_bytes}-{processes}.jsonl"
            result = dedup(paths, out, key, show_progress=False, processes=processes, chunk_bytes=chunk_bytes)
            assert (result, out.read_bytes()) == (expected, text), (chunk_bytes, processes)


def object_lines_files(folder):
    """Files whose every line is `{...}` (so each chunk is parsed whole, not a line at a time), with
    lines that only look like one object each, escapes, unicode, and one key written several ways."""
    q = json.dumps(example("q", "p", id=0)).encode()
    same_key = [  # one key: fields in another order, an escape, spaces, a nested "query", a field twice
        b'{"positive": "p", "negative": "n", "query": "q", "kind": "short-long", "id": 1}',
        rb'{"kind":"short-long","query":"\u0071","positive":"p","negative":"n"}',
        b'{ "id": {"nested": {"query": "other"}}, "kind" : "short-long" , "query":"q","positive":"p","negative":"n" }',
        b'{"kind":"short-long","query":"q","positive":"p","negative":"n","query":"q"}',
    ]
    unicode = [  # unicode raw and escaped (one key), \/ and /, a null and an absent negative
        json.dumps(example("caf\u00e9 \u2028 \U0001f600 \"quoted\" back\\slash\ttab\nnewline"), ensure_ascii=False).encode(),
        json.dumps(example("caf\u00e9 \u2028 \U0001f600 \"quoted\" back\\slash\ttab\nnewline")).encode(),  # the same, escaped
        b'{"kind":"sts","query":"a\\/b","positive":"p"}',
        b'{"kind":"sts","query":"a/b","positive":"p","negative":null}',
    ]
    not_one_each = [
        q + b" " + q,  # two objects on one line
        q + q,
        b'{"kind":"sts","query":"q","positive":"p","x":{}',  # an object cut in two lines, ...
        b'{"y":1}}',  # ... each ending in } and starting with {
        b'{"kind":"sts",\r"query":"q3","positive":"p"}',  # a \r alone ends a line too: two lines
        b'{"kind": 1, "query": "q", "positive": "p"}',  # JSON, not an example
        b'{"kind":"sts","query":"\xff","positive":"p"}',  # not UTF-8 in a key field
        b'{"kind":"sts","query":"ok","positive":"p","other":"\xff"}',  # ... and in another field
        b'{"kind":"sts","query":"q2","positive":"p"} ',  # a space after the object
    ]
    # Valid JSON only read whole: a value over two lines (the second not starting with {) beside two
    # values on one line, as many values as lines.
    spanning = [q + b" " + q, b'{"kind":"sts","query":"q4","positive":"p","x":{}', b',"y":1}']
    folder.mkdir()
    groups = [same_key + [q], unicode, not_one_each + same_key, [q] * 3 + unicode, spanning]
    paths = []
    for n, lines in enumerate(groups):
        (folder / f"sub{n % 2}").mkdir(exist_ok=True)
        paths.append(folder / f"sub{n % 2}" / f"{n}.jsonl")
        paths[-1].write_bytes(b"".join(line + b"\n" for line in lines))
    return paths


@pytest.mark.parametrize("key,lines_a_parse", [("example", 1000), ("query", 1000), ("example", 2)])
def test_whole_chunk_parse_gives_the_line_at_a_time_rule(workdir, monkeypatch, key, lines_a_parse):
    monkeypatch.setattr(dedup_module, "LINES_A_PARSE", lines_a_parse)  # 2: a chunk is parsed in pieces
    paths = object_lines_files(workdir / "in")
    expected, text = reference(paths, key)
    assert expected.unreadable == 8 and expected.not_examples == 3 and expected.removed > 15
    with monkeypatch.context() as patch:
        patch.setattr(dedup_module, "_decode_key", None)  # the first two files are parsed whole
        assert [len(digest_chunk(path.read_bytes(), key).keys) for path in paths[:2]] == [1, 2]
    folders = [workdir / "in" / "sub0", workdir / "in" / "sub1"]
    expected_folders = reference(sorted(folders[0].glob("*.jsonl")) + sorted(folders[1].glob("*.jsonl")), key)
    for chunk_bytes in (1, 50, 200, 700, CHUNK_BYTES):
        for processes in (1, 2):
            out = workdir / f"out-{chunk_bytes}-{processes}.jsonl"
            result = dedup(paths, out, key, show_progress=False, processes=processes, chunk_bytes=chunk_bytes)
            assert (result, out.read_bytes()) == (expected, text), (chunk_bytes, processes)
            result = dedup(folders, out, key, show_progress=False, processes=processes, chunk_bytes=chunk_bytes)
            assert (result, out.read_bytes()) == expected_folders, (chunk_bytes, processes)


def test_line_ends_are_kept_as_they_are(workdir):
    path = workdir / "in.jsonl"
    one, two = json.dumps(example("q1")).encode(), json.dumps(example("q2")).encode()
    # A \r alone ends a line too, as bytes.splitlines has it.
    path.write_bytes(one + b"\r\n" + one + b"\n" + two + b"\r" + one + b"\r\n" + two)
    result = dedup([path], workdir / "out.jsonl", show_progress=False)
    assert (result.read, result.kept, result.removed) == (5, 2, 3)
    assert (workdir / "out.jsonl").read_bytes() == one + b"\r\n" + two + b"\r\n"


def test_many_files_keep_the_first_of_each_key_in_the_order_named(workdir):
    paths = []
    for n in range(30):
        paths.append(workdir / f"{n:02}.jsonl")
        write(paths[-1], [example(f"q{(3 * n + i) % 45}", id=f"{n}.{i}") for i in range(3)])
    result = dedup(paths, workdir / "out.jsonl", show_progress=False, processes=2, chunk_bytes=100)
    assert (result.files, result.read, result.kept) == (30, 90, 45)
    assert (workdir / "out.jsonl").read_bytes() == reference(paths)[1]


def test_without_the_kernel_copy_the_output_is_the_same(workdir, monkeypatch):
    """Where copy_file_range is missing or cannot copy between the two files, ranges are read and written."""
    paths = awkward_files(workdir / "in")
    write(workdir / "long.jsonl", [example(f"q{i // 100 if i % 100 == 99 else i}") for i in range(1000)])
    paths.append(workdir / "long.jsonl")  # runs of a hundred new lines, long enough for the kernel to copy
    expected = reference(paths)
    assert dedup(paths, workdir / "copied.jsonl", show_progress=False) == expected[0]
    calls = []

    def cannot(*args):
        calls.append(args)
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", cannot)
    assert dedup(paths, workdir / "refused.jsonl", show_progress=False) == expected[0]
    assert len(calls) == 1  # once refused, not asked again
    monkeypatch.delattr(os, "copy_file_range")
    assert dedup(paths, workdir / "absent.jsonl", show_progress=False) == expected[0]
    for name in ("copied", "refused", "absent"):
        assert (workdir / f"{name}.jsonl").read_bytes() == expected[1], name


def test_a_failing_copy_is_an_error_not_a_fallback(workdir, monkeypatch):
    write(workdir / "in.jsonl", [example(f"q{i}") for i in range(100)])

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "copy_file_range", full)
    with pytest.raises(OSError, match="No space"):
        dedup([workdir / "in.jsonl"], workdir / "out.jsonl", show_progress=False)
    assert not (workdir / "out.jsonl").exists()


@pytest.mark.parametrize("key", ["example", "query"])
def test_digests_are_the_stores(key):
    """One key, one digest, whichever module computes it."""
    records = [example("q", "p", None), example("q", "p", "n", kind="sts"), example("q\u00e9", "p2")]
    chunk = digest_chunk(b"".join(json.dumps(r).encode() + b"\n" for r in records), key)
    assert chunk.keys == [example_digest(decode_key(json.dumps(r).encode()), key) for r in records]


def test_a_worker_error_reaches_the_caller(workdir):
    workers = Workers(2)
    try:
        with pytest.raises(FileNotFoundError):
            list(workers.digested([(workdir / "gone.jsonl", 0, 10, "example")] * 5))
    finally:
        workers.close()
    assert not any(proc.is_alive() for proc in workers.procs)


def test_few_chunks_are_digested_ahead_of_the_writer(workdir, monkeypatch):
    """Memory stays a few chunks a worker, however far the writer falls behind."""
    write(workdir / "in.jsonl", [example(f"q{i}") for i in range(200)])
    jobs = [(workdir / "in.jsonl", s, e, "example") for s, e in dedup_module.chunks(workdir / "in.jsonl", 100)]
    workers = Workers(2)
    sent = []
    send = Connection.send
    monkeypatch.setattr(Connection, "send", lambda conn, job: (sent.append(job), send(conn, job))[1])
    try:
        digested = workers.digested(jobs)
        next(digested)  # one chunk read: the jobs handed out ahead, and one in its place
        assert len(jobs) > 50 and len(sent) == 2 * dedup_module.AHEAD_PER_PROCESS + 1
        assert len(list(digested)) == len(jobs) - 1
    finally:
        workers.close()
