import collections
import math

import pytest

from synthgen.config import load_config
from synthgen.kinds import KINDS, SUBTYPES
from synthgen.sampling import Planner

TASKS = {kind: [f"{kind} task {i}" for i in range(7)] for kind in SUBTYPES}


def plan(seed=0, count=200, **overrides):
    config = load_config(overrides={"generate": {"seed": seed}, **overrides})
    planner = Planner(config, TASKS)
    return [planner.item(i) for i in range(count)]


def test_same_seed_same_plan_whatever_the_order():
    config = load_config(overrides={"generate": {"seed": 7}})
    forward = [Planner(config, TASKS).item(i) for i in range(300)]
    planner = Planner(config, TASKS)
    backward = [planner.item(i) for i in reversed(range(300))][::-1]
    assert forward == backward


def test_different_seeds_differ():
    a, b = plan(seed=1), plan(seed=2)
    assert sum(x != y for x, y in zip(a, b)) > 150


def test_every_value_of_every_placeholder_is_reachable():
    config = load_config()
    items = plan(count=6000)
    seen = collections.defaultdict(set)
    for item in items:
        for name, value in item.placeholders.items():
            seen[(item.kind, name)].add(value)
    for name, kind in KINDS.items():
        for placeholder in kind.value_sets:
            assert seen[(name, placeholder)] == set(config.value_set(name, placeholder)), (name, placeholder)
        if kind.brainstormed:
            assert seen[(name, "task")] == set(TASKS[name])
    languages = set().union(*(seen[(k, "language")] for k in KINDS if "language" in KINDS[k].placeholders))
    assert languages == set(config.languages)  # all 100, the rare ones included


@pytest.mark.parametrize("seed", range(5))
def test_a_run_opens_with_one_example_of_each_kind(seed):
    opening = [item.kind for item in plan(seed=seed, count=len(KINDS))]
    assert sorted(opening) == sorted(KINDS)
    mix = {"kinds": {"sts": 0.9, "bitext": 0.1}}
    assert sorted(item.kind for item in plan(seed=seed, count=2, **mix)) == ["bitext", "sts"]
    assert len({tuple(item.kind for item in plan(seed=s, count=len(KINDS))) for s in range(5)}) > 1


def test_kind_and_language_weights_are_respected():
    config = load_config()
    count = 20000
    items = plan(count=count)
    kinds = collections.Counter(item.kind for item in items)
    total = sum(config.kinds.values())
    for kind, weight in config.kinds.items():
        p = weight / total
        assert abs(kinds[kind] - count * p) < 5 * math.sqrt(count * p * (1 - p)), kind
    english = sum(item.language == "English" for item in items)
    p = config.languages["English"] / sum(config.languages.values())
    assert abs(english - count * p) < 5 * math.sqrt(count * p * (1 - p))


def test_language_override_is_followed():
    items = plan(count=4000, languages={"Chinese Simplified": 0.6, "English": 0.4}, kinds={"sts": 1})
    counts = collections.Counter(item.language for item in items)
    assert set(counts) == {"Chinese Simplified", "English"}
    assert abs(counts["Chinese Simplified"] / 4000 - 0.6) < 0.04


def test_bitext_languages_always_differ_and_symmetric_tasks_are_fixed():
    items = plan(count=500, kinds={"bitext": 1, "sts": 1})
    for item in items:
        if item.kind == "bitext":
            assert item.placeholders["src_lang"] != item.placeholders["tgt_lang"]
            assert item.task == "Retrieve parallel sentences."
            assert item.language == item.placeholders["src_lang"]
        else:
            assert item.task == "Retrieve semantically similar text."


def test_bitext_low_scores_are_not_sts_scores():
    config = load_config()
    assert config.value_set("bitext", "low_score") == ["1.5", "2", "2.5"]
    assert config.value_set("sts", "low_score") == ["2.5", "3", "3.5"]


def test_a_kind_in_the_mix_without_tasks_is_refused():
    config = load_config()
    with pytest.raises(ValueError, match="no tasks for long-long"):
        Planner(config, {k: v for k, v in TASKS.items() if k != "long-long"})


def test_tasks_are_dealt_evenly_at_every_length_of_a_run():
    items = plan(count=2000)
    uses: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for count, item in enumerate(items, 1):
        if item.kind in SUBTYPES:
            uses[item.kind][item.task] += 1
        if count % 97 == 0:  # at any point of the run, no task is more than one use ahead of another
            for kind, counter in uses.items():
                values = [counter[task] for task in TASKS[kind]]
                assert max(values) - min(values) <= 1, (count, kind)
    # Each pass through a kind's tasks takes them in another seeded order.
    first = [item.task for item in items if item.kind == "short-long"][:14]
    assert sorted(first[:7]) == sorted(first[7:]) == sorted(TASKS["short-long"]) and first[:7] != first[7:]


def test_a_plan_item_does_not_depend_on_which_items_were_asked_for_before():
    config = load_config(overrides={"generate": {"seed": 3}})
    whole = [Planner(config, TASKS).item(i) for i in range(500)]
    resumed = Planner(config, TASKS)
    assert [resumed.item(i) for i in range(450, 500)] == whole[450:]
