"""The store: one definition of each record, strict JSON, the user's umask, and one writer per folder."""

import json
import subprocess
import sys
import textwrap

import msgspec
import pytest

from synthgen.errors import BadInput
from synthgen.store import (Example, Manifest, Reject, RunFolder, TaskFile, Usage, decode_example, encode,
                            folder_lock, hold_output)


def example(i: int = 0, **changes) -> Example:
    fields = dict(id=f"run-{i}", index=i, kind="short-long", task="Find it.", language="English", query=f"q{i}",
                  positive=f"p{i}", negative=None, placeholders={"task": "Find it."}, raw={"user_query": f"q{i}"},
                  model="m", seed=0)
    fields.update(changes)
    return Example(**fields)


def test_an_example_round_trips_and_keeps_a_null_negative():
    stored = example(usage=Usage(http_requests=2, retries=1, prompt_tokens=5, completion_tokens=7))
    line = encode(stored)
    data = json.loads(line)
    assert data["negative"] is None and "source" not in data  # null stays, unset optional fields do not
    assert list(data)[:4] == ["id", "index", "kind", "task"]
    assert decode_example(line) == stored


def test_a_line_without_the_contract_fields_is_not_an_example():
    with pytest.raises(msgspec.ValidationError):
        decode_example(b'{"kind": "sts", "query": "a", "positive": "b"}')


def test_the_manifest_is_strict_json_even_for_nan(tmp_path):
    run = RunFolder(tmp_path)
    run.write_manifest(Manifest(config={"weight": float("nan"), "cap": float("inf")}))
    text = run.manifest.read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the manifest"))
    assert run.read_manifest().config == {"weight": None, "cap": None}


def test_run_state_is_rebuilt_from_the_records(tmp_path):
    run = RunFolder(tmp_path)
    with run.example_writer() as w:
        w.write(example(0, usage=Usage(1, 0, 10, 20)))
        w.write(example(2, usage=Usage(3, 2, 10, 20)))
    with run.reject_writer() as w:
        w.write(Reject(index=1, kind="sts", reason="schema", detail="x", model="m", seed=0, usage=Usage(1, 0, 5, 5)))
    with open(run.examples, "ab") as f:
        f.write(b'{"id": "torn')  # a kill mid-write
    state = run.read_state()
    assert state.valid == {0, 2} and state.rejected == {1}
    assert state.per_kind == {"short-long": 2} and state.reasons == {"schema": 1}
    assert state.usage == Usage(http_requests=5, retries=2, prompt_tokens=25, completion_tokens=45)
    assert len(state.keys) == 2
    assert run.examples.read_bytes().endswith(b"\n")


def test_files_follow_the_umask(tmp_path):
    script = textwrap.dedent(f"""
        import os
        os.umask(0o022)
        from pathlib import Path
        from synthgen.store import RunFolder, Manifest
        run = RunFolder(Path({str(tmp_path)!r}))
        run.write_manifest(Manifest())
        run.example_writer().close()
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    for name in ("manifest.json", "examples.jsonl"):
        assert oct((tmp_path / name).stat().st_mode & 0o777) == "0o644", name


HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from synthgen.store import folder_lock
    lock = folder_lock(Path(sys.argv[1]))
    lock.acquire("generate")
    print("held", flush=True)
    time.sleep(60)
""")


def hold_in_another_process(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_with_the_first_ones_name_and_a_kill_leaves_no_stale_lock(tmp_path):
    proc = hold_in_another_process(tmp_path)
    try:
        with pytest.raises(BadInput) as refused:
            folder_lock(tmp_path).acquire("dedup")
        assert f"in use by synthgen generate (pid {proc.pid} on " in str(refused.value)
        assert "started 20" in str(refused.value)
    finally:
        proc.kill()
        proc.wait()
    lock = folder_lock(tmp_path)  # the OS dropped the lock with the process
    lock.acquire("generate")
    lock.release()


def test_a_folder_made_for_nothing_is_removed_again(tmp_path):
    target = tmp_path / "a" / "out.jsonl"
    with hold_output(target, "dedup"):
        assert target.parent.is_dir()
    assert not target.parent.exists()
    with hold_output(target, "dedup"):
        target.write_text("x")
    assert target.read_text() == "x"


def test_task_file_lines_that_are_not_tasks_are_counted(tmp_path):
    path = tmp_path / "short-long.jsonl"
    path.write_text('{"kind": "short-long", "task": "A", "model": "m"}\nnot json\n'
                    '{"kind": "long-long", "task": "B", "model": "m"}\n{"kind": "short-long", "task": "A", "model": "m"}\n')
    file = TaskFile(path, "short-long")
    assert file.read() == ["A"] and file.skipped == 2


def test_tasks_that_differ_only_in_case_punctuation_or_spacing_are_one_task(tmp_path):
    from synthgen.store import Task, TaskFile, task_key

    assert task_key("Find  recipes, for LEFTOVERS!") == task_key("find recipes for leftovers") == "find recipes for leftovers"
    assert task_key("Find recipes for leftovers") != task_key("Find recipes for left-over rice")
    file = TaskFile(tmp_path / "short-long.jsonl", "short-long")
    with file.writer() as writer:
        for text in ("Find recipes for leftovers.", "find recipes for leftovers", "Locate patient guides."):
            writer.write(Task(kind="short-long", task=text, model="m"))
    assert file.read() == ["Find recipes for leftovers.", "Locate patient guides."]


def test_a_spool_gives_its_examples_back_in_order_and_one_by_number(tmp_path):
    from stored import stored

    from synthgen.store import Spool

    examples = [decode_example(json.dumps(stored(i, positive="x" * (i * 37))).encode()) for i in range(50)]
    spool = Spool(tmp_path)
    assert [spool.add(example) for example in examples] == list(range(50)) and len(spool) == 50
    assert spool.get(0) == examples[0] and spool.get(49) == examples[49]
    assert list(spool) == examples
    assert [spool.get(n) for n in (31, 2, 31)] == [examples[31], examples[2], examples[31]]  # while nothing moves
    spool.close()
    assert not spool.path.exists()
