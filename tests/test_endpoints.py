"""Several endpoints in one run, over real HTTP on 127.0.0.1: shared by load, each within its own
concurrency, one that dies benched while the run finishes on the others, nothing lost or paid twice."""

import json

import pytest

from conftest import read_jsonl
from fake_llm import FakeLLM, error_body
from synthgen.cli import settings
from synthgen.config import load_config
from synthgen.kinds import KINDS

KEY = "sk-test-POOL-0123456789abcdef"


class Endpoint(FakeLLM):
    """A fake endpoint that counts the answers it gave and the most requests it held at once."""

    def __init__(self, first_number: int, latency: float = 0.0):
        super().__init__(latency, first_number)
        self.holding = 0
        self.most_held = 0
        self.answered = 0

    def handle(self, path, body, headers):
        with self._lock:
            self.holding += 1
            self.most_held = max(self.most_held, self.holding)
        try:
            status, reply_headers, reply = super().handle(path, body, headers)
        finally:
            with self._lock:
                self.holding -= 1
        if status == 200:
            with self._lock:
                self.answered += 1
        return status, reply_headers, reply


@pytest.fixture
def pair():
    endpoints = [Endpoint(first_number=n * 1_000_000, latency=0.01).start() for n in range(2)]
    yield endpoints
    for endpoint in endpoints:
        endpoint.stop()


def urls(*endpoints):
    return [flag for e in endpoints for flag in ("--base-url", e.base_url)]


def generate(cli, *args):
    return cli("generate", "--kinds", "sts=1", "--model", "fake-model", "--quiet", *args)


def read_run(workdir):
    run = workdir / "data/raw"
    rejects = read_jsonl(run / "rejects.jsonl") if (run / "rejects.jsonl").exists() else []
    return read_jsonl(run / "examples.jsonl"), rejects, json.loads((run / "manifest.json").read_text())


def test_each_endpoint_gets_requests_within_its_own_concurrency(cli, pair, workdir):
    a, b = pair
    (workdir / "c.toml").write_text(f'[[llm.endpoints]]\nbase_url = "{a.base_url}"\nconcurrency = 1\n'
                                    f'[[llm.endpoints]]\nbase_url = "{b.base_url}"\nconcurrency = 3\n')
    result = generate(cli, "--n", 40, "--config", "c.toml")
    assert result.status == 0, result.err
    examples, rejects, manifest = read_run(workdir)
    assert len(examples) == 40 and rejects == []
    assert a.most_held <= 1 and b.most_held <= 3
    assert 0 < a.answered < b.answered and a.answered + b.answered == 40
    assert manifest["config"]["generate"]["concurrency"] == 4  # the run's: the endpoints' sum
    assert manifest["endpoint"] == f"{a.base_url}, {b.base_url}"
    report = manifest["endpoints"]
    for server in pair:
        counts = report[server.base_url]
        assert counts["requests"] == counts["answered"] == server.answered
        assert counts["http_requests"] == len(server.requests) and counts["failed"] == counts["benched"] == 0
    assert sum(c["prompt_tokens"] + c["completion_tokens"] for c in report.values()) == \
        manifest["prompt_tokens"] + manifest["completion_tokens"]


def test_base_url_given_twice_with_concurrency_for_each_brainstorm_included(cli, pair, workdir):
    a, b = pair
    result = cli("generate", "--n", 12, "--kinds", "short-long=1", *urls(a, b), "--concurrency", 2,
                 "--api-key", KEY, "--quiet")
    assert result.status == 0, result.err
    examples, _, manifest = read_run(workdir)
    assert len(examples) == 12 and read_jsonl(workdir / "data/tasks/short-long.jsonl")
    assert [e["concurrency"] for e in manifest["config"]["llm"]["endpoints"]] == [2, 2]
    assert manifest["config"]["generate"]["concurrency"] == 4
    assert a.most_held <= 2 and b.most_held <= 2
    assert all(h["authorization"] == f"Bearer {KEY}" for server in pair for h in server.request_headers)
    # The brainstorm's requests are its own, apart from generation's, per endpoint as in all.
    report = manifest["endpoints"]
    assert sum(c["http_requests"] for c in report.values()) == manifest["http_requests"]
    assert manifest["brainstorm"]["http_requests"] + manifest["http_requests"] == len(a.requests) + len(b.requests)
    assert not any(KEY in p.read_text() for p in workdir.rglob("*") if p.is_file())


@pytest.mark.parametrize("death", ["drop", {"status": 503, "body": error_body(f"overloaded, key {KEY}")}],
                         ids=["connections-dropped", "503"])
