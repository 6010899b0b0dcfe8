"""generate --shard K/M and synthgen merge, against real HTTP servers on 127.0.0.1; and --ray on a
local Ray instance with 2 workers."""

import json
import os
import shutil

import pytest

from conftest import read_jsonl, run_subprocess
from fake_llm import FakeLLM
from synthgen.config import load_config
from synthgen.prompts import Templates
from synthgen.sampling import Planner

SYMMETRIC = ["--kinds", "sts=1,bitext=1"]  # no brainstorm needed: the shard tests stay about shards


def manifest_of(folder):
    return json.loads((folder / "manifest.json").read_text())


def indices(folder, name="examples.jsonl"):
    path = folder / name
    return sorted(record["index"] for record in read_jsonl(path)) if path.exists() else []


def shard(cli, endpoint, spec, n, *more):
    return cli("generate", "--n", n, "--shard", spec, *SYMMETRIC, *endpoint, *more)


@pytest.fixture
def second_llm():
    """A second server whose answers never equal the first one's."""
    server = FakeLLM(first_number=1_000_000).start()
    yield server
    server.stop()


def test_a_shard_asks_for_its_residue_of_the_plan_and_replaces_within_it(cli, endpoint, llm, workdir):
    llm.then("bad_json", "truncated")  # the shard's first two answers are rejected and replaced
    result = shard(cli, endpoint, "1/3", 9, "--concurrency", 1)
    assert result.status == 0, result.err
    folder = workdir / "data" / "raw-shards" / "1-of-3"
    assert "once every shard is: synthgen merge data/raw-shards --out data/raw" in result.out
    # Its share of 9 is indices 1, 4, 7; the two rejected are replaced by the next of its residue, 10 and 13.
    assert indices(folder, "rejects.jsonl") == [1, 4]
    assert indices(folder) == [7, 10, 13]
    # The very prompts the whole plan gives those indices: the same plan, only a part of it.
    config = load_config(None, {}, {"kinds": {"sts": 1, "bitext": 1}})
    planner, templates = Planner(config, {}), Templates(None)
    expected = [templates.generate[item.kind].render(item.placeholders)
                for item in map(planner.item, [1, 4, 7, 10, 13])]
    assert llm.prompts() == expected
    manifest = manifest_of(folder)
    assert manifest["shard"] == {"index": 1, "count": 3, "plan_n": 9}
    assert manifest["n"] == 3 and manifest["valid"] == 3 and manifest["status"] == "complete"

    requests = len(llm.requests)  # a rerun resumes it: nothing is asked again
    assert shard(cli, endpoint, "1/3", 9).status == 0
    assert len(llm.requests) == requests


def test_shards_merge_into_the_run_one_machine_would_have_made(cli, endpoint, llm, second_llm, workdir):
    assert cli("generate", "--n", 8, "--out", "whole", *SYMMETRIC, *endpoint).status == 0
    # The two shards on two machines (here: two servers); each writes its own folder.
    assert shard(cli, endpoint, "0/2", 8).status == 0
    assert shard(cli, ["--base-url", second_llm.base_url, "--model", "fake-model", "-q"], "1/2", 8).status == 0

    result = cli("merge", "data/raw-shards", "--out", "data/raw")
    assert result.status == 0, result.err
    assert "merged 2 of 2 shards: 8 of 8 examples in data/raw/examples.jsonl" in result.out
    merged, whole = read_jsonl(workdir / "data/raw/examples.jsonl"), read_jsonl(workdir / "whole/examples.jsonl")
    plan = {e["index"]: (e["kind"], e["task"], e["language"], e["placeholders"]) for e in merged}
    assert plan == {e["index"]: (e["kind"], e["task"], e["language"], e["placeholders"]) for e in whole}
    manifest, shards = manifest_of(workdir / "data/raw"), [manifest_of(workdir / f"data/raw-shards/{k}-of-2")
                                                           for k in range(2)]
    assert manifest["fingerprint"] == manifest_of(workdir / "whole")["fingerprint"] == shards[0]["fingerprint"]
    assert manifest["status"] == "complete" and manifest["n"] == 8 and manifest["valid"] == 8
    assert manifest["shard"] is None and manifest["shards"]["missing"] == []
    assert [s["valid"] for s in manifest["shards"]["merged"]] == [4, 4]
    for field in ("requests", "http_requests", "prompt_tokens", "completion_tokens"):
        assert manifest[field] == sum(s[field] for s in shards), field
    assert manifest["endpoint"] == f"{llm.base_url}, {second_llm.base_url}"

    # The merged folder is a run like any other: generate resumes it and asks nothing again.
    asked = len(llm.requests)
    result = cli("generate", "--n", 8, *SYMMETRIC, *endpoint)
    assert result.status == 0, result.err
    assert "resuming data/raw: 8 valid" in result.err and len(llm.requests) == asked


