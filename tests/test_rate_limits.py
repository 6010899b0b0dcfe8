"""--rpm / --tpm pacing, the server's rate-limit headers, and the shared 429 cool-down."""

import json

import pytest

from fake_llm import chat_body
from synthgen.llm.limits import Pacer, RateLimits, estimate_tokens, exhausted_for, parse_duration


def test_a_pacer_spreads_requests_evenly_and_never_bursts():
    pacer = Pacer(per_minute=600)  # one every 0.1 s
    starts = [pacer.reserve(now=5.0) for _ in range(4)]
    assert starts == pytest.approx([5.0, 5.1, 5.2, 5.3])
    assert pacer.reserve(now=9.0) == 9.0  # idle time is not saved up for a burst
    assert pacer.reserve(now=9.0) == pytest.approx(9.1)


def test_token_pacing_is_corrected_by_reported_usage():
    limits = RateLimits(tpm=60_000)  # 1,000 tokens a second
    assert limits.reserve(0.0, 2000) == 0.0
    assert limits.reserve(0.0, 2000) == pytest.approx(2.0)
    limits.settle(estimated_tokens=2000, actual_tokens=500)  # the server counted less: time given back
    assert limits.reserve(0.0, 1000) == pytest.approx(2.5)


def test_both_limits_apply_and_the_later_wins():
    limits = RateLimits(rpm=60, tpm=6_000)  # 1 request a second, 100 tokens a second
    assert limits.reserve(0.0, 50) == 0.0
    assert limits.reserve(0.0, 50) == pytest.approx(1.0)  # the request pace is the later
    assert limits.reserve(0.0, 500) == pytest.approx(2.0)
    assert limits.reserve(0.0, 10) == pytest.approx(6.0)  # the 500 tokens pushed the token pace


def test_token_estimate_counts_the_prompt_and_the_answer_cap():
    assert estimate_tokens("x" * 400, 1000) == 1100


@pytest.mark.parametrize(
    "text,seconds",
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("0.5s", 0.5), ("1h2m3s", 3723.0), ("7", 7.0), ("soon", None)],
)
def test_reset_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_exhausted_budgets_ask_for_the_longest_reset():
    assert exhausted_for({"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "1s"}) is None
    headers = {
        "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s",
        "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s",
    }
    assert exhausted_for(headers) == 360.0


def run(cli, llm, *extra):
    return cli("generate", "--kinds", "sts=1", "--base-url", llm.base_url, "-q", *extra)


def test_rpm_paces_requests(cli, llm, workdir):
    result = run(cli, llm, "--n", 12, "--concurrency", 8, "--rpm", 600)
    assert result.status == 0, result.err
    # 8 workers, yet request k never starts before its slot, k x 0.1 s after the first. (A loaded
    # machine may send two late ones together; the schedule, not each gap, is what is promised.)
    assert len(llm.times) == 12
    assert all(t - llm.times[0] >= 0.1 * k - 0.1 for k, t in enumerate(llm.times))
    assert llm.times[-1] - llm.times[0] >= 1.0


def test_tpm_paces_by_estimated_and_reported_tokens(cli, llm, workdir):
    (workdir / "c.toml").write_text("[llm.max_tokens]\nsts = 200\n")
    # Each request is estimated at about 200 + prompt/4 tokens; at 12,000 a minute that is > 1 s apart.
    result = run(cli, llm, "--n", 3, "--concurrency", 3, "--tpm", 12000, "--config", "c.toml")
    assert result.status == 0, result.err
    assert llm.times[2] - llm.times[0] >= 1.5


def test_a_spent_budget_in_the_headers_pauses_every_request(cli, llm, workdir):
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"}
    llm.then(lambda body: (200, headers, chat_body(llm.answer(body, 0))))
    result = run(cli, llm, "--n", 4, "--concurrency", 1)
    assert result.status == 0, result.err
    assert llm.times[1] - llm.times[0] >= 1.0
    assert all(b - a < 1.0 for a, b in zip(llm.times[1:], llm.times[2:]))  # one pause, not one per request


def test_a_burst_of_429s_is_retried_and_counted(cli, llm, workdir):
    limited = {"status": 429, "headers": {"retry-after": "0.2"}, "body": {"error": {"message": "busy"}}}
    llm.then(*[limited] * 6)
    result = run(cli, llm, "--n", 10, "--concurrency", 6)
    assert result.status == 0, result.err
    manifest = json.loads((workdir / "data/raw/manifest.json").read_text())
    assert manifest["valid"] == 10 and manifest["retries"] == 6 and manifest["http_requests"] == 16
    assert manifest["requests"] == 10  # a retried request is one request, paid once