def test_an_endpoint_that_dies_mid_run_is_benched_and_the_run_finishes_on_the_other(cli, pair, workdir, death):
    a, b = pair
    a.then(*["ok"] * 5)  # it answers five requests, then every request fails
    a.default = death
    (workdir / "c.toml").write_text("[llm]\nmax_attempts = 2\nbench_after = 2\nbench_seconds = 3600\n")
    result = generate(cli, "--n", 40, *urls(a, b), "--concurrency", 3, "--config", "c.toml", "--api-key", KEY)
    assert result.status == 0, result.err
    examples, rejects, manifest = read_run(workdir)

    # Every example valid, each index once; every index sent is an example or a reject: none lost.
    assert len(examples) == 40 == manifest["valid"]
    for example in examples:
        KINDS["sts"].answer.model_validate(example["raw"])
    indices = [record["index"] for record in examples + rejects]
    assert sorted(indices) == list(range(len(indices)))
    # Before it was benched, a failure there counted (it might have been the request's): at most
    # bench_after - 1 of them, each saying which endpoint failed and how. After, none.
    assert len(rejects) <= 1
    for reject in rejects:
        assert reject["reason"] == "request_failed" and reject["detail"].startswith(a.base_url)
        assert ("Connection" if death == "drop" else "overloaded") in reject["detail"]

    # Paid once: every answer the endpoints gave became an example, none was asked for twice.
    assert a.answered == 5 and a.answered + b.answered == 40
    # Every HTTP request either endpoint saw is in the records' counts, the ones that failed included.
    assert manifest["http_requests"] == len(a.requests) + len(b.requests)
    # Once benched (for an hour), nothing more was sent there: its requests in flight at its death
    # and the bench_after - 1 sent after a failure that did not bench it yet, each up to 2 attempts.
    assert len(a.requests) - 5 <= 2 * (3 + 1)
    report = manifest["endpoints"]
    assert report[a.base_url]["benched"] == 1 and report[a.base_url]["answered"] == 5
    assert report[a.base_url]["failed"] >= 2 and report[b.base_url]["answered"] == 35
    assert report[a.base_url]["http_requests"] == len(a.requests)
    assert KEY not in result.err and not any(KEY in p.read_text() for p in workdir.rglob("*") if p.is_file())


def test_a_benched_endpoint_is_tried_again_after_its_cool_down(cli, workdir):
    a, b = Endpoint(first_number=0).start(), Endpoint(first_number=1_000_000).start()
    try:
        a.then({"status": 503, "body": error_body("restarting")})  # one failure benches it for 0.2 s
        b.default = {"sleep": 0.5}  # the other answers slowly: the run outlasts the cool-down
        (workdir / "c.toml").write_text("[llm]\nmax_attempts = 1\nbench_after = 1\nbench_seconds = 0.2\n")
        result = generate(cli, "--n", 6, *urls(a, b), "--concurrency", 1, "--config", "c.toml")
        assert result.status == 0, result.err
        examples, rejects, manifest = read_run(workdir)
        assert len(examples) == 6 and rejects == []  # the request it failed was asked of the other
        report = manifest["endpoints"][a.base_url]
        assert report["benched"] == 1 and report["failed"] == 1 and a.answered >= 1 and report["answered"] == a.answered
    finally:
        a.stop()
        b.stop()


def test_when_every_endpoint_is_benched_the_failure_window_decides(cli, pair, workdir):
    for server in pair:
        server.default = {"status": 500, "body": error_body("upstream is down")}
    (workdir / "c.toml").write_text("[llm]\nmax_attempts = 1\nbench_after = 1\nbench_seconds = 3600\n")
    result = generate(cli, "--n", 10, *urls(*pair), "--concurrency", 1, "--config", "c.toml")
    assert result.status == 1
    line = result.err.strip().splitlines()[-1]
    assert line.startswith("synthgen: stopped: every request so far failed (3 of them)")
    assert "upstream is down" in line
    _, rejects, manifest = read_run(workdir)
    # The three the window counted, and the one still in flight when it stopped the run.
    assert 3 <= len(rejects) <= 4 and all(r["reason"] == "request_failed" for r in rejects)
    # Each failed request was asked of the other endpoint first: two HTTP requests, two endpoints named.
    assert all(pair[0].base_url in r["detail"] and pair[1].base_url in r["detail"] for r in rejects
               if r["usage"]["http_requests"] == 2)
    assert manifest["http_requests"] == sum(len(server.requests) for server in pair)