def test_a_merged_runs_cost_is_its_shards_costs_summed(cli, endpoint, llm, workdir):
    priced = ("--price-in", "3", "--price-out", "7", "--budget", "50")
    assert shard(cli, endpoint, "0/2", 8, *priced).status == 0
    assert shard(cli, endpoint, "1/2", 8, *priced).status == 0
    assert cli("merge", "data/raw-shards", "--out", "data/raw").status == 0
    shards = [manifest_of(workdir / f"data/raw-shards/{k}-of-2")["cost"] for k in range(2)]
    cost = manifest_of(workdir / "data/raw")["cost"]
    assert cost["usd"] == pytest.approx(sum(s["usd"] for s in shards)) and cost["usd"] > 0
    assert cost["price"] == shards[0]["price"] and cost["budget_usd"] is None  # a shard's budget was its own


def test_a_shard_set_with_a_shard_missing_is_merged_and_reported(cli, endpoint, llm, workdir):
    assert shard(cli, endpoint, "0/3", 10).status == 0
    assert shard(cli, endpoint, "2/3", 10).status == 0
    result = cli("merge", "data/raw-shards", "--out", "data/raw")
    assert result.status == 1
    assert "merged 2 of 3 shards: 7 of 10 examples" in result.out
    assert "shard 1/3 is missing: 3 examples, plan indices 1, 4, 7" in result.err
    assert "Traceback" not in result.err
    manifest = manifest_of(workdir / "data/raw")
    assert manifest["status"] == "incomplete" and manifest["shards"]["missing"] == [1]
    assert indices(workdir / "data/raw") == [0, 2, 3, 5, 6, 8, 9]

    # The missing shard runs later; merging again replaces the first merge.
    assert shard(cli, endpoint, "1/3", 10).status == 0
    result = cli("merge", "data/raw-shards", "--out", "data/raw")
    assert result.status == 0, result.err
    assert indices(workdir / "data/raw") == list(range(10))
    assert manifest_of(workdir / "data/raw")["status"] == "complete"


def test_a_shard_stopped_short_is_reported_with_the_indices_it_has_not_asked(cli, endpoint, llm, workdir):
    assert shard(cli, endpoint, "0/2", 12, "--max-requests", 2, "--concurrency", 1).status == 1  # capped at 2 of 6
    assert shard(cli, endpoint, "1/2", 12).status == 0
    result = cli("merge", "data/raw-shards/0-of-2", "data/raw-shards/1-of-2", "--out", "data/raw")
    assert result.status == 1
    assert "shard 0/2 has 2 of its 6 examples (stopped, plan indices 4, 6, 8, 10 not asked yet)" in result.err


