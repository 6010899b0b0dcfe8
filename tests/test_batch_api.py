"""generate --batch against a real Batch API on 127.0.0.1 (tests/fake_batch.py): files split at the
limits, answers validated as live ones, replacements as the next round, a batch that expires half
done, one partly failed, one failed whole, a creation cut off; Ctrl+C, kill -9, status and cancel;
never a request paid twice."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import read_jsonl
from fake_batch import FakeBatchAPI
from synthgen.kinds import KINDS
from synthgen.rounds import parse_custom_id

KEY = "sk-test-BATCH-0123456789abcdef"
LIMIT = 16  # requests a file, for the fake and for synthgen alike: a file over it fails


@pytest.fixture
def api():
    server = FakeBatchAPI(max_file_requests=LIMIT).start()
    yield server
    server.stop()


@pytest.fixture
def fast(workdir):
    (workdir / "fast.toml").write_text(f"[batch]\npoll_seconds = 0.02\nmax_file_requests = {LIMIT}\n")
    return ["--config", "fast.toml"]


def batch_run(cli, api, fast, *args):
    return cli("generate", "--kinds", "sts=1", "--model", "fake-model", "--quiet", "--batch",
               "--base-url", api.base_url, "--api-key", KEY, *fast, *args)


def read_run(workdir):
    run = workdir / "data/raw"
    rejects = read_jsonl(run / "rejects.jsonl") if (run / "rejects.jsonl").exists() else []
    return read_jsonl(run / "examples.jsonl"), rejects, json.loads((run / "manifest.json").read_text())


def check_paid_once(api, examples, rejects, manifest):
    """Every request the provider ran is a record, once; none ran twice."""
    assert api.executed == len(examples) + len(rejects) == manifest["requests"]
    ran = {}
    for custom_id, times in api.ran.items():
        index = parse_custom_id(custom_id)[1]
        ran[index] = ran.get(index, 0) + times
    assert set(ran.values()) == {1}
    assert sorted(ran) == sorted([e["index"] for e in examples] + [r["index"] for r in rejects])


def test_a_run_through_the_batch_api(cli, api, fast, workdir):
    n = 40
    # Round 0: every 7th request fails at the provider, every 9th is answered with broken JSON.
    api.plan(*[{"line": lambda i: "fail" if i % 7 == 3 else "bad_json" if i % 9 == 5 else "ok"}] * 3)
    result = batch_run(cli, api, fast, "--n", n)
    assert result.status == 0, result.err
    examples, rejects, manifest = read_run(workdir)
    assert len(examples) == n and len({e["index"] for e in examples}) == n
    for example in examples:
        KINDS["sts"].answer.model_validate(example["raw"])
        assert example["usage"]["via"] == "batch" and example["usage"]["http_requests"] == 1
    assert {r["reason"] for r in rejects} == {"request_failed", "invalid_json"}
    check_paid_once(api, examples, rejects, manifest)
    # Round 0 went as three files within the limit (16, 16, 8), the replacements as round 1.
    jobs = manifest["batch"]["jobs"]
    assert [(j["round"], j["requests"]) for j in jobs] == [(0, 16), (0, 16), (0, 8), (1, len(rejects))]
    assert all(j["collected"] and j["batch_id"] in api.batches and j["status"] == "completed" for j in jobs)
    assert manifest["via"]["batch"]["completion_tokens"] == manifest["completion_tokens"] > 0
    assert manifest["status"] == "complete" and KEY not in (workdir / "data/raw/manifest.json").read_text()
    assert not (workdir / "data/raw/batch").exists()  # the request and result files go once collected
    uploaded = api.uploaded_lines()
    assert all(line["body"]["model"] == "fake-model" and line["url"] == "/v1/chat/completions" for line in uploaded)
    assert api.api_headers and all(h.get("authorization") == f"Bearer {KEY}" for h in api.api_headers)


def test_a_batch_runs_cost_is_the_batch_apis_share_of_the_price(cli, api, fast, workdir):
    # $1,000 a million completion tokens, prompts free; the Batch API bills half.
    result = batch_run(cli, api, fast, "--n", 8, "--price-in", "0", "--price-out", "1000")
    assert result.status == 0, result.err
    manifest = read_run(workdir)[2]
    cost = manifest["cost"]
    assert manifest["via"]["batch"]["completion_tokens"] == manifest["completion_tokens"] > 0
    assert cost["usd"] == pytest.approx(manifest["completion_tokens"] * 1000 / 1e6 * 0.5, abs=1e-6)
    assert f"cost ${cost['usd']:.2f}" in result.out


def test_a_batch_that_expires_half_done_is_asked_again_for_what_never_ran(cli, api, fast, workdir):
    api.plan({"expire_after": 0.5})
    result = batch_run(cli, api, fast, "--n", 12)
    assert result.status == 0, result.err
    examples, rejects, manifest = read_run(workdir)
    assert sorted(e["index"] for e in examples) == list(range(12)) and rejects == []
    check_paid_once(api, examples, rejects, manifest)
    jobs = manifest["batch"]["jobs"]
    assert [(j["status"], j["requests"], j["completed"]) for j in jobs] == [("expired", 12, 6), ("completed", 6, 6)]
    assert jobs[1]["indices"] == [[6, 12]]  # the same indices: nothing was paid for them


def test_a_batch_created_but_not_heard_of_is_found_not_made_twice(cli, api, fast, workdir):
    api.plan({"drop_create": True})
    result = batch_run(cli, api, fast, "--n", 5)
    assert result.status == 0, result.err
    assert len(api.batches) == 1
    examples, rejects, manifest = read_run(workdir)
    check_paid_once(api, examples, rejects, manifest)


def test_a_failed_batch_stops_the_run_and_the_command_again_sends_it_again(cli, api, fast, workdir):
    api.plan({"fail_validation": "Enqueued token limit reached for fake-model"})
    result = batch_run(cli, api, fast, "--n", 5)
    assert result.status == 1 and "ran no request" in result.err and "Enqueued token limit" in result.err
    again = batch_run(cli, api, fast, "--n", 5)
    assert again.status == 0, again.err
    examples, rejects, manifest = read_run(workdir)
    assert sorted(e["index"] for e in examples) == list(range(5))
    assert [j["status"] for j in manifest["batch"]["jobs"]] == ["failed", "completed"]
    check_paid_once(api, examples, rejects, manifest)


def start(args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SYNTHGEN_"))}
    return subprocess.Popen([sys.executable, "-m", "synthgen", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def held_run(api, workdir, n, hold):
    """generate --batch in its own process, against batches that stop after `hold` requests, and
    the manifest once it says so (the requests are at the provider, part of them run)."""
    api.hold_after = hold
    proc = start(["generate", "--n", n, "--kinds", "sts=1", "--model", "fake-model", "-q", "--batch",
                  "--base-url", api.base_url, "--config", "fast.toml"], workdir)
    manifest = workdir / "data/raw/manifest.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and re.search(rf'"completed": {hold}\b', manifest.read_text()):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no batch was sent: {proc.communicate()}")


def test_kill_9_then_the_command_again_polls_the_batches_it_sent(cli, api, fast, workdir):
    proc = held_run(api, workdir, 10, hold=2)
    proc.kill()
    proc.wait()
    api.hold_after = None
    result = batch_run(cli, api, fast, "--n", 10)
    assert result.status == 0, result.err
    assert len(api.batches) == 1 and len([f for f in api.files.values() if f["purpose"] == "batch"]) == 1
    examples, rejects, manifest = read_run(workdir)
    assert sorted(e["index"] for e in examples) == list(range(10))
    check_paid_once(api, examples, rejects, manifest)


def test_ctrl_c_leaves_the_batches_running_then_status_cancel_and_collect(cli, api, fast, workdir):
    n = 10
    proc = held_run(api, workdir, n, hold=3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "keep running at the Batch API (none was cancelled)" in err and "to resume, run: synthgen generate" in err
    assert api.cancels == []

    status = cli("batch", "status", "data/raw", "--base-url", api.base_url)
    assert status.status == 0, status.err
    batch_id = next(iter(api.batches))
    assert batch_id in status.out and "in_progress" in status.out and f"0 of {n} valid" in status.out

    live = cli("generate", "--n", n, "--kinds", "sts=1", "--model", "fake-model", "-q", "--base-url", api.base_url)
    assert live.status == 2 and "not collected yet" in live.err  # it would pay for them twice

    cancel = cli("batch", "cancel", "data/raw", "--base-url", api.base_url)
    assert cancel.status == 0 and api.cancels == [batch_id]
    collected = batch_run(cli, api, fast, "--n", n)
    assert collected.status == 1 and "were cancelled" in collected.err
    examples, _, manifest = read_run(workdir)
    assert len(examples) == 3 and manifest["batch"]["jobs"][0]["status"] == "cancelled"

    api.hold_after = None
    finished = batch_run(cli, api, fast, "--n", n)
    assert finished.status == 0, finished.err
    examples, rejects, manifest = read_run(workdir)
    assert sorted(e["index"] for e in examples) == list(range(n))
    check_paid_once(api, examples, rejects, manifest)


def test_batch_needs_one_endpoint_and_status_a_batch_run(cli, api, workdir):
    result = cli("generate", "--n", 5, "--kinds", "sts=1", "--batch", "-q")
    assert result.status == 2 and "OPENAI_API_KEY" in result.err
    result = cli("generate", "--n", 5, "--kinds", "sts=1", "--batch", "-q", "--base-url", api.base_url,
                 "--base-url", "http://127.0.0.1:9/v1")
    assert result.status == 2 and "one --base-url" in result.err
    result = cli("batch", "status", "nowhere", "--base-url", api.base_url)
    assert result.status == 2 and "holds no run" in result.err
