"""brainstorm -> generate -> dedup through the CLI, against a real HTTP server on 127.0.0.1."""

import collections
import json

from conftest import read_jsonl
from synthgen.kinds import KINDS, SUBTYPES
import msgspec

from synthgen.store import Example, Task


def generated(workdir, out="data/raw"):
    folder = workdir / out
    manifest = json.loads((folder / "manifest.json").read_text())
    rejects = read_jsonl(folder / "rejects.jsonl") if (folder / "rejects.jsonl").exists() else []
    return read_jsonl(folder / "examples.jsonl"), rejects, manifest


def test_every_kind_end_to_end(cli, endpoint, llm, workdir):
    result = cli("brainstorm", *endpoint)
    assert result.status == 0, result.err
    for subtype in SUBTYPES:
        assert f"{subtype}: 20 new tasks" in result.out
        tasks = read_jsonl(workdir / "data" / "tasks" / f"{subtype}.jsonl")
        assert len(tasks) == 20
        assert all(msgspec.convert(t, Task).kind == subtype for t in tasks)

    result = cli("generate", "--n", 120, *endpoint)
    assert result.status == 0, result.err
    examples, rejects, manifest = generated(workdir)
    assert len(examples) == 120 and rejects == []
    assert len({e["id"] for e in examples}) == 120
    kinds = collections.Counter()
    for record in examples:
        example = msgspec.convert(record, Example)
        kind = KINDS[example.kind]
        kind.answer.model_validate(example.raw)
        assert (example.query, example.positive, example.negative) == kind.normalise(example.raw)
        assert example.model == "fake-model" and example.seed == 0
        assert example.task == (kind.instruction or example.placeholders["task"])
        kinds[example.kind] += 1
    assert set(kinds) == set(KINDS)
    assert manifest["per_kind"] == dict(sorted(kinds.items()))
    assert manifest["valid"] == 120 and manifest["requests"] == 120 == manifest["http_requests"]
    assert manifest["status"] == "complete" and manifest["backend"] == "openai"
    assert manifest["prompt_tokens"] > 0 and manifest["completion_tokens"] > 0
    assert "api_key" not in manifest["config"]["llm"]

    result = cli("dedup", "data/raw", "--quiet")
    assert result.status == 0, result.err
    assert "kept 120, removed 0" in result.out
    assert len(read_jsonl(workdir / "data" / "dedup" / "examples.jsonl")) == 120


def test_generate_brainstorms_a_kind_that_has_no_tasks(cli, endpoint, llm, workdir):
    result = cli("generate", "--n", 10, "--kinds", "short-long=1,sts=1", *endpoint)
    assert result.status == 0, result.err
    # short-long is half of 10 examples at 3 per task: 2 tasks are needed.
    assert "short-long: 0 tasks in data/tasks/short-long.jsonl, 2 needed" in result.err
    assert (workdir / "data" / "tasks" / "short-long.jsonl").exists()
    assert not (workdir / "data" / "tasks" / "long-long.jsonl").exists()
    examples, _, manifest = generated(workdir)
    assert {e["kind"] for e in examples} <= {"short-long", "sts"}
    # The brainstorm's spending is reported apart, so generation's own counts add up.
    assert manifest["brainstorm"]["http_requests"] == 1
    assert manifest["brainstorm"]["subtypes"]["short-long"]["new"] == 20
    assert manifest["tasks"]["short-long"]["available"] == 20
    assert manifest["tasks"]["short-long"]["examples_per_task"]["used"] == manifest["per_kind"]["short-long"]
    assert manifest["http_requests"] == manifest["requests"] + manifest["retries"] == 10


def test_the_kind_mix_is_followed(cli, endpoint, llm, workdir):
    result = cli("generate", "--n", 300, "--kinds", "sts=0.8,bitext=0.2", "--concurrency", 32, *endpoint)
    assert result.status == 0, result.err
    examples, _, _ = generated(workdir)
    counts = collections.Counter(e["kind"] for e in examples)
    assert set(counts) == {"sts", "bitext"}
    assert 200 < counts["sts"] < 280