def test_an_example_repeated_across_shards_goes_to_the_rejects(cli, workdir):
    # Two machines whose model answers alike: every example of the second shard repeats the first's.
    first, second = FakeLLM().start(), FakeLLM().start()
    try:
        for spec, server in (("0/2", first), ("1/2", second)):
            flags = ["--base-url", server.base_url, "--model", "m", "-q", "--concurrency", 1]
            assert cli("generate", "--n", 6, "--shard", spec, "--kinds", "sts=1", *flags).status == 0
    finally:
        first.stop()
        second.stop()
    result = cli("merge", "data/raw-shards", "--out", "data/raw")
    assert result.status == 0, result.err
    assert "3 examples repeated an earlier shard's and were moved to the rejects" in result.out
    rejects = read_jsonl(workdir / "data/raw/rejects.jsonl")
    assert sorted(r["index"] for r in rejects) == [1, 3, 5] and {r["reason"] for r in rejects} == {"duplicate"}
    assert all(r["usage"]["completion_tokens"] > 0 for r in rejects)  # what they cost is still counted
    manifest = manifest_of(workdir / "data/raw")
    assert manifest["valid"] == 3 and manifest["rejected"] == {"duplicate": 3} and manifest["requests"] == 6
    assert manifest["shards"]["duplicates"] == 3


def test_a_shard_folder_resumes_only_as_its_own_shard(cli, endpoint, llm, workdir):
    assert shard(cli, endpoint, "0/2", 4).status == 0
    shards = workdir / "data" / "raw-shards"
    shutil.copytree(shards / "0-of-2", shards / "1-of-2")
    asked = len(llm.requests)
    result = shard(cli, endpoint, "1/2", 4)
    assert result.status == 2
    assert result.err.strip().splitlines()[-1].endswith(
        "data/raw-shards/1-of-2 holds shard 0/2, not --shard 1/2: use another --out, or --overwrite to start over")
    assert len(llm.requests) == asked


def test_merge_refuses_shards_of_different_plans(cli, endpoint, llm, workdir):
    assert shard(cli, endpoint, "0/2", 4, "--out", "a").status == 0
    assert shard(cli, endpoint, "1/2", 4, "--out", "b", "--seed", 7).status == 0
    assert shard(cli, endpoint, "1/3", 4, "--out", "c").status == 0
    assert shard(cli, endpoint, "1/2", 6, "--out", "d").status == 0
    assert cli("generate", "--n", 2, "--out", "plain", *SYMMETRIC, *endpoint).status == 0
    cases = [
        (["a-shards", "b-shards"], "are shards of different plans (seed differ)"),
        (["a-shards", "c-shards"], "is shard 0/2 and"),
        (["a-shards", "d-shards"], "is a shard of --n 4 and"),
        (["a-shards", "a-shards/0-of-2"], "shard 0/2 is given twice"),
        (["a-shards", "plain"], "plain is not a shard"),
        (["nowhere"], "no such folder: nowhere"),
        (["a-shards", "--out", "a-shards/merged"], "are one inside the other"),
        (["a-shards", "--out", "plain"], "plain holds a run that is not a merge of shards"),
    ]
    for args, message in cases:
        result = cli("merge", *args)
        assert result.status == 2, (args, result.out, result.err)
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.err)
    assert not (workdir / "data" / "raw").exists()  # nothing written by a refused merge


@pytest.mark.parametrize("args,message", [
    (["--shard", "3/3"], "--shard 3/3: K must be from 0 to M-1 (2)"),
    (["--shard", "x"], "--shard 'x' is not K/M"),
    (["--shard", "0/0"], "M must be from 1"),
    (["--shards", "2"], "--shards is for --ray"),
    (["--ray", "local", "--shard", "0/2"], "give --shard or --ray, not both"),
    (["--ray", "local", "--api-key", "sk-secret"], "set OPENAI_API_KEY on every node"),
    # Rounds plan the whole run's indices, not a shard's residue: refused together.
    (["--shard", "0/2", "--batch"], "do not go with --shard or --ray"),
    (["--shard", "1/2", "--write-requests", "requests.jsonl"], "do not go with --shard or --ray"),
    (["--ray", "local", "--batch"], "do not go with --shard or --ray"),
])
def test_shard_flags_that_cannot_be_used_are_one_line_and_status_2(cli, args, message):
    result = cli("generate", "--n", 4, *args)
    assert result.status == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.err
    assert "sk-secret" not in result.err


