"""What the endpoint's faults do to a run: retried, replaced or stopped, never lost."""

import json

from conftest import read_jsonl
from fake_llm import error_body

KEY = "sk-test-SECRET-0123456789abcdef"


def run(cli, llm, *extra):
    return cli("generate", "--kinds", "sts=1", "--concurrency", 1, "--base-url", llm.base_url,
               "--model", "fake-model", "--api-key", KEY, "--quiet", *extra)


def manifest(workdir):
    return json.loads((workdir / "data/raw/manifest.json").read_text())


def test_server_errors_and_dropped_connections_are_retried(cli, llm, workdir):
    llm.then({"status": 500, "body": error_body("boom")}, {"status": 503, "body": error_body("busy")}, "drop",
             {"status": 408, "body": error_body("slow")})
    result = run(cli, llm, "--n", 3)
    assert result.status == 0, result.err
    m = manifest(workdir)
    assert m["valid"] == 3 and m["retries"] == 4 and m["http_requests"] == 7 and m["requests"] == 3


def test_retry_after_is_honoured(cli, llm, workdir):
    llm.then({"status": 429, "headers": {"retry-after": "1"}, "body": error_body("slow down")})
    result = run(cli, llm, "--n", 1)
    assert result.status == 0, result.err
    assert llm.times[1] - llm.times[0] >= 1.0


def test_try_again_in_message_is_honoured(cli, llm, workdir):
    llm.then({"status": 429, "body": error_body("Rate limit reached. Please try again in 1.2s.")})
    assert run(cli, llm, "--n", 1).status == 0
    assert llm.times[1] - llm.times[0] >= 1.2


def test_spent_quota_stops_at_once_and_keeps_what_was_written(cli, llm, workdir):
    llm.then("ok", "ok", {"status": 429, "body": error_body("You exceeded your quota", "insufficient_quota",
                                                             "insufficient_quota")})
    result = run(cli, llm, "--n", 10)
    assert result.status == 1
    assert result.err.strip().splitlines()[-1].startswith("synthgen: stopped: quota spent")
    assert len(llm.requests) == 3
    assert len(read_jsonl(workdir / "data/raw/examples.jsonl")) == 2
    assert manifest(workdir)["valid"] == 2


def test_refused_key_stops_without_showing_the_key(cli, llm, workdir):
    llm.default = {"status": 401, "body": error_body(f"Incorrect API key provided: {KEY}", "invalid_api_key")}
    result = run(cli, llm, "--n", 3)
    assert result.status == 1
    assert "refused the API key (401)" in result.err
    assert len(llm.requests) == 1
    assert llm.request_headers[0]["authorization"] == f"Bearer {KEY}"
    written = "".join(p.read_text() for p in (workdir / "data").rglob("*") if p.is_file())
    assert KEY not in result.err + result.out + written


def test_forbidden_and_not_found_stop_at_once(cli, llm, workdir):
    llm.then({"status": 403, "body": error_body("not allowed")})
    assert run(cli, llm, "--n", 2).status == 1
    llm.then({"status": 404, "body": error_body("The model `fake-model` does not exist")})
    result = run(cli, llm, "--n", 2)
    assert result.status == 1 and "does not exist" in result.err
    assert len(llm.requests) == 2


def test_bad_request_stops_with_the_servers_message(cli, llm, workdir):
    llm.default = {"status": 400, "body": error_body("max_tokens is too large")}
    result = run(cli, llm, "--n", 2)
    assert result.status == 1 and "max_tokens is too large" in result.err
    # json_schema, then json_object, then no response_format: the 400 was not about them either.
    assert len(llm.requests) == 3


def test_a_request_that_uses_up_its_attempts_is_replaced(cli, llm, workdir):
    (workdir / "c.toml").write_text("[llm]\nmax_attempts = 2\n")
    llm.then({"status": 502, "body": error_body("bad gateway")}, {"status": 502, "body": error_body("bad gateway")})
    result = run(cli, llm, "--n", 2, "--config", "c.toml")
    assert result.status == 0, result.err
    rejects = read_jsonl(workdir / "data/raw/rejects.jsonl")
    assert [r["reason"] for r in rejects] == ["request_failed"] and "bad gateway" in rejects[0]["detail"]
    assert manifest(workdir)["valid"] == 2


def test_a_run_where_most_requests_fail_stops_with_a_diagnosis(cli, llm, workdir):
    (workdir / "c.toml").write_text("[llm]\nmax_attempts = 1\n")
    llm.then("ok")  # it answered once: the endpoint is there, but most requests now fail
    llm.default = {"status": 500, "body": error_body("upstream is down")}
    result = run(cli, llm, "--n", 100, "--config", "c.toml")
    assert result.status == 1
    assert "most requests fail" in result.err and "upstream is down" in result.err
    assert len(llm.requests) == 20


def test_a_refused_key_during_the_automatic_brainstorm_is_one_line(cli, llm, workdir):
    llm.default = {"status": 401, "body": error_body("Incorrect API key provided", "invalid_api_key")}
    for args in (["generate", "--n", 3, "--kinds", "short-long=1"], ["brainstorm", "--subtype", "short-long"]):
        result = cli(*args, "--base-url", llm.base_url, "--api-key", KEY, "--quiet")
        assert result.status == 1, args
        last = result.err.strip().splitlines()[-1]
        assert last.startswith("synthgen: stopped: the endpoint refused the API key (401)")
        assert "Traceback" not in result.err
    assert not (workdir / "data/raw").exists()  # an early failure leaves no empty output folder


def test_a_bad_brainstorm_answer_is_replaced_instead_of_ending_the_run(cli, llm, workdir):
    llm.then("bad_json", "wrong_schema", "truncated")
    result = cli("generate", "--n", 3, "--kinds", "short-long=1", "--base-url", llm.base_url, "--quiet")
    assert result.status == 0, result.err
    assert len(read_jsonl(workdir / "data/tasks/short-long.jsonl")) == 20
    assert len(read_jsonl(workdir / "data/raw/examples.jsonl")) == 3


def test_an_unreachable_endpoint_stops_fast_and_says_why(cli, workdir):
    (workdir / "c.toml").write_text("[llm]\nmax_attempts = 2\n")
    result = cli("generate", "--n", 3, "--kinds", "sts=1", "--base-url", "http://127.0.0.1:1/v1",
                 "--config", "c.toml", "--quiet")
    assert result.status == 1
    line = result.err.strip().splitlines()[-1]
    assert line.startswith("synthgen: stopped: every request so far failed (3 of them)")
    assert "Connect" in line and "--max-requests" not in result.err
    rejects = read_jsonl(workdir / "data/raw/rejects.jsonl")
    assert 3 <= len(rejects) <= 6 and all(r["usage"]["http_requests"] == 2 for r in rejects)