def test_a_resumed_run_may_use_other_endpoints(cli, pair, workdir):
    a, b = pair
    assert generate(cli, "--n", 6, *urls(a)).status == 0
    first = read_run(workdir)[2]
    assert first["endpoint"] == a.base_url and first["endpoints"] == {}
    result = generate(cli, "--n", 14, *urls(a, b))
    assert result.status == 0 and "resuming" in result.err, result.err
    second = read_run(workdir)[2]
    assert second["fingerprint"] == first["fingerprint"] and second["valid"] == 14
    assert sum(c["answered"] for c in second["endpoints"].values()) == 8
    result = generate(cli, "--n", 18, *urls(b))
    assert result.status == 0, result.err
    examples, _, third = read_run(workdir)
    assert len(examples) == 18 and len({e["index"] for e in examples}) == 18
    assert third["endpoint"] == b.base_url and third["endpoints"] == second["endpoints"]  # kept from before
    assert generate(cli, "--n", 22, *urls(b, a)).status == 0
    fourth = read_run(workdir)[2]
    assert sum(c["answered"] for c in fourth["endpoints"].values()) == 8 + 4  # summed over the sessions


def test_the_endpoints_are_not_part_of_the_fingerprint():
    one = load_config(overrides={"llm": {"base_url": "http://127.0.0.1:1/v1"}})
    two = load_config(overrides={"llm": {"endpoints": [{"base_url": "http://127.0.0.1:2/v1", "concurrency": 9},
                                                       {"base_url": "http://127.0.0.1:3/v1"}]}})
    assert one.fingerprint_data() == two.fingerprint_data()


def test_concurrency_is_per_endpoint_and_the_runs_is_their_sum(workdir):
    endpoints = [{"base_url": "http://127.0.0.1:2/v1", "concurrency": 9}, {"base_url": "http://127.0.0.1:3/v1"}]
    config = load_config(overrides={"llm": {"endpoints": endpoints}, "generate": {"concurrency": None}})
    assert [e.concurrency for e in config.llm.endpoints] == [9, 16] and config.generate.concurrency == 25
    (workdir / "c.toml").write_text('[[llm.endpoints]]\nbase_url = "http://127.0.0.1:2/v1"\nconcurrency = 9\n'
                                    '[[llm.endpoints]]\nbase_url = "http://127.0.0.1:3/v1"\n')
    flagged = load_config(workdir / "c.toml", {}, {"generate": {"concurrency": 4}})  # --concurrency: each one's
    assert [e.concurrency for e in flagged.llm.endpoints] == [4, 4] and flagged.generate.concurrency == 8
    local = load_config(workdir / "c.toml", {}, {"llm": {"backend": "local"}})
    assert local.generate.concurrency == 16  # the endpoints are not used
    # Flags over the config: one --base-url is the run's one endpoint, several replace the list.
    one = settings(workdir / "c.toml", base_url=["http://127.0.0.1:4/v1"])
    assert one.llm.endpoints == [] and one.llm.base_url == "http://127.0.0.1:4/v1"
    several = settings(workdir / "c.toml", base_url=["http://127.0.0.1:4/v1", "http://127.0.0.1:5/v1"], concurrency=3)
    assert [(e.base_url, e.concurrency) for e in several.llm.endpoints] == [
        ("http://127.0.0.1:4/v1", 3), ("http://127.0.0.1:5/v1", 3)]


@pytest.mark.parametrize("args,message", [
    (["--base-url", "http://127.0.0.1:9/v1", "--base-url", "http://127.0.0.1:9/v1/"], "http://127.0.0.1:9/v1/ is given twice"),
    (["--base-url", "http://127.0.0.1:9/v1", "--base-url", "127.0.0.1:8/v1"], "is not an http(s) URL"),
    (["--base-url", "http://127.0.0.1:9/v1", "--base-url", " "], "must not be empty"),
    (["--config", "twice.toml"], "llm.endpoints: http://127.0.0.1:9/v1 is given twice"),
    (["--config", "bad.toml"], "is not an http(s) URL"),
    (["--config", "zero.toml"], "llm.endpoints.1.concurrency"),
], ids=["flag-twice", "flag-malformed", "flag-empty", "config-twice", "config-malformed", "config-zero"])
def test_bad_endpoints_are_one_line_and_status_2(cli, workdir, args, message):
    one = '[[llm.endpoints]]\nbase_url = "http://127.0.0.1:9/v1"\n'
    (workdir / "twice.toml").write_text(one + one.replace("/v1", "/v1/"))
    (workdir / "bad.toml").write_text(one + '[[llm.endpoints]]\nbase_url = "ftp://127.0.0.1:9/v1"\n')
    (workdir / "zero.toml").write_text(one + '[[llm.endpoints]]\nbase_url = "http://127.0.0.1:8/v1"\nconcurrency = 0\n')
    result = cli("generate", "--n", 3, *args)
    assert result.status == 2
    assert len(result.err.strip().splitlines()) == 1 and message in result.err, result.err
