"""Rounds as files for an offline runner (`vllm run-batch`): --write-requests, --read-results, and the
round trip, with a results file that misses lines, holds failed and bad ones, a torn last line and
another run's line. The runner is played by `run_batch` below, writing vLLM's line shapes."""

import json
import uuid

import pytest

from conftest import read_jsonl
from fake_llm import FakeLLM, chat_body
from synthgen.kinds import KINDS
from synthgen.rounds import IndexRuns, as_runs, indices_of, parse_custom_id, write_parts

ANSWERS = FakeLLM()  # its answers only: never started


def run_batch(requests, results, fate=lambda number: "ok", start=0, tail=b""):
    """What `vllm run-batch -i requests -o results` writes: a line per request, in order (fate
    "missing" leaves one out, "fail" writes vLLM's error line, "bad_json" half an answer)."""
    lines = []
    for number, request in enumerate(read_jsonl(requests)):
        what = fate(number)
        if what == "missing":
            continue
        if what == "fail":
            lines.append({"id": f"vllm-{uuid.uuid4().hex}", "custom_id": request["custom_id"],
                          "response": {"status_code": 400, "request_id": f"vllm-batch-{number}", "body": None},
                          "error": "This model's maximum context length is 4096 tokens"})
            continue
        text = ANSWERS.answer(request["body"], start + number)
        if what == "bad_json":
            text = text[: len(text) // 2]
        lines.append({"id": f"vllm-{uuid.uuid4().hex}", "custom_id": request["custom_id"],
                      "response": {"status_code": 200, "request_id": f"vllm-batch-{number}", "body": chat_body(text)},
                      "error": None})
    results.write_bytes(b"".join(json.dumps(line).encode() + b"\n" for line in lines) + tail)


def generate(cli, *args):
    return cli("generate", "--kinds", "sts=1", "--model", "served-model", "--quiet", *args)


def indices(path):
    return [parse_custom_id(line["custom_id"])[1] for line in read_jsonl(path)]


def test_the_round_trip_until_n_valid(cli, workdir):
    n = 30
    first = generate(cli, "--n", n, "--write-requests", "requests.jsonl")
    assert first.status == 0, first.err
    assert "vllm run-batch -i requests.jsonl -o results.jsonl --model served-model" in first.out
    assert "--read-results results.jsonl" in first.out and "--write-requests" not in first.out.split("then")[-1]
    requests = read_jsonl(workdir / "requests.jsonl")
    assert indices(workdir / "requests.jsonl") == list(range(n))
    for line in requests:
        assert (line["method"], line["url"]) == ("POST", "/v1/chat/completions")
        body = line["body"]
        assert body["model"] == "served-model" and body["messages"][0]["role"] == "user"
        assert body["response_format"]["json_schema"]["schema"]["required"] == ["S1", "S2", "S3"]
    assert not (workdir / "data/raw/examples.jsonl").exists()  # nothing is answered yet

    # Round 0 comes back with lines missing, failed, badly answered, a torn last line and a stranger's.
    fates = {3: "missing", 4: "missing", 7: "fail", 11: "bad_json", 20: "fail"}
    stranger = json.dumps({"custom_id": "0123456789-r0-5", "response": None, "error": "x"}).encode() + b"\n"
    run_batch(workdir / "requests.jsonl", workdir / "results.jsonl", lambda i: fates.get(i, "ok"),
              tail=stranger + b'{"id": "vllm-torn", "custom_id": "')
    second = generate(cli, "--n", n, "--read-results", "results.jsonl")
    assert second.status == 0, second.err
    assert "25 valid, 3 rejected (2 of them failed requests), 0 never ran" in second.out
    assert "1 unreadable, 1 not this run's" in second.out and f"25 of {n} valid" in second.out
    # The next round: the missing indices as they were, and the rejected ones' replacements, in requests.jsonl.
    assert indices(workdir / "requests.jsonl") == [3, 4, 30, 31, 32]

    run_batch(workdir / "requests.jsonl", workdir / "results.jsonl", start=1000)
    third = generate(cli, "--n", n, "--read-results", "results.jsonl")
    assert third.status == 0, third.err
    assert f"{n} valid examples" in third.out and "next round" not in third.out

    run = workdir / "data/raw"
    examples, rejects = read_jsonl(run / "examples.jsonl"), read_jsonl(run / "rejects.jsonl")
    assert sorted(e["index"] for e in examples) == sorted(set(range(33)) - {7, 11, 20})
    for example in examples:
        KINDS["sts"].answer.model_validate(example["raw"])
        assert example["usage"]["via"] == "results-file" and example["model"] == "served-model"
    assert {(r["index"], r["reason"]) for r in rejects} == {(7, "request_failed"), (11, "invalid_json"),
                                                           (20, "request_failed")}
    assert "maximum context length" in next(r for r in rejects if r["index"] == 7)["detail"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["valid"] == n and manifest["requests"] == n + 3
    assert manifest["via"]["results-file"]["prompt_tokens"] == manifest["prompt_tokens"] > 0
    assert [job["requests"] for job in manifest["batch"]["jobs"]] == [30, 5]

    # Reading a results file again pays for nothing and changes nothing.
    before = (run / "examples.jsonl").read_bytes()
    again = generate(cli, "--n", n, "--read-results", "results.jsonl")
    assert again.status == 0 and "5 answered before" in again.out
    assert (run / "examples.jsonl").read_bytes() == before


def test_requests_are_the_bodies_a_live_run_sends(cli, llm, workdir):
    """The same plan, the same prompts: a round's lines hold what the live client posts."""
    assert generate(cli, "--n", 6, "--write-requests", "requests.jsonl").status == 0
    live = generate(cli, "--n", 6, "--base-url", llm.base_url, "--out", "live")
    assert live.status == 0, live.err
    written = [json.dumps(line["body"], sort_keys=True) for line in read_jsonl(workdir / "requests.jsonl")]
    assert sorted(json.dumps(body, sort_keys=True) for body in llm.requests) == sorted(written)


def test_a_stranger_results_file_is_refused_and_nothing_is_written(cli, workdir):
    assert generate(cli, "--n", 5, "--write-requests", "requests.jsonl").status == 0
    assert generate(cli, "--n", 5, "--seed", 9, "--out", "other", "--write-requests", "other.jsonl").status == 0
    run_batch(workdir / "other.jsonl", workdir / "results.jsonl")
    result = generate(cli, "--n", 5, "--read-results", "results.jsonl")
    assert result.status == 2 and "holds no result of a request this run wrote" in result.err
    assert not (workdir / "data/raw/examples.jsonl").read_text()


def test_read_results_needs_requests_written_and_is_not_for_batch(cli, workdir):
    (workdir / "results.jsonl").write_text("")
    result = generate(cli, "--n", 5, "--read-results", "results.jsonl")
    assert result.status == 2 and "write them first with --write-requests FILE" in result.err
    result = generate(cli, "--n", 5, "--batch", "--read-results", "results.jsonl")
    assert result.status == 2 and "give one or the other" in result.err
    result = generate(cli, "--n", 5, "--read-results", "missing.jsonl")
    assert result.status == 2 and "missing.jsonl" in result.err


def test_a_kind_without_tasks_and_no_endpoint_is_bad_input(cli, workdir):
    result = cli("generate", "--n", 5, "--kinds", "short-long=1", "--write-requests", "r.jsonl", "--quiet")
    assert result.status == 2 and "no short-long tasks" in result.err
    assert not (workdir / "r.jsonl").exists()


@pytest.mark.parametrize("max_requests,max_bytes,expected", [(4, 10_000, [4, 4, 2]), (100, 250, [2, 2, 2, 2, 2])])
def test_parts_keep_to_the_limits_of_requests_and_bytes(workdir, max_requests, max_bytes, expected):
    lines = [(i, json.dumps({"custom_id": f"r-{i}", "pad": "x" * 80}).encode() + b"\n") for i in range(10)]
    parts = write_parts(iter(lines), lambda part: workdir / f"part-{part}.jsonl", max_requests, max_bytes)
    assert [p.requests for p in parts] == expected
    assert all(p.path.stat().st_size == p.bytes <= max_bytes for p in parts)
    assert b"".join(p.path.read_bytes() for p in parts) == b"".join(line for _, line in lines)
    assert [i for p in parts for i in indices_of(p.runs)] == list(range(10))


def test_index_runs():
    runs = as_runs([0, 1, 2, 5, 6, 9])
    assert runs == [(0, 3), (5, 7), (9, 10)]
    member = IndexRuns(runs + [(2, 4)])
    assert [i for i in range(12) if i in member] == [0, 1, 2, 3, 5, 6, 9]
