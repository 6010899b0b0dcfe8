"""What every backend owes the pipeline, checked the same way on both: the OpenAI-compatible client
against a real HTTP server on 127.0.0.1, and the embedded model (the real one, when the local extra
is installed)."""

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Callable

import msgspec
import pytest

from fake_llm import FakeLLM
from local_model import needs_real_model
from synthgen.backends import open_backend
from synthgen.config import load_config
from synthgen.kinds import KINDS, SUBTYPES
from synthgen.llm import model_file as mf
from synthgen.schemas import answer_schema
from synthgen.store import Example

STS_PROMPT = (
    "Write three sentences, S1, S2 and S3, in English about one specific topic. S1 and S2 mean almost the "
    "same; S3 shares the topic but differs in important points. Answer with a JSON object with exactly the "
    'keys "S1", "S2", "S3", each a string, and nothing else.'
)
GIVEN_TASKS = {
    "short-long": "Retrieve articles that answer a question about home gardening.",
    "long-short": "Classify a customer review of a restaurant as positive, negative or mixed.",
    "long-long": "Given a news article, retrieve other articles about the same event.",
}


@dataclass
class Case:
    name: str
    flags: list[str]  # CLI flags that choose the backend
    overrides: dict  # the same as config overrides
    started: Callable[[], bool]  # whether a request has reached the model
    server: object = None
    details: dict = field(default_factory=dict)


@pytest.fixture(params=["openai", pytest.param("local", marks=needs_real_model)])
def case(request):
    if request.param == "openai":
        server = FakeLLM().start()
        yield Case("openai", ["--base-url", server.base_url, "--model", "fake-model"],
                   {"llm": {"base_url": server.base_url, "model": "fake-model"}},
                   started=lambda: bool(server.requests), server=server,
                   details={"model": "fake-model", "endpoint": server.base_url, "digest": None})
        server.stop()
    else:
        from synthgen.llm.local import engine_stats

        before = engine_stats().get("completion_tokens", 0)
        yield Case("local", ["--backend", "local"], {"llm": {"backend": "local"}},
                   # An answer is under way (a fixed wait could outlast a short answer on a fast CPU).
                   started=lambda: engine_stats().get("completion_tokens", 0) - before >= 8,
                   details={"model": "qwen2.5-coder-1.5b-instruct-q4_k_m", "endpoint": mf.BUILTIN.file_name,
                            "digest": mf.BUILTIN.sha256})


def test_answers_caps_and_counts(case, workdir):
    async def run() -> None:
        backend = open_backend(load_config(overrides=case.overrides))
        client = backend.client
        assert backend.name == case.name and client.model == case.details["model"]
        assert backend.endpoint.endswith(case.details["endpoint"]) and backend.model_digest == case.details["digest"]
        free, capped, structured = await asyncio.gather(
            client.complete("Say hello in one word.", max_tokens=32, schema=None, schema_name="free"),
            client.complete("Count from 1 to 200, separated by commas.", max_tokens=5, schema=None, schema_name="free"),
            client.complete(STS_PROMPT, max_tokens=300, schema=answer_schema(KINDS["sts"].answer), schema_name="sts"),
        )
        assert free.finish_reason == "stop" and free.text.strip()
        assert capped.finish_reason == "length" and capped.completion_tokens == 5
        assert structured.finish_reason == "stop"
        KINDS["sts"].answer.model_validate(json.loads(structured.text))
        usage = client.usage
        assert usage.http_requests == 3
        assert usage.completion_tokens == free.completion_tokens + capped.completion_tokens + structured.completion_tokens
        assert usage.prompt_tokens == free.prompt_tokens + capped.prompt_tokens + structured.prompt_tokens >= 30
        assert usage.structured_output == {"sts": "json_schema"}
        await client.aclose()

    asyncio.run(run())


def test_a_cancelled_request_leaves_the_client_usable(case, workdir):
    if case.server is not None:
        case.server.then({"sleep": 30})

    async def run() -> None:
        client = open_backend(load_config(overrides=case.overrides)).client
        long = asyncio.create_task(client.complete(
            "Count from 1 to 5000 in words, separated by commas.", max_tokens=1500, schema=None, schema_name="x"))
        while not case.started():
            assert not long.done()
            await asyncio.sleep(0.01)
        long.cancel()
        with pytest.raises(asyncio.CancelledError):
            await long
        began = time.monotonic()
        short = await client.complete("Say yes.", max_tokens=4, schema=None, schema_name="x")
        assert short.text and time.monotonic() - began < 20  # not queued behind the cancelled answer
        assert client.usage.completion_tokens == short.completion_tokens  # the cancelled one counts nothing
        await client.aclose()

    asyncio.run(run())


def test_brainstorm_then_every_kind_through_the_cli(case, cli, workdir):
    """One brainstorm round, then one valid example of each of the six kinds."""
    result = cli("brainstorm", "--subtype", "short-short", *case.flags, "--quiet")
    assert result.status == 0, result.err
    tasks = [json.loads(line) for line in (workdir / "data/tasks/short-short.jsonl").read_text().splitlines()]
    assert tasks and all(t["kind"] == "short-short" and t["task"].strip() for t in tasks)
    assert {t["model"] for t in tasks} == {case.details["model"]}
    for subtype, task in GIVEN_TASKS.items():  # given, to keep the test short: the brainstorm's path is the same
        (workdir / f"data/tasks/{subtype}.jsonl").write_text(
            json.dumps({"kind": subtype, "task": task, "model": "hand", "seed": 0}) + "\n")
    assert set(GIVEN_TASKS) | {"short-short"} == set(SUBTYPES)

    # One example of each kind, each its own run: a rejected answer is replaced by one of the same kind.
    for kind in KINDS:
        out = workdir / "data" / f"raw-{kind}"
        result = cli("generate", "--n", 1, "--kinds", f"{kind}=1", "--languages", "English=1,French=1",
                     "--out", out, *case.flags, "--quiet")
        assert result.status == 0, result.err
        [example] = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
        assert example["kind"] == kind and example["model"] == case.details["model"]
        msgspec.convert(example, Example)
        KINDS[kind].answer.model_validate(example["raw"])
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["backend"] == case.name and manifest["endpoint"].endswith(case.details["endpoint"])
        assert manifest["model_digest"] == case.details["digest"]
        assert manifest["valid"] == 1 and manifest["requests"] == 1 + manifest["rejected_total"]
        assert manifest["completion_tokens"] > 0
