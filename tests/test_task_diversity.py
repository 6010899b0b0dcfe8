"""Enough distinct tasks for N, dealt evenly, and brainstorming that stops when the model repeats
itself: against a loopback server whose brainstorm answers repeat a limited pool of tasks, each
time written a little differently."""

import collections
import json
import math

import pytest

from conftest import read_jsonl
from synthgen.config import load_config
from synthgen.store import task_key
from synthgen.tasks import diversity, needed_tasks


def manifest_of(workdir, out="data/raw"):
    return json.loads((workdir / out / "manifest.json").read_text())


def brainstorm_numbers(llm):
    """The fake's request number of each brainstorm request, in arrival order."""
    return [n for n, body in enumerate(llm.requests) if body["messages"][-1]["content"].startswith("Brainstorm")]


def test_kept_tasks_are_distinct_and_the_yield_is_what_the_answers_gave(cli, endpoint, llm, workdir):
    llm.task_pool = 60
    # short-long alone, 300 examples at 3 per task: 100 tasks; one request at a time, so the
    # rounds answer in order and the expected yield can be replayed from the fake's answers.
    result = cli("generate", "--n", 300, "--kinds", "short-long=1", "--concurrency", 1, *endpoint)
    assert result.status == 0, result.err
    tasks = [t["task"] for t in read_jsonl(workdir / "data/tasks/short-long.jsonl")]
    keys = [task_key(t) for t in tasks]
    assert len(set(keys)) == len(keys) == 60  # the whole pool, each once, whatever its spelling
    known: set[str] = set()
    new_by_round = []
    for number in brainstorm_numbers(llm):
        answer = {task_key(t) for t in llm.brainstormed(number)}
        new_by_round.append(len(answer - known))
        known |= answer
    record = manifest_of(workdir)["brainstorm"]["subtypes"]["short-long"]
    assert record["new_by_round"] == new_by_round
    assert record["new"] == 60 and record["asked"] == 20 * len(new_by_round)
    assert record["yield"] == round(60 / record["asked"], 4)


def test_the_floor_stops_brainstorming_and_the_run_goes_on(cli, endpoint, llm, workdir):
    llm.task_pool = 30  # 100 tasks wanted, 30 to be had
    result = cli("generate", "--n", 300, "--kinds", "short-long=1", *endpoint)
    assert result.status == 0, result.err
    assert "short-long: brainstorming stopped at 30 of the 100 tasks wanted" in result.err
    assert "below the floor of 10%" in result.err and "the run goes on with 30" in result.err
    manifest = manifest_of(workdir)
    record = manifest["brainstorm"]["subtypes"]["short-long"]
    assert record["exhausted"] and record["tasks"] == 30
    # Stopped within a window of barren rounds (10) of the pool running dry, plus those in flight.
    first_barren = next(i for i, new in enumerate(record["new_by_round"]) if sum(record["new_by_round"][i:]) == 0)
    assert record["rounds"] <= first_barren + 10 + 16
    assert manifest["valid"] == 300
    # The 30 tasks are dealt evenly: 10 examples each.
    uses = collections.Counter(e["task"] for e in read_jsonl(workdir / "data/raw/examples.jsonl"))
    assert len(uses) == 30 and set(uses.values()) == {10}
    assert manifest["tasks"]["short-long"]["examples_per_task"] == {"used": 30, "min": 10, "median": 10, "max": 10}


def test_a_default_mix_of_3000_runs_on_n_over_3_distinct_tasks_used_evenly(cli, endpoint, llm, workdir):
    llm.task_pool = 2000
    n = 3000
    result = cli("generate", "--n", n, "--concurrency", 64, *endpoint)
    assert result.status == 0, result.err
    config = load_config(None, {}, {})
    weights = config.active_kinds()
    asymmetric = ("short-long", "long-short", "short-short", "long-long")
    share = sum(weights[k] for k in asymmetric) / sum(weights.values())
    examples = read_jsonl(workdir / "data/raw/examples.jsonl")
    assert len(examples) == n
    uses = collections.Counter((e["kind"], e["task"]) for e in examples if e["kind"] in asymmetric)
    assert len(uses) >= n * share / 3
    needed = needed_tasks(n, weights, 3)
    manifest = manifest_of(workdir)
    for kind in asymmetric:
        counts = [c for (k, _), c in uses.items() if k == kind]
        mean = sum(counts) / len(counts)
        assert max(counts) <= 2 * mean and max(counts) - min(counts) <= 1, kind
        assert manifest["tasks"][kind]["available"] >= needed[kind]
        assert manifest["tasks"][kind]["examples_per_task"]["max"] == max(counts)
    # stats tells the same story, with the diversity of the tasks and the brainstorm's yield.
    result = cli("stats", "data/raw")
    assert result.status == 0, result.err
    assert "tasks (diversity" in result.out and "brainstorm short-long:" in result.out


