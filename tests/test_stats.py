"""synthgen stats on a fixture whose numbers were counted by hand."""

import json

import pytest

from stored import stored, write_jsonl
from synthgen.stats import summarise, word_bounds


def w(count, word="lorem"):
    return " ".join([word] * count)


T1, T2, T3, T4, T5, T6, T7 = (f"Task number {i}." for i in range(1, 8))
TWO_TASKS = {"jaccard_distance": 0.5, "distinct_2": 0.75}
ONE_TASK = {"jaccard_distance": None, "distinct_2": 1.0}


def short_long(i, query, positive, negative, query_length, num_words, task):
    return stored(i, "short-long", query, positive, negative, task,
                  placeholders={"query_type": "common", "query_length": query_length, "num_words": num_words})


def long_short(i, query, label, misleading, num_words, task):
    return stored(i, "long-short", query, label, misleading, task, placeholders={"num_words": num_words})


@pytest.fixture
def dataset(workdir):
    run = [
        # query words, positive words, negative words: adherence worked out in EXPECTED below
        short_long(0, w(3), w(60, "doc"), w(40, "neg"), "less than 5 words", "50", T1),
        short_long(1, w(7), w(100, "doc"), w(100, "neg"), "5 to 15 words", "100", T1),
        short_long(2, w(4), w(49, "doc"), w(50, "neg"), "at least 10 words", "50", T2),
        short_long(3, w(12), w(250, "doc"), w(150, "neg"), "at least 10 words", "200", T2),
        short_long(4, w(16, "same"), w(16, "same"), w(80, "neg"), "5 to 15 words", "50", T1),  # query = positive
        long_short(5, w(8), "sports", "politics", "less than 10", T3),
        long_short(6, w(5) + " the News of today " + w(3), "news", "weather", "at least 10", T3),  # label leaks
        long_short(7, w(30), "world affairs", "sports", "at least 50", T3),
        long_short(8, w(9), "sports", "Sports ", "at least 10", T4),  # positive = negative
        stored(9, "long-long", w(300), w(310, "doc"), task=T6),
        stored(10, "long-long", w(299), w(500, "doc"), task=T6),
        stored(11, "sts", "the cat sat on mats", "a feline rested on rugs", "dogs ran in the park today",
               language="French",
               placeholders={"unit": "sentence", "high_score": "4.5", "low_score": "3", "difficulty": "college"}),
        stored(12, "bitext", "good morning friend", "bonjour mon ami", "bonsoir mes amis",
               placeholders={"src_lang": "English", "tgt_lang": "French", "unit": "phrase", "high_score": "5",
                             "low_score": "2", "difficulty": "high school"}),
    ]
    write_jsonl(workdir / "run" / "examples.jsonl", run,
                raw_lines=["not json", json.dumps({"kind": "short-long", "task": T1, "model": "m"})])
    (workdir / "run" / "manifest.json").write_text(json.dumps({
        "valid": 13, "rejected": {"bad_json": 2, "truncated": 1}, "prompt_tokens": 2600, "completion_tokens": 1950,
    }))
    # Beside a manifest, rejects.jsonl is not counted again.
    write_jsonl(workdir / "run" / "rejects.jsonl", [{"index": 50, "reason": "bad_json"}])
    other = [
        stored(13, "short-short", w(2), w(3, "doc"), task=T5),
        stored(14, "short-short", w(2), w(3, "doc"), task=T5, language="German"),
        stored(15, "short-short", w(4), w(10, "doc"), task=T7, language="unknown", placeholders=None,
               source="msmarco", model="imported"),
    ]
    write_jsonl(workdir / "other" / "imported.jsonl", other)
    # No manifest here: the reasons come from rejects.jsonl.
    write_jsonl(workdir / "other" / "rejects.jsonl", [{"reason": "bad_json"}, {"reason": "wrong_schema"}])
    return workdir


def check(examples, met):
    return {"examples": examples, "met": met, "share": round(met / examples, 4)}


def spread(n, low, median, p95, high):
    return {"n": n, "min": low, "median": median, "p95": p95, "max": high}