def test_a_merge_and_a_resume_count_each_way_the_answers_came(workdir):
    from synthgen.merge import merge
    from synthgen.store import BatchJob, BatchRecord, Manifest, RunFolder, ShardOf

    def example(index, via):
        usage = {"http_requests": 1, "prompt_tokens": 10, "completion_tokens": 5, **({"via": via} if via else {})}
        return {"id": f"e{index}", "index": index, "kind": "sts", "task": "t", "language": "English",
                "query": f"q{index}", "positive": f"p{index}", "negative": None, "placeholders": {}, "raw": {},
                "model": "m", "seed": 1, "usage": usage}

    record = BatchRecord(rounds=1, jobs=[BatchJob(api="files", round=0, requests=1, indices=[(0, 1)], file="r")])
    for k, vias in ((0, ["results-file", None]), (1, ["batch", "results-file"])):
        folder = RunFolder(workdir / "runs-shards" / f"{k}-of-2")
        folder.path.mkdir(parents=True)
        folder.write_manifest(Manifest(fingerprint="f", status="complete", n=2, shard=ShardOf(k, 2, 4),
                                       batch=record if k == 0 else None))
        lines = [json.dumps(example(index, via)) for index, via in zip((k, k + 2), vias)]
        (folder.path / "examples.jsonl").write_text("\n".join(lines) + "\n")

    result = merge([workdir / "runs-shards"], workdir / "runs")
    manifest = manifest_of(workdir / "runs")
    assert manifest["valid"] == 4 and manifest["prompt_tokens"] == 40
    assert manifest["via"] == {"batch": {"http_requests": 1, "prompt_tokens": 10, "completion_tokens": 5},
                               "results-file": {"http_requests": 2, "prompt_tokens": 20, "completion_tokens": 10}}
    assert manifest["batch"] is None  # a shard's rounds are its own folder's
    # Resuming the merged run counts them as the merge did.
    state = RunFolder(workdir / "runs").read_state()
    assert state.via == result.state.via and state.via["results-file"].prompt_tokens == 20


def test_a_shard_brainstorms_nothing_and_says_how_to_make_the_tasks(cli, endpoint, llm):
    result = cli("generate", "--n", 9, "--shard", "0/3", "--kinds", "short-long=1", *endpoint)
    assert result.status == 2
    assert ("no short-long tasks in data/tasks, and a shard does not brainstorm" in result.err
            and "synthgen brainstorm --subtype short-long --n-tasks 3 --tasks data/tasks" in result.err)
    assert llm.requests == []


def test_ray_runs_the_shards_on_two_workers_and_merges_them(llm, second_llm, workdir):
    pytest.importorskip("ray", reason="the ray extra")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SYNTHGEN_", "RAY_"))}
    result = run_subprocess("generate", "--n", 24, "--ray", "local", "--shards", 2, "--kinds", "short-long=1,sts=1",
                            "--base-url", llm.base_url, "--base-url", second_llm.base_url, "--model", "m", "-q",
                            cwd=workdir, env=env)
    assert result.status == 0, result.err
    assert "merged 2 of 2 shards: 24 of 24 examples" in result.out
    out, shards = workdir / "data" / "raw", workdir / "data" / "raw-shards"
    # The tasks were brainstormed once, before the shards, which both planned with them.
    assert len(read_jsonl(workdir / "data/tasks/short-long.jsonl")) == 20
    manifest = manifest_of(out)
    assert manifest["brainstorm"]["http_requests"] == 1
    assert manifest["status"] == "complete" and manifest["valid"] == 24
    for k in range(2):
        part = manifest_of(shards / f"{k}-of-2")
        assert part["shard"]["index"] == k and part["fingerprint"] == manifest["fingerprint"]
        assert part["valid"] == 12 and all(i % 2 == k for i in indices(shards / f"{k}-of-2"))
    assert indices(out) == list(range(24))
    # Each shard spread its requests over both endpoints given.
    assert set(manifest["endpoints"]) == {llm.base_url, second_llm.base_url}
    assert all(counts["answered"] > 0 for counts in manifest["endpoints"].values())
    assert len(llm.requests) + len(second_llm.requests) == 24 + 1
