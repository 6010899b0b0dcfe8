"""Bad input ends with one line on stderr and exit status 2, never a traceback."""

import os

import pytest

from conftest import run_subprocess
from stored import stored, write_jsonl

CASES = [
    (["generate", "--n", "-3"], "--n"),
    (["generate", "--n", "0"], "--n"),
    (["generate", "--n", "5", "--kinds", "short-long=1,nope=2"], "unknown kind 'nope'"),
    (["generate", "--n", "5", "--kinds", "short-long"], "not NAME=WEIGHT"),
    (["generate", "--n", "5", "--kinds", "sts=0,bitext=0"], "sum to zero"),
    (["generate", "--n", "5", "--config", "missing.toml"], "config file not found"),
    (["generate", "--n", "5", "--config", "bad.toml"], "cannot read config"),
    (["generate", "--n", "5", "--config", "wrong.toml"], "llm.temperature"),
    (["generate", "--n", "5", "--base-url", "not a url"], "is not an http(s) URL"),
    (["brainstorm", "--subtype", "medium-long"], "--subtype"),
    (["brainstorm", "--out", "t.jsonl"], "--out needs --subtype"),
    (["dedup", "no-such-folder"], "no such file or folder"),
    (["dedup", "empty"], "no JSONL file"),
    (["dedup", "empty", "--key", "colour"], "--key"),
    (["generate", "--n", "5", "--tasks", "unreadable", "--base-url", "http://127.0.0.1:9/v1"], "cannot read tasks"),
    (["frobnicate"], "No such command"),
]


@pytest.fixture
def files(workdir):
    (workdir / "bad.toml").write_text("[llm\nmodel = ")
    (workdir / "wrong.toml").write_text("[llm]\ntemperature = 'hot'\n")
    (workdir / "empty").mkdir()
    (workdir / "unreadable").mkdir()
    (workdir / "unreadable" / "short-long.jsonl").mkdir()  # a folder where a file should be
    return workdir


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line_and_status_2(files, args, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SYNTHGEN_"))}
    result = run_subprocess(*args, cwd=files, env=env)
    assert result.status == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert message in lines[0]
    assert "Traceback" not in result.err


def test_nothing_written_is_damaged_by_bad_input(cli, workdir):
    out = workdir / "data" / "raw"
    out.mkdir(parents=True)
    (out / "examples.jsonl").write_text('{"index": 0}\n')
    assert cli("generate", "--n", "-1").status == 2
    assert cli("generate", "--n", "5", "--kinds", "x=1").status == 2
    assert (out / "examples.jsonl").read_text() == '{"index": 0}\n'


@pytest.mark.parametrize("command", [
    ["stats", "deep"],
    ["dedup", "deep", "--out", "deduped.jsonl", "-q"],
    ["export", "deep", "--format", "sentence-transformers", "--out", "exported.jsonl"],
    ["report", "deep", "--out", "report.html"],
])
def test_a_line_nested_past_the_recursion_limit_is_an_unreadable_line(cli, workdir, command):
    """msgspec raises RecursionError, not DecodeError, for it: it was a traceback."""
    deep = '{"x": ' + "[" * 3000 + "]" * 3000 + "}"
    write_jsonl(workdir / "deep" / "examples.jsonl", [stored(0), stored(1, query="another")], raw_lines=[deep])
    result = cli(*command)
    assert result.status == 0 and "Traceback" not in result.err, result.err
    if command[0] in ("stats", "dedup"):
        assert "unreadable 1" in result.out
