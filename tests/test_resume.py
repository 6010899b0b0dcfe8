"""Crash safety: kill -9, Ctrl+C, torn lines, a changed config; nothing lost, nothing paid twice."""

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from conftest import read_jsonl
from fake_llm import FakeLLM, chat_body
from synthgen.kinds import KINDS


def start(args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SYNTHGEN_"))}
    return subprocess.Popen([sys.executable, "-m", "synthgen", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def every_tenth_is_bad(server):
    """A deterministic share of bad answers, so the run has rejections to replace."""

    numbers = itertools.count()  # each answer its own number: concurrent answers never repeat one another

    def action(body):
        number = next(numbers)
        text = server.answer(body, number)
        return 200, {}, chat_body(text if number % 10 else text[:-3])

    return action


@pytest.fixture
def slow_llm():
    server = FakeLLM(latency=0.02).start()
    server.default = every_tenth_is_bad(server)
    yield server
    server.stop()


def check_output(workdir, n, out="data/raw"):
    examples = read_jsonl(workdir / out / "examples.jsonl")  # every line parses: no torn line left
    rejects = read_jsonl(workdir / out / "rejects.jsonl")
    indices = [e["index"] for e in examples]
    assert len(examples) == n and len(set(indices)) == n and len({e["id"] for e in examples}) == n
    for e in examples:
        KINDS[e["kind"]].answer.model_validate(e["raw"])
    assert set(indices).isdisjoint(r["index"] for r in rejects)
    return examples, rejects


def test_sigkill_at_random_moments_then_resume(cli, slow_llm, workdir):
    n, concurrency = 2500, 32
    # The tasks the run needs (2500 * 2/4 / 3), so that every request below is generation's.
    assert cli("brainstorm", "--subtype", "short-long", "--n-tasks", 417, "--base-url", slow_llm.base_url,
               "-q").status == 0
    slow_llm.requests.clear()
    args = ["generate", "--n", n, "--kinds", "short-long=2,sts=1,bitext=1", "--concurrency", concurrency,
            "--base-url", slow_llm.base_url, "--model", "m", "--quiet"]
    rng = random.Random(4)
    kills = 0
    for _ in range(4):
        before = len(slow_llm.requests)
        proc = start(args, workdir)
        # Kill it mid-run, however long the start-up takes on a busy machine.
        deadline = time.monotonic() + 60
        while len(slow_llm.requests) == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.2, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    # A torn last line, as a kill in the middle of a write would leave.
    with open(workdir / "data/raw/examples.jsonl", "a") as f:
        f.write('{"id": "torn", "index": 99999, "kind": "sts", "query": "half a li')
    proc = start(args, workdir)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "resuming" in err
    examples, rejects = check_output(workdir, n)
    assert kills >= 2
    sent = len(slow_llm.requests)
    assert sent <= n + len(rejects) + kills * concurrency, (sent, len(rejects), kills)
    manifest = json.loads((workdir / "data/raw/manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["valid"] == n
    assert manifest["requests"] == n + len(rejects) and manifest["sessions"] >= 2
    # Totals are rebuilt from the records: only the requests in flight at a kill can be missing.
    assert sent - kills * concurrency <= manifest["http_requests"] <= sent
    assert manifest["prompt_tokens"] == 10 * manifest["requests"]  # the fake server bills 10 per prompt


def test_ctrl_c_finishes_in_flight_requests_writes_and_says_how_to_resume(workdir):
    server = FakeLLM(latency=0.6).start()
    try:
        args = ["generate", "--n", 50, "--kinds", "sts=1", "--concurrency", 8, "--base-url", server.base_url,
                "--api-key", "sk-SECRET-KEY-42", "--quiet"]
        proc = start(args, workdir)
        while len(server.requests) < 12:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "to resume, run: synthgen generate --n 50" in err and "sk-SECRET" not in err
        assert "Traceback" not in err
        sent = len(server.requests)
        examples = read_jsonl(workdir / "data/raw/examples.jsonl")
        assert len(examples) == sent  # every request in flight was answered and kept
        manifest = json.loads((workdir / "data/raw/manifest.json").read_text())
        assert manifest["status"] == "interrupted" and manifest["valid"] == sent

        proc = start(args, workdir)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        check_output(workdir, 50)
        assert len(server.requests) == 50
    finally:
        server.stop()


def test_second_ctrl_c_stops_at_once_keeping_what_was_written(workdir):
    server = FakeLLM().start()
    server.then(*["ok"] * 4)
    server.default = {"sleep": 30}
    try:
        proc = start(["generate", "--n", 20, "--kinds", "sts=1", "--concurrency", 4, "--base-url", server.base_url,
                      "--quiet"], workdir)
        while len(server.requests) < 8:
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
        assert time.monotonic() - began < 10  # the grace period was cut short
        assert len(read_jsonl(workdir / "data/raw/examples.jsonl")) == 4
        assert json.loads((workdir / "data/raw/manifest.json").read_text())["valid"] == 4
    finally:
        server.stop()


def test_a_killed_brainstorm_keeps_its_tasks(workdir):
    server = FakeLLM(latency=0.3).start()
    try:
        proc = start(["brainstorm", "--subtype", "long-long", "--rounds", 40, "--concurrency", 2,
                      "--base-url", server.base_url, "--quiet"], workdir)
        while len(server.requests) < 6:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tasks = read_jsonl(workdir / "data/tasks/long-long.jsonl")
        assert len(tasks) >= 20 and len(tasks) % 20 == 0
    finally:
        server.stop()


def test_a_changed_config_is_refused_but_a_changed_n_is_not(cli, llm, workdir):
    base = ["generate", "--kinds", "sts=1", "--base-url", llm.base_url, "--quiet"]
    assert cli(*base, "--n", 5, "--seed", 1).status == 0
    result = cli(*base, "--n", 5, "--seed", 2)
    assert result.status == 2 and "seed differ" in result.err
    result = cli(*base, "--n", 5, "--seed", 1, "--model", "other")
    assert result.status == 2 and "model differ" in result.err
    assert cli(*base, "--n", 9, "--seed", 1).status == 0  # grow
    check_output(workdir, 9)
    assert len(llm.requests) == 9
    assert cli(*base, "--n", 3, "--seed", 1).status == 0  # already there: nothing sent
    assert len(llm.requests) == 9
    assert cli(*base, "--n", 4, "--seed", 2, "--overwrite").status == 0
    check_output(workdir, 4)


def test_an_answer_already_in_the_run_is_a_duplicate_reject_and_is_replaced(cli, llm, workdir):
    llm.then(*["ok", "ok", "duplicate"] * 20)  # a third of the answers repeat the one before
    assert cli("generate", "--n", 30, "--kinds", "sts=1", "--concurrency", 1, "--base-url", llm.base_url,
               "-q").status == 0
    examples, rejects = check_output(workdir, 30)
    assert len({(e["query"], e["positive"], e["negative"]) for e in examples}) == 30
    assert [r["reason"] for r in rejects] == ["duplicate"] * 14
    assert "kept 30, removed 0" in cli("dedup", "data/raw", "-q").out
    manifest = json.loads((workdir / "data/raw/manifest.json").read_text())
    assert manifest["valid"] == 30 and manifest["rejected"] == {"duplicate": 14}


def test_a_resumed_run_knows_the_examples_already_there(cli, llm, workdir):
    base = ["generate", "--kinds", "sts=1", "--concurrency", 1, "--base-url", llm.base_url, "-q"]
    assert cli(*base, "--n", 2).status == 0
    llm.then("duplicate")  # the next answer repeats the last one of the first session
    assert cli(*base, "--n", 3).status == 0
    examples, rejects = check_output(workdir, 3)
    assert [r["reason"] for r in rejects] == ["duplicate"]


def test_a_server_slower_than_the_timeout_is_abandoned_and_retried(cli, llm, workdir):
    (workdir / "c.toml").write_text("[llm]\ntimeout = 0.5\n")
    llm.then({"sleep": 3})
    began = time.monotonic()
    result = cli("generate", "--n", 2, "--kinds", "sts=1", "--concurrency", 1, "--config", "c.toml",
                 "--base-url", llm.base_url, "-q")
    assert result.status == 0, result.err
    assert time.monotonic() - began < 3
    assert len(llm.requests) == 3
    assert json.loads((workdir / "data/raw/manifest.json").read_text())["retries"] == 1


def test_a_429_pauses_every_worker(cli, llm, workdir):
    # The 429 comes back at once; the other three requests in flight take 0.3 s, so the pause is
    # known to the client before any worker is free to send again.
    llm.then({"status": 429, "headers": {"retry-after": "1"}, "body": {"error": {"message": "slow down"}}})
    llm.default = {"sleep": 0.3}
    result = cli("generate", "--n", 12, "--kinds", "sts=1", "--concurrency", 4, "--base-url", llm.base_url, "-q")
    assert result.status == 0, result.err
    first = llm.times[0]
    later = llm.times[4:]  # the first four were sent together, before the 429 came back
    assert later and all(t - first >= 1.0 for t in later)


def test_an_output_folder_that_cannot_be_written_is_bad_input(cli, llm, workdir):
    (workdir / "afile").write_text("x")
    result = cli("generate", "--n", 2, "--kinds", "sts=1", "--out", "afile/sub", "--base-url", llm.base_url, "-q")
    assert result.status == 2 and result.err.count("\n") == 1 and "cannot write to afile/sub" in result.err
    assert (workdir / "afile").read_text() == "x"
