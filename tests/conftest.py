import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from fake_llm import FakeLLM
from synthgen.cli import main

pytest_plugins = ["fake_embeddings"]  # its `serve` fixture: embeddings servers on 127.0.0.1

# matplotlib (the train extra: train and eval passkey plot) writes a font cache into its config
# folder when first imported: a temporary folder, not ~/.cache. Set before any test imports it.
if "MPLCONFIGDIR" not in os.environ:
    os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="synthgen-tests-matplotlib-")
    atexit.register(shutil.rmtree, os.environ["MPLCONFIGDIR"], True)

# Tests never need a network: the Hugging Face libraries look nothing up on the hub. Set before any
# test imports them (huggingface_hub reads it once, at import: a test that set it later, after
# another had imported the library, waited out the hub's retries).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

ENV_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "SYNTHGEN_MODEL", "SYNTHGEN_BACKEND", "SYNTHGEN_CONCURRENCY")


@dataclass
class Result:
    status: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    """Every test runs in its own empty folder, with no endpoint in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def llm():
    server = FakeLLM().start()
    yield server
    server.stop()


@pytest.fixture
def cli(capsys):
    """Run synthgen in this process, as the console script would."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            status = 0
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


@pytest.fixture
def endpoint(llm):
    """The flags that point synthgen at the fake server."""
    return ["--base-url", llm.base_url, "--model", "fake-model", "--quiet"]


def run_subprocess(*args: str, cwd: Path, env: dict | None = None) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "synthgen", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, env=env, timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
