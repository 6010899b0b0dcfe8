import errno
import json
import os
import random
import tracemalloc

from multiprocessing.connection import Connection

import msgspec
import numpy as np
import pytest

from conftest import read_jsonl
from synthgen import dedup as dedup_module
from synthgen.dedup import CHUNK_BYTES, DedupResult, Job, Workers, canonical_key, dedup, digest_chunk
from synthgen.native import dedup_native
from synthgen.seen_digests import SetDigests, TableDigests
from synthgen.store import decode_key, example_digest

# Both ways of digesting and keeping keys: the compiled module (built by the install; a missing one
# fails these tests, never skips them) and pure Python.
BOTH = pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])


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


@BOTH
def test_parallel_and_serial_runs_agree(workdir, compiled):
    records = [example(f"q{i % 700}", f"p{i % 3}") for i in range(5000)]
    write(workdir / "in.jsonl", records, raw_lines=["garbage", "", '{"kind": 1}'])
    # Small chunks: many of them, handed to two worker processes, must still keep input order.
    serial = dedup([workdir / "in.jsonl"], workdir / "a.jsonl", show_progress=False, processes=1, compiled=compiled)
    parallel = dedup([workdir / "in.jsonl"], workdir / "b.jsonl", show_progress=False, processes=2, chunk_bytes=999,
                     compiled=compiled)
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
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # too deep for msgspec
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


@BOTH
@pytest.mark.parametrize("key", ["example", "query"])
def test_chunks_and_workers_never_change_what_is_written(workdir, key, compiled):
    """Chunk edges fall inside lines of every length, a chunk is a line or less, one or two workers:
    the same bytes and counts as the rule, line at a time."""
    paths = awkward_files(workdir / "in")
    expected, text = reference(paths, key)
    assert expected.unreadable == 3 and expected.not_examples == 1 and expected.removed > 30  # the input is awkward
    for chunk_bytes in (1, 7, 64, 333, 1000, CHUNK_BYTES):
        for processes in (1, 2):
            out = workdir / f"out-{chunk_bytes}-{processes}.jsonl"
            result = dedup(paths, out, key, show_progress=False, processes=processes, chunk_bytes=chunk_bytes,
                           compiled=compiled)
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