EXPECTED = {
    "files": 2,
    "lines": 18,
    "examples": 16,
    "unreadable": 1,
    "not_examples": 1,
    "kinds": {"short-long": 5, "long-short": 4, "short-short": 3, "long-long": 2, "sts": 1, "bitext": 1},
    "languages": {"English": 13, "French": 1, "German": 1, "unknown": 1},
    "sources": {"synthetic": 15, "msmarco": 1},
    "placeholders": {
        "bitext": {"difficulty": {"high school": 1}, "high_score": {"5": 1}, "low_score": {"2": 1},
                   "src_lang": {"English": 1}, "tgt_lang": {"French": 1}, "unit": {"phrase": 1}},
        "long-short": {"num_words": {"at least 10": 2, "at least 50": 1, "less than 10": 1}},
        "short-long": {"num_words": {"100": 1, "200": 1, "50": 3}, "query_type": {"common": 5},
                       "query_length": {"5 to 15 words": 2, "at least 10 words": 2, "less than 5 words": 1}},
        "sts": {"difficulty": {"college": 1}, "high_score": {"4.5": 1}, "low_score": {"3": 1},
                "unit": {"sentence": 1}},
    },
    "lengths": {
        "short-long": {"query": spread(5, 3, 7, 16, 16), "positive": spread(5, 16, 60, 250, 250),
                       "negative": spread(5, 40, 80, 150, 150)},
        "long-short": {"query": spread(4, 8, 10.5, 30, 30), "positive": spread(4, 1, 1, 2, 2),
                       "negative": spread(4, 1, 1, 1, 1)},
        "long-long": {"query": spread(2, 299, 299.5, 300, 300), "positive": spread(2, 310, 405, 500, 500)},
        "sts": {"query": spread(1, 5, 5, 5, 5), "positive": spread(1, 5, 5, 5, 5), "negative": spread(1, 6, 6, 6, 6)},
        "bitext": {"query": spread(1, 3, 3, 3, 3), "positive": spread(1, 3, 3, 3, 3),
                   "negative": spread(1, 3, 3, 3, 3)},
        "short-short": {"query": spread(3, 2, 2, 4, 4), "positive": spread(3, 3, 3, 10, 10)},
    },
    "adherence": {
        "short-long query_length (query)": {**check(5, 3), "by_value": {
            "5 to 15 words": check(2, 1), "at least 10 words": check(2, 1), "less than 5 words": check(1, 1)}},
        "short-long num_words (positive)": {**check(5, 3), "by_value": {
            "100": check(1, 1), "200": check(1, 1), "50": check(3, 1)}},
        "short-long num_words (negative)": {**check(5, 3), "by_value": {
            "100": check(1, 1), "200": check(1, 0), "50": check(3, 2)}},
        "long-short num_words (input_text)": {**check(4, 2), "by_value": {
            "at least 10": check(2, 1), "at least 50": check(1, 0), "less than 10": check(1, 1)}},
        "long-long at least 300 words (input)": {**check(2, 1), "by_value": {"at least 300 words": check(2, 1)}},
        "long-long at least 300 words (positive)": {**check(2, 2), "by_value": {"at least 300 words": check(2, 2)}},
    },
    "leaks": {
        "all": {"examples": 16, "query_equals_positive": 1, "query_contains_positive": 2,
                "share_query_contains_positive": 0.125, "with_negative": 11, "positive_equals_negative": 1},
        "short-long": {"examples": 5, "query_equals_positive": 1, "query_contains_positive": 1,
                       "share_query_contains_positive": 0.2, "with_negative": 5, "positive_equals_negative": 0},
        "long-short": {"examples": 4, "query_equals_positive": 0, "query_contains_positive": 1,
                       "share_query_contains_positive": 0.25, "with_negative": 4, "positive_equals_negative": 1},
        "long-long": {"examples": 2, "query_equals_positive": 0, "query_contains_positive": 0,
                      "share_query_contains_positive": 0.0, "with_negative": 0, "positive_equals_negative": 0},
        "sts": {"examples": 1, "query_equals_positive": 0, "query_contains_positive": 0,
                "share_query_contains_positive": 0.0, "with_negative": 1, "positive_equals_negative": 0},
        "bitext": {"examples": 1, "query_equals_positive": 0, "query_contains_positive": 0,
                   "share_query_contains_positive": 0.0, "with_negative": 1, "positive_equals_negative": 0},
        "short-short": {"examples": 3, "query_equals_positive": 0, "query_contains_positive": 0,
                        "share_query_contains_positive": 0.0, "with_negative": 0, "positive_equals_negative": 0},
    },
    "tasks": {
        # examples per task: T1 3, T2 2, T3 3, T4 1, T6 2, sts 1, bitext 1, T5 2, T7 1
        "unique": 9,
        "per_task": spread(9, 1, 2, 3, 3),
        # Diversity: "Task number 1." and "Task number 2." share 2 of 4 words (distance 0.5) and 1 of
        # their 4 bigrams (3 distinct: 0.75); one task alone has no pair and all its bigrams distinct.
        "by_kind": {
            "short-long": {"unique": 2, "per_task": spread(2, 2, 2.5, 3, 3), "diversity": TWO_TASKS},
            "long-short": {"unique": 2, "per_task": spread(2, 1, 2, 3, 3), "diversity": TWO_TASKS},
            "long-long": {"unique": 1, "per_task": spread(1, 2, 2, 2, 2), "diversity": ONE_TASK},
            "sts": {"unique": 1, "per_task": spread(1, 1, 1, 1, 1), "diversity": ONE_TASK},
            "bitext": {"unique": 1, "per_task": spread(1, 1, 1, 1, 1), "diversity": ONE_TASK},
            "short-short": {"unique": 2, "per_task": spread(2, 1, 1.5, 2, 2), "diversity": TWO_TASKS},
        },
    },
    "runs": {
        "manifests": 1,
        "rejects_files": 1,
        "valid": 13,
        "rejected": {"bad_json": 3, "truncated": 1, "wrong_schema": 1},
        "rejected_total": 5,
        "prompt_tokens": 2600,
        "completion_tokens": 1950,
        "tokens_per_valid": 350.0,
        "prompt_tokens_per_valid": 200.0,
        "completion_tokens_per_valid": 150.0,
        "brainstorm": {},
    },
}


