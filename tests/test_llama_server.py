"""synthgen against llama.cpp's own OpenAI-compatible server: the real `python -m llama_cpp.server`
on 127.0.0.1, serving the embedded model's file.

That server answers a json_schema response_format with HTTP 500, so synthgen falls back to
json_object, which forces the answer to be an object: the brainstorm must ask for {"tasks": [...]}
(a model asked for a bare list then writes {"Task 1": "...", ...} and the brainstorm gave nothing).
"""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import msgspec
import pytest

pytest.importorskip("llama_cpp.server.app", reason="needs llama_cpp.server: pip install 'synthgen[server]'")

from synthgen.kinds import KINDS, SUBTYPES  # noqa: E402
from synthgen.llm import model_file as mf  # noqa: E402
from synthgen.store import Example  # noqa: E402

MODEL = "qwen-local"  # the alias the server answers to
READY_TIMEOUT = 180.0  # seconds for the server to load the model and answer /v1/models
# llama_cpp.server answers one request at a time and applies its JSON grammar to the whole
# vocabulary at every token: a few tokens a second on 2 cores. So the test asks for short answers
# (few tasks, the shortest placeholder values, tight caps), and a slow answer is waited for, never
# abandoned and sent again while the server still works on it.
TEST_CONFIG = """
[llm]
timeout = 900.0
max_attempts = 2

[llm.max_tokens]
brainstorm = 300
short-long = 700
long-short = 400
short-short = 200
long-long = 900
sts = 300
bitext = 300

[brainstorm]
num_tasks = 5

[placeholders.short-long]
query_length = ["less than 5 words"]
num_words = [50]

[placeholders.long-short]
num_words = ["less than 10"]

[placeholders.sts]
unit = ["sentence"]

[placeholders.bitext]
unit = ["sentence"]
"""
GIVEN_TASKS = {  # given, to keep the test short: short-long is brainstormed through the server
    "long-short": "Classify a customer review of a restaurant as positive, negative or mixed.",
    "short-short": "Given a product title, find another listing title that names the same product.",
    "long-long": "Given a news article, retrieve other articles about the same event.",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def llama_server(request, tmp_path_factory):
    """llama_cpp.server on a free port of 127.0.0.1 with the embedded model file; its base URL."""
    model = mf.resolve_model()  # the built-in model, assembled from the chunk packages if need be
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model.path), "--model_alias", MODEL,
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
             "--n_threads_batch", "2", "--verbose", "False"],
            stdout=sink, stderr=subprocess.STDOUT,
        )
    request.addfinalizer(lambda: stop(proc))
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=5) as response:
                if response.status == 200 and MODEL in response.read().decode():
                    return base_url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"llama_cpp.server not ready after {READY_TIMEOUT:.0f} s:\n"
                        f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


def test_brainstorm_and_every_kind_on_llama_cpp_server(llama_server, cli, workdir):
    (workdir / "test.toml").write_text(TEST_CONFIG)
    endpoint = ["--backend", "openai", "--base-url", llama_server, "--model", MODEL, "--concurrency", "1",
                "--config", workdir / "test.toml", "--quiet"]
    for subtype, task in GIVEN_TASKS.items():
        (workdir / f"data/tasks/{subtype}.jsonl").parent.mkdir(parents=True, exist_ok=True)
        (workdir / f"data/tasks/{subtype}.jsonl").write_text(
            json.dumps({"kind": subtype, "task": task, "model": "hand", "seed": 0}) + "\n")
    assert set(GIVEN_TASKS) | {"short-long"} == set(SUBTYPES)

    # One example of each kind, each its own run: a rejected answer is replaced by one of the same
    # kind. The first run has no short-long task yet, so it brainstorms them through the server.
    modes = {}
    for kind in KINDS:
        out = workdir / "data" / f"raw-{kind}"
        result = cli("generate", "--n", 1, "--kinds", f"{kind}=1", "--languages", "English=1,French=1",
                     "--max-requests", 6, "--out", out, *endpoint)
        assert result.status == 0, result.err
        [example] = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
        assert example["kind"] == kind and example["model"] == MODEL
        msgspec.convert(example, Example)
        KINDS[kind].answer.model_validate(example["raw"])
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["backend"] == "openai" and manifest["valid"] == 1
        modes.update(manifest["structured_output"])
        if kind == "short-long":
            assert manifest["brainstorm"]["http_requests"] >= 1
    # The server refuses json_schema (HTTP 500); json_object is what every schema settles on.
    assert modes == {"task_list": "json_object", **{kind: "json_object" for kind in KINDS}}

    tasks = [json.loads(line) for line in (workdir / "data/tasks/short-long.jsonl").read_text().splitlines()]
    assert len(tasks) >= 3 and all(t["kind"] == "short-long" and t["model"] == MODEL for t in tasks)
    assert len({t["task"] for t in tasks}) == len(tasks) and all(t["task"].strip() for t in tasks)
