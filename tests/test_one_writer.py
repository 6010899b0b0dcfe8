"""One writer per folder: a second run, or a dedup/export/import into a run's folder, is refused."""

import os
import signal
import subprocess
import sys
import time

from conftest import read_jsonl
from fake_llm import FakeLLM
from stored import every_kind, write_jsonl


def start(args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SYNTHGEN_"))}
    return subprocess.Popen([sys.executable, "-m", "synthgen", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout=30.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_a_second_run_on_the_same_out_is_refused_and_pays_nothing(cli, workdir):
    server = FakeLLM(latency=0.2).start()
    args = ["generate", "--n", 200, "--kinds", "sts=1", "--concurrency", 4, "--base-url", server.base_url,
            "--model", "m", "--out", "X", "--quiet"]
    first = start(args, workdir)
    try:
        wait_for(lambda: len(server.requests) >= 4)
        sent = len(server.requests)
        second = cli(*args)
        assert second.status == 2
        line = second.err.strip()
        assert "\n" not in line and f"X is in use by synthgen generate (pid {first.pid} on " in line
        assert len(server.requests) - sent <= 4  # only the first run's workers went on sending
        write_jsonl(workdir / "in.jsonl", every_kind(1))
        assert cli("export", "in.jsonl", "--format", "flagembedding", "--out", "fe.jsonl", "-q").status == 0
        for refused in (["dedup", "in.jsonl", "--out", "X/dedup.jsonl"],
                        ["export", "in.jsonl", "--format", "e5", "--out", "X/e5.jsonl"],
                        ["import", "fe.jsonl", "--format", "flagembedding", "--out", "X/imported.jsonl"]):
            result = cli(*refused, "--quiet")
            assert result.status == 2 and "X is in use by synthgen generate" in result.err, refused
        first.send_signal(signal.SIGKILL)
        first.wait()
        # The lock went with the process: the same command resumes.
        resumed = cli(*args[:2], 20, *args[3:])
        assert resumed.status == 0, resumed.err
        assert len(read_jsonl(workdir / "X/examples.jsonl")) >= 20
    finally:
        first.kill()
        server.stop()


def test_brainstorm_holds_its_task_file(cli, workdir):
    server = FakeLLM(latency=0.3).start()
    args = ["brainstorm", "--subtype", "long-long", "--rounds", 20, "--concurrency", 1,
            "--base-url", server.base_url, "--quiet"]
    first = start(args, workdir)
    try:
        wait_for(lambda: len(server.requests) >= 1)
        result = cli(*args)
        assert result.status == 2 and "data/tasks/long-long.jsonl is in use by synthgen brainstorm" in result.err
    finally:
        first.kill()
        first.wait()
        server.stop()