def test_stats_json_gives_the_hand_counted_numbers(cli, dataset):
    result = cli("stats", "run", "other/imported.jsonl", "--json")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    for key, expected in EXPECTED.items():
        assert report[key] == expected, key
    assert report == EXPECTED


def squeeze(text):
    return [" ".join(line.split()) for line in text.splitlines()]


def test_stats_table_for_people(cli, dataset):
    result = cli("stats", "run", "other", "-q")
    assert result.status == 0, result.err
    shown = squeeze(result.out)
    assert shown[0] == "16 examples in 2 files, unreadable 1, not examples 1"
    for line in [
        "short-long 5 31.2%",
        "msmarco 1 6.2%",
        "query_length = less than 5 words 1",
        "short-long query 5 3 7 16 16",
        "long-short query 4 8 10.5 30 30",
        "short-long query_length (query) 5 3 60.0%",
        "less than 5 words 1 1 100.0%",
        "long-short num_words (input_text) 4 2 50.0%",
        "all 16 1 2 12.5% 1",
        "all 9 1 2 3",
        "rejected answers (1 manifests, 1 rejects files): 5 (bad_json 3, truncated 1, wrong_schema 1)",
        "tokens per valid example: 350 (prompt 200, completion 150; 13 valid examples)",
    ]:
        assert line in shown, (line, result.out)


def test_stats_without_a_run_beside_it(cli, workdir):
    write_jsonl(workdir / "dedup.jsonl", [stored(0), stored(1, "sts")])
    result = cli("stats", "dedup.jsonl", "-q")
    assert result.status == 0, result.err
    assert "rejected answers and tokens: no manifest.json or rejects.jsonl beside the input" in result.out
    report = json.loads(cli("stats", "dedup.jsonl", "--json").out)
    assert report["runs"]["tokens_per_valid"] is None and report["runs"]["rejected"] == {}
    assert report["adherence"] == {}  # no placeholders that ask for a length


def test_stats_of_a_generated_run(cli, endpoint, workdir):
    assert cli("generate", "--n", 30, "--seed", 1, *endpoint).status == 0
    report = json.loads(cli("stats", "data/raw", "--json").out)
    manifest = json.loads((workdir / "data" / "raw" / "manifest.json").read_text())
    assert report["examples"] == 30 == sum(report["kinds"].values())
    assert report["runs"]["valid"] == 30
    expected = (manifest["prompt_tokens"] + manifest["completion_tokens"]) / 30
    assert report["runs"]["tokens_per_valid"] == round(expected, 1)
    placeholder_kinds = {k for k in report["kinds"] if k not in ("short-short", "long-long")}
    assert set(report["placeholders"]) == placeholder_kinds


@pytest.mark.parametrize("phrase,bounds", [
    ("less than 5 words", (0, 4)),
    ("5 to 15 words", (5, 15)),
    ("at least 10 words", (10, float("inf"))),
    ("50", (50, float("inf"))),
    (300, (300, float("inf"))),
    ("less than 10", (0, 9)),
    ("At least 200", (200, float("inf"))),
    ("at most 3 words", (0, 3)),
    ("several", None),
    (None, None),
])
def test_length_phrases(phrase, bounds):
    assert word_bounds(phrase) == bounds


def test_percentiles_use_the_nearest_rank():
    from collections import Counter

    assert summarise(Counter(range(1, 21))) == spread(20, 1, 10.5, 19, 20)
    assert summarise(Counter(range(1, 101))) == spread(100, 1, 50.5, 95, 100)
    assert summarise(Counter({7: 3})) == spread(3, 7, 7, 7, 7)
    assert summarise(Counter()) is None


@pytest.mark.parametrize("args,message", [
    (["stats", "missing"], "no such file or folder: missing"),
    (["stats", "empty"], "no JSONL file in empty"),
    (["stats", "junk.jsonl"], "no stored examples in junk.jsonl (1 lines, unreadable 1)"),
])
def test_bad_input(cli, workdir, args, message):
    (workdir / "empty").mkdir()
    (workdir / "junk.jsonl").write_text("{{\n")
    result = cli(*args)
    assert result.status == 2 and len(result.err.strip().splitlines()) == 1
    assert message in result.err