def test_brainstorm_parses_cleans_and_dedups_tasks(cli, endpoint, llm, workdir):
    long_task = "x" * 400
    first = {"tasks": ["Find A.", "  Find   B.\n", "Find A.", 7, None, "", long_task, {"task": "Find C."}]}
    llm.then(lambda body: (200, {}, fake_chat(json.dumps(first))))
    llm.then(lambda body: (200, {}, fake_chat("Here you go:\n```json\n" + json.dumps(["Find B.", "Find D."]) + "\n```")))
    # What a model asked for a list writes when the server forces an object (json_object mode).
    llm.then(lambda body: (200, {}, fake_chat(json.dumps({"Task 1": "Find E.", "Task 2": "Find  D."}))))
    llm.then(lambda body: (200, {}, fake_chat("I have no ideas today.")))
    out = workdir / "tasks.jsonl"
    result = cli("brainstorm", "--subtype", "long-short", "--rounds", 4, "--out", out, "--concurrency", 1, *endpoint)
    assert result.status == 0, result.err
    # The round that gave nothing was replaced by a fifth (the fake server's 20 tasks).
    assert "long-short: 24 new tasks" in result.out and "1 rounds gave nothing usable" in result.out
    assert [t["task"] for t in read_jsonl(out)][:4] == ["Find A.", "Find B.", "Find D.", "Find E."]
    # A second brainstorm appends only what the file does not hold yet.
    llm.then(lambda body: (200, {}, fake_chat(json.dumps({"tasks": ["Find A.", "Find F."]}))))
    result = cli("brainstorm", "--subtype", "long-short", "--out", out, *endpoint)
    assert "long-short: 1 new tasks" in result.out
    assert [t["task"] for t in read_jsonl(out)][-1] == "Find F."
    # An answer cut off at max_tokens keeps the tasks before the cut.
    llm.then(lambda body: (200, {}, fake_chat('{"tasks": ["Find G.", "Find H.", "Fi', finish_reason="length")))
    llm.then(lambda body: (200, {}, fake_chat('{"Task 1": "Find I.", "Task 2": "Fi', finish_reason="length")))
    result = cli("brainstorm", "--subtype", "long-short", "--rounds", 2, "--out", out, "--concurrency", 1, *endpoint)
    assert result.status == 0 and "long-short: 3 new tasks" in result.out
    # Failed rounds are replaced up to the request cap (2 rounds: 13 requests); if none gives a task,
    # the run failed: exit 1 with the reason, the file as it was.
    llm.default = lambda body: (200, {}, fake_chat("I have no ideas today."))
    sent = len(llm.requests)
    result = cli("brainstorm", "--subtype", "long-short", "--rounds", 2, "--out", out, "--concurrency", 1, *endpoint)
    assert result.status == 1 and "long-short: 0 new tasks" in result.out and len(llm.requests) - sent == 13
    assert "no round for long-short gave a usable task" in result.err
    assert [t["task"] for t in read_jsonl(out)][-4:] == ["Find F.", "Find G.", "Find H.", "Find I."]


def test_brainstorm_asks_for_a_tasks_object_in_every_mode(cli, endpoint, llm, workdir):
    """The schema and the prompt say {"tasks": [...]}: json_object mode forces an object, so a list cannot be asked."""
    llm.refused_formats = {"json_schema"}
    result = cli("brainstorm", "--subtype", "short-long", "--rounds", 2, "--concurrency", 1, *endpoint)
    assert result.status == 0, result.err
    first, second, third = llm.requests
    schema = first["response_format"]["json_schema"]["schema"]
    assert schema["type"] == "object" and schema["required"] == ["tasks"]
    assert schema["properties"]["tasks"] == {"type": "array", "items": {"type": "string"}}
    assert [r["response_format"]["type"] for r in (second, third)] == ["json_object"] * 2
    assert all('{"tasks": [' in r["messages"][-1]["content"] for r in llm.requests)
    assert len(read_jsonl(workdir / "data/tasks/short-long.jsonl")) == 2 * llm.tasks_per_answer


def fake_chat(text, finish_reason="stop"):
    from fake_llm import chat_body

    return chat_body(text, finish_reason)


def test_same_seed_gives_the_same_prompts_and_other_seeds_do_not(cli, endpoint, llm, workdir):
    assert cli("brainstorm", *endpoint).status == 0
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        llm.requests.clear()
        result = cli("generate", "--n", 60, "--seed", seed, "--out", f"data/{name}", "--concurrency", 8, *endpoint)
        assert result.status == 0, result.err
        examples, _, _ = generated(workdir, f"data/{name}")
        by_index = {e["index"]: e for e in examples}
        runs[name] = (sorted(llm.prompts()), [(i, by_index[i]["placeholders"]) for i in sorted(by_index)])
    assert runs["a"] == runs["b"]
    assert runs["a"][0] != runs["c"][0]


