"""The API key never appears in a file, a progress line or a message, whatever fails."""

import os

import pytest

from conftest import run_subprocess
from fake_llm import error_body

KEY = "sk-proj-RECOGNISABLE-7f3a9c1e5b"

# Each scenario is a script for the server; several make the server echo the key back.
SCENARIOS = {
    "401": [{"status": 401, "body": error_body(f"Incorrect API key provided: {KEY}", "invalid_api_key")}],
    "403": [{"status": 403, "body": error_body(f"key {KEY} may not use this model")}],
    "404": [{"status": 404, "body": error_body("model not found")}],
    "400": [{"status": 400, "body": error_body(f"bad request from {KEY}")}] * 3,
    "quota": [{"status": 429, "body": error_body(f"quota of {KEY} spent", "insufficient_quota")}],
    "5xx": [{"status": 500, "body": error_body(f"upstream saw {KEY}")}] * 4 + ["ok"] * 3,
    "429": [{"status": 429, "headers": {"retry-after": "0"}, "body": error_body(f"slow down {KEY}")}] + ["ok"] * 3,
    "answers": ["bad_json", "truncated", "wrong_schema", "refusal", "empty", "drop", "ok", "ok", "ok"],
}


@pytest.mark.parametrize("how", ["env", "flag"])
def test_the_key_is_never_written_or_printed(llm, workdir, how):
    (workdir / "c.toml").write_text("[llm]\nmax_attempts = 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SYNTHGEN_"))}
    key_flag = []
    if how == "env":
        env["OPENAI_API_KEY"] = KEY
    else:
        key_flag = ["--api-key", KEY]
    printed = []
    for name, script in SCENARIOS.items():
        llm.script.clear()
        llm.then(*script)
        result = run_subprocess(
            "generate", "--n", 3, "--kinds", "sts=1", "--concurrency", 1, "--out", f"data/{name}", "--config",
            "c.toml", "--base-url", llm.base_url, *key_flag, cwd=workdir, env={**env, "COLUMNS": "200"},
        )
        assert "Traceback" not in result.err, (name, result.err)
        printed.append(result.out + result.err)
    assert all(h["authorization"] == f"Bearer {KEY}" for h in llm.request_headers)  # it was really sent
    files = [p for p in workdir.rglob("*") if p.is_file()]
    assert any(p.name == "rejects.jsonl" and p.stat().st_size for p in files)
    for path in files:
        assert KEY not in path.read_text(errors="replace"), path
    for text in printed:
        assert KEY not in text