@BOTH
@pytest.mark.parametrize("key,lines_a_parse", [("example", 1000), ("query", 1000), ("example", 2)])
def test_whole_chunk_parse_gives_the_line_at_a_time_rule(workdir, monkeypatch, key, lines_a_parse, compiled):
    monkeypatch.setattr(dedup_module, "LINES_A_PARSE", lines_a_parse)  # 2: a chunk is parsed in pieces
    paths = object_lines_files(workdir / "in")
    expected, text = reference(paths, key)
    assert expected.unreadable == 8 and expected.not_examples == 3 and expected.removed > 15
    with monkeypatch.context() as patch:
        # Python: the first two files are parsed whole. Compiled: the second one's escapes, unicode, \/ and
        # null are read in C, none left to msgspec.
        patch.setattr(dedup_module, "_decode_key", None)
        chunks = [digest_chunk(path.read_bytes(), key, compiled) for path in (paths[1:2] if compiled else paths[:2])]
        assert [(len(c.digests) // 16, distinct(c.digests)) for c in chunks] == ([(4, 2)] if compiled else [(5, 1), (4, 2)])
    folders = [workdir / "in" / "sub0", workdir / "in" / "sub1"]
    expected_folders = reference(sorted(folders[0].glob("*.jsonl")) + sorted(folders[1].glob("*.jsonl")), key)
    for chunk_bytes in (1, 50, 200, 700, CHUNK_BYTES):
        for processes in (1, 2):
            out = workdir / f"out-{chunk_bytes}-{processes}.jsonl"
            result = dedup(paths, out, key, show_progress=False, processes=processes, chunk_bytes=chunk_bytes,
                           compiled=compiled)
            assert (result, out.read_bytes()) == (expected, text), (chunk_bytes, processes)
            result = dedup(folders, out, key, show_progress=False, processes=processes, chunk_bytes=chunk_bytes,
                           compiled=compiled)
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


def distinct(digests):
    return len(set(digests[i:i + 16] for i in range(0, len(digests), 16)))


@pytest.mark.parametrize("key", ["example", "query"])
def test_python_digests_are_the_stores(key):
    """One key, one digest, whichever module computes it in Python."""
    records = [example("q", "p", None), example("q", "p", "n", kind="sts"), example("q\u00e9", "p2")]
    chunk = digest_chunk(b"".join(json.dumps(r).encode() + b"\n" for r in records), key, compiled=False)
    assert chunk.digests == b"".join(example_digest(decode_key(json.dumps(r).encode()), key) for r in records)


def test_the_compiled_digest_is_murmur3_x64_128():
    """Known answers of the reference implementation (Appleby's MurmurHash3_x64_128, seed 0), as the
    mmh3 package gives them: every length of tail, and blocks."""
    known = {
        b"": "00000000000000000000000000000000",
        b"a": "897859f6655555855a890e51483ab5e6",
        b"hello": "029bbd41b3a7d8cb191dae486a901e5b",
        b"0123456789abcdef": "a7d14acf946de04bda08a7635c5bc387",
        b"0123456789abcdefX": "f7d670b5acd2ebcd274b10829711728f",
        b"The quick brown fox jumps over the lazy dog": "6c1b07bc7bbc4be347939ac4a93c437a",
        bytes(range(256)) * 3: "b626b903306c92cf3846f3e2e5d953fa",
    }
    assert {data: dedup_native.digest(data).hex() for data in known} == known


@pytest.mark.parametrize("key", ["example", "query"])
def test_the_compiled_scan_digests_canonical_keys(key, monkeypatch):
    """A line the scan reads itself gets the digest of its field values' canonical bytes, as a line
    left to msgspec does: escapes, surrogate pairs, raw unicode, a null or absent negative."""
    values = [("sts", "q", "p", None), ("sts", 'a "quoted" \\ back\tslash\n\u2028 caf\u00e9 \U0001f600', "p", "n"),
              ("short-long", "", "\x00\x7f", "")]
    lines = []
    for kind, query, positive, negative in values:
        record = example(query, positive, negative, kind=kind, id=[1, {"x": None}])
        lines += [json.dumps(record).encode(), json.dumps(record, ensure_ascii=False).encode()]
    monkeypatch.setattr(dedup_module, "_decode_key", None)  # none left to msgspec
    chunk = digest_chunk(b"\n".join(lines), key, compiled=True)
    assert chunk.lines is None  # a digest a line
    names = 4 if key == "example" else 2
    expected = [dedup_native.digest(canonical_key(v[:names])) for v in values for _ in (1, 2)]
    assert chunk.digests == b"".join(expected)


def test_canonical_keys_never_run_into_each_other():
    keys = [("a", "bc"), ("ab", "c"), ("a", None), ("a", ""), ("a\x00", ""), ("a", "\x00")]
    assert len({canonical_key(k) for k in keys}) == len(keys)


def test_the_digest_tables_agree():
    """The compiled table and the Python set say the same repeats, within a batch and across batches,
    through the table's growth (from 16 rows), the all-zero digest too."""
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 2**64, size=(3000, 2), dtype=np.uint64)
    pool[7] = 0
    table, python = TableDigests(rows=16), SetDigests()
    for size in (1, 5, 17, 300, 1000, 2000, 4000):
        digests = pool[rng.integers(0, len(pool), size)].tobytes()
        assert table.repeats(digests).tolist() == python.repeats(digests).tolist()
    assert len(table) == len(python) > 2000 and len(table.table) >= 4096


def mutated_lines(count):
    """Lines near a stored example, many of them broken in a small way: a byte dropped, doubled or
    changed, an escape, spacing, fields moved, added or written twice; few distinct keys, so that
    repeats are many."""
    rng = random.Random(0)
    texts = ["q", "caf\u00e9", "tab\there", '"quoted"', "\u2028", "\U0001f600", "back\\slash", ""]
    lines = []
    for _ in range(count):
        record = {"kind": rng.choice(["sts", "short-long"]), "query": rng.choice(texts), "positive": rng.choice(texts)}
        if rng.random() < 0.7:
            record["negative"] = rng.choice(texts + [None])
        if rng.random() < 0.5:
            record["extra"] = rng.choice([1, -2.5e3, True, None, [1, [2, {}]], {"query": "x"}, "\u00e9"])
        items = list(record.items())
        rng.shuffle(items)
        line = json.dumps(dict(items), ensure_ascii=rng.random() < 0.5, separators=rng.choice([(",", ":"), (", ", ": ")]))
        data = bytearray(line.encode())
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            at = rng.randrange(len(data))
            action = rng.random()
            if action < 0.3:
                del data[at]
            elif action < 0.6:
                data.insert(at, data[at])
            else:
                data[at] = rng.choice(b'{}[]",:\\ \t0e-.nu\x00\x80\xc3\xa9\xff')
        if rng.random() < 0.05:
            data = data.replace(b'"query"', b'"query": "dup", "query"', 1)
        lines.append(bytes(data))
    return lines


def edge_lines():
    """A stored example with one odd thing in it each: the edges of JSON's grammar, of UTF-8 and of
    nesting, where a reader that is not msgspec could read otherwise."""
    head = b'{"kind":"sts","query":"q","positive":"p"'
    values = [  # as another field's value
        b"1.", b".5", b"-", b"01", b"1e", b"1e+", b"--1", b"+1", b"1.5e", b"-0", b"0.5", b"1E5", b"1e-5", b"-12.5E+3",
        b"123456789012345678901234567890", b"1e99999", b"tru", b"nul", b"True", b"NULL", b"true", b"false", b"null",
        b"[" * 70 + b"]" * 70, b"[" * 3000 + b"]" * 3000, b"[1,]", b"[,1]", b"{,}", b'{"a"}', b'{"a":}', b"[1 2]",
        b'"\\x"', b'"\\u12"', b'"\\ud800"', b'"\\udc00"', b'"\\ud800\\u0041"', b'"\\ud83d\\ude00"', b'"\x01"',
        b'"\xff"', b'"\xc0\x80"', b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80"', b'"\xe2\x82"', b'"\xe2\x82\xac"', b'"\x7f"',
    ]
    lines = [head + b',"x":' + value + b"}" for value in values]
    # msgspec skips another field's bytes unchecked, but checks a key field's: the same bytes in the query
    lines += [b'{"kind":"sts","positive":"p","query":' + value + b"}" for value in values if value.startswith(b'"')]
    lines += [
        b'{"kind":"sts","qu\\u0065ry":"q","positive":"p"}', b'{"kind":"sts","query":"q","positive":"p","negative":5}',
        b'{"kind":"sts","query":"q","positive":"p","negative":true}', b'{"kind":null,"query":"q","positive":"p"}',
        b'{"kind":"sts","query":"q","positive":"p","negative":{}}', b'{"kind":"sts","query":"q"}', b"{}", b"[]",
        b'"x"', b"5", b"null", b"  " + head + b"}\t ", b"\x0c" + head + b"}", b"\x0b" + head + b"}",
        b"\xef\xbb\xbf" + head + b"}", head + b"}}", head + b"} x", head + b",}", head + b",", head, b"{" + head[1:],
        b'{"kind":"sts","query":"q\\/","positive":"p"}', b'{"kind":"sts","query":"q/","positive":"p"}',
        b'{"kind":"sts","query":"\\u0000","positive":"p"}', b'{"kind":"sts","query":"\x00","positive":"p"}',
    ]
    return lines


@pytest.mark.parametrize("key", ["example", "query"])
def test_compiled_and_python_keep_the_same_lines_of_broken_json(workdir, key):
    path = workdir / "in.jsonl"
    path.write_bytes(b"\n".join(edge_lines() + mutated_lines(6000)) + b"\n")
    expected, text = reference([path], key)
    assert expected.unreadable > 1000 and expected.not_examples > 300 and expected.removed > 2000
    for compiled in (True, False):
        result = dedup([path], workdir / f"out-{compiled}.jsonl", key, show_progress=False, compiled=compiled)
        assert (result, (workdir / f"out-{compiled}.jsonl").read_bytes()) == (expected, text), compiled


def test_a_worker_error_reaches_the_caller(workdir):
    workers = Workers(2)
    try:
        with pytest.raises(FileNotFoundError):
            list(workers.digested([Job(workdir / "gone.jsonl", 0, 10, "example", True)] * 5))
    finally:
        workers.close()
    assert not any(proc.is_alive() for proc in workers.procs)


def test_few_chunks_are_digested_ahead_of_the_writer(workdir, monkeypatch):
    """Memory stays a few chunks a worker, however far the writer falls behind."""
    write(workdir / "in.jsonl", [example(f"q{i}") for i in range(200)])
    jobs = [Job(workdir / "in.jsonl", s, e, "example", True) for s, e in dedup_module.chunks(workdir / "in.jsonl", 100)]
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