def test_rejected_answers_are_kept_counted_and_replaced(cli, endpoint, llm, workdir):
    assert cli("brainstorm", "--subtype", "short-long", *endpoint).status == 0
    llm.then("bad_json", "fenced", "wrong_schema", "prose", "truncated", "empty", "empty_field", "refusal",
             "no_choices")
    result = cli("generate", "--n", 20, "--kinds", "short-long=1", "--concurrency", 1, *endpoint)
    assert result.status == 0, result.err
    examples, rejects, manifest = generated(workdir)
    assert len(examples) == 20
    reasons = collections.Counter(r["reason"] for r in rejects)
    assert reasons == {"invalid_json": 1, "schema": 2, "truncated": 1, "empty": 2, "refusal": 1}
    assert manifest["rejected"] == dict(sorted(reasons.items()))
    assert manifest["requests"] == 27 == manifest["valid"] + manifest["rejected_total"]
    assert {r["index"] for r in rejects}.isdisjoint(e["index"] for e in examples)
    assert sorted([r["index"] for r in rejects] + [e["index"] for e in examples]) == list(range(27))
    bad = next(r for r in rejects if r["reason"] == "invalid_json")
    assert bad["text"].startswith('{"user_query"') and bad["kind"] == "short-long"
    assert "rejected: empty 2, invalid_json 1, refusal 1, schema 2, truncated 1" in result.out


def test_a_run_stops_short_at_the_request_cap(cli, endpoint, llm, workdir):
    llm.default = "bad_json"
    result = cli("generate", "--n", 5, "--kinds", "sts=1", "--max-requests", 8, *endpoint)
    assert result.status == 1
    assert "stopped short of 5" in result.err
    _, rejects, manifest = generated(workdir)
    assert len(rejects) == 8 == manifest["requests"] and manifest["status"] == "stopped"
    assert len(llm.requests) == 8


def test_structured_output_falls_back_once_and_remembers(cli, endpoint, llm, workdir):
    llm.refused_formats = {"json_schema"}
    result = cli("generate", "--n", 6, "--kinds", "sts=1", "--concurrency", 1, *endpoint)
    assert result.status == 0, result.err
    formats = [(r.get("response_format") or {}).get("type") for r in llm.requests]
    assert formats == ["json_schema"] + ["json_object"] * 6
    assert json.loads((workdir / "data/raw/manifest.json").read_text())["structured_output"] == {"sts": "json_object"}


def test_structured_output_falls_back_to_none(cli, endpoint, llm, workdir):
    llm.refused_formats = {"json_schema", "json_object"}
    result = cli("generate", "--n", 4, "--kinds", "bitext=1", "--concurrency", 1, *endpoint)
    assert result.status == 0, result.err
    formats = [(r.get("response_format") or {}).get("type") for r in llm.requests]
    assert formats == ["json_schema", "json_object"] + [None] * 4


def test_json_schema_sent_is_the_kinds_schema(cli, endpoint, llm, workdir):
    assert cli("generate", "--n", 1, "--kinds", "sts=1", *endpoint).status == 0
    request = llm.requests[0]
    schema = request["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["S1", "S2", "S3"] and schema["additionalProperties"] is False
    assert request["temperature"] == 1.0 and request["top_p"] == 1.0 and request["model"] == "fake-model"


def test_tasks_must_be_a_folder_and_lines_that_are_not_tasks_are_told(cli, endpoint, llm, workdir):
    (workdir / "afile").write_text("x")
    result = cli("generate", "--n", 1, "--kinds", "long-long=1", "--tasks", "afile", *endpoint)
    assert result.status == 2 and "--tasks must be a folder of task files, and afile is a file" in result.err
    tasks = workdir / "data/tasks/long-long.jsonl"
    tasks.parent.mkdir(parents=True)
    tasks.write_text('{"kind": "long-long", "task": "Match a long text to its twin.", "model": "m"}\n'
                     'not json\n{"kind": "sts", "task": "x", "model": "m"}\n')
    result = cli("generate", "--n", 1, "--kinds", "long-long=1", *endpoint)
    assert result.status == 0, result.err
    assert "long-long.jsonl: 2 lines are not long-long tasks and were passed over" in result.err