def test_each_round_asks_about_a_topic_and_shows_tasks_to_differ_from(cli, endpoint, llm, workdir):
    result = cli("brainstorm", "--subtype", "long-short", "--n-tasks", 200, "--concurrency", 1, *endpoint)
    assert result.status == 0, result.err
    assert "long-short: 200 new tasks" in result.out and "200 in all" in result.out
    config = load_config(None, {}, {})
    prompts = llm.prompts()
    assert len(prompts) == 10
    topics = [next(t for t in config.brainstorm.topics if f"write tasks about {t}," in p) for p in prompts]
    assert len(set(topics)) >= 5
    assert all(any(f"as {persona} would" in p for persona in config.brainstorm.personas) for p in prompts)
    assert "- (none yet)" in prompts[0]
    kept = [t["task"] for t in read_jsonl(workdir / "data/tasks/long-short.jsonl")]
    shown = [line[2:] for line in prompts[-1].splitlines() if line.startswith("- ") and line[2:] in kept]
    assert len(shown) == config.brainstorm.shown_tasks
    # Every task records the topic and persona of its round.
    record = read_jsonl(workdir / "data/tasks/long-short.jsonl")[-1]
    assert record["topic"] == topics[-1] and record["persona"] in config.brainstorm.personas
    # A file that holds enough is used as it is.
    result = cli("brainstorm", "--subtype", "long-short", "--n-tasks", 150, *endpoint)
    assert "long-short: 0 new tasks" in result.out and len(llm.prompts()) == 10


def test_a_resumed_run_keeps_the_tasks_it_was_planned_with(cli, endpoint, llm, workdir):
    assert cli("generate", "--n", 30, "--kinds", "short-long=1", *endpoint).status == 0
    sent = len(brainstorm_numbers(llm))
    result = cli("generate", "--n", 300, "--kinds", "short-long=1", *endpoint)
    assert result.status == 0, result.err
    assert "resuming" in result.err and len(brainstorm_numbers(llm)) == sent
    assert "short-long: the run was planned with 20 tasks, fewer than the 100 this n needs" in result.err
    # A new run folder brainstorms the 100 tasks it needs.
    result = cli("generate", "--n", 300, "--kinds", "short-long=1", "--out", "data/bigger", *endpoint)
    assert result.status == 0, result.err
    assert manifest_of(workdir, "data/bigger")["tasks"]["short-long"]["available"] >= 100


def test_needed_tasks_follow_the_mix():
    assert needed_tasks(3000, {"short-long": 0.3, "sts": 0.7}, 3) == {"short-long": 300, "sts": 700}
    assert needed_tasks(10, {"short-long": 1, "long-long": 1}, 3) == {"short-long": 2, "long-long": 2}
    assert needed_tasks(1, {"short-long": 1}, 3.3) == {"short-long": 1}


def test_diversity_figures():
    same = diversity(["Find recipes for leftovers."] * 5)
    assert same["jaccard_distance"] == 0 and same["distinct_2"] == pytest.approx(0.2)
    apart = diversity(["alpha beta", "gamma delta", "epsilon zeta"])
    assert apart["jaccard_distance"] == 1 and apart["distinct_2"] == 1
    half = diversity(["a b c", "a b d"])  # 2 shared words of 4
    assert half["jaccard_distance"] == 0.5
    assert diversity(["one task"])["jaccard_distance"] is None
    many = diversity([f"task number {i} about {i % 7}" for i in range(1000)])  # sampled pairs
    assert 0 < many["jaccard_distance"] < 1
    assert math.isclose(many["jaccard_distance"], diversity([f"task number {i} about {i % 7}"
                                                            for i in range(1000)])["jaccard_distance"])


@pytest.mark.parametrize("text,message", [
    ('[brainstorm.topics]\n"law" = -1\n', "topic weights must not be negative"),
    ("[brainstorm]\npersonas = []\n", "brainstorm.personas"),
    ("[brainstorm]\nexamples_per_task = 0\n", "brainstorm.examples_per_task"),
    ("[brainstorm]\nmin_yield = 1.5\n", "brainstorm.min_yield"),
])
def test_bad_brainstorm_settings_are_one_line(cli, endpoint, workdir, text, message):
    (workdir / "bad.toml").write_text(text)
    result = cli("generate", "--n", 5, "--config", "bad.toml", *endpoint)
    assert result.status == 2 and message in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_n_tasks_and_rounds_together_are_refused(cli, endpoint):
    result = cli("brainstorm", "--subtype", "short-long", "--n-tasks", 10, "--rounds", 2, *endpoint)
    assert result.status == 2 and "give --n-tasks or --rounds, not both" in result.err


def test_with_the_floor_off_a_batch_that_adds_nothing_still_ends_brainstorming(cli, endpoint, llm, workdir):
    llm.task_pool = 20
    (workdir / "nofloor.toml").write_text("[brainstorm]\nmin_yield = 0\n")
    result = cli("brainstorm", "--subtype", "short-long", "--n-tasks", 50, "--config", "nofloor.toml", *endpoint)
    assert result.status == 0, result.err
    assert "short-long: 20 new tasks" in result.out and "gave no new task" in result.out
