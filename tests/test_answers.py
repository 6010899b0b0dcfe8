import json

import pytest

from synthgen.answers import leading_strings, validate_answer
from synthgen.brainstorm import task_strings
from synthgen.llm import Completion
from synthgen.schemas import LongShortAnswer, PairAnswer, ShortLongAnswer, TripletAnswer

GOOD = {"user_query": "q", "positive_document": "p", "hard_negative_document": "n"}


def verdict(text, finish_reason="stop", model=ShortLongAnswer, refusal=None):
    return validate_answer(Completion(text, finish_reason, refusal=refusal), model)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD),
        "```json\n" + json.dumps(GOOD) + "\n```",
        "```\n" + json.dumps(GOOD) + "```",
        "Here is the example you asked for:\n" + json.dumps(GOOD),
        "Sure! " + json.dumps(GOOD) + "\nHope this helps.",
    ],
)
def test_json_is_found_in_plain_fenced_and_prose_answers(text):
    assert verdict(text).reason is None
    assert verdict(text).value == GOOD


@pytest.mark.parametrize(
    "text,finish_reason,reason",
    [
        (json.dumps(GOOD), "length", "truncated"),
        ("", "stop", "empty"),
        ("   \n", "stop", "empty"),
        ('{"user_query": "q", "positive_doc', "stop", "invalid_json"),
        ("no json here at all", "stop", "invalid_json"),
        (json.dumps({**GOOD, "extra": "x"}), "stop", "schema"),
        (json.dumps({"user_query": "q", "positive_document": "p"}), "stop", "schema"),
        (json.dumps({**GOOD, "user_query": "   "}), "stop", "schema"),
        (json.dumps({**GOOD, "user_query": 42}), "stop", "schema"),
        (json.dumps([GOOD]), "stop", "schema"),
    ],
)
def test_rejections_carry_their_reason(text, finish_reason, reason):
    assert verdict(text, finish_reason).reason == reason


def test_refusal_is_rejected():
    assert verdict(None or "", refusal="I cannot").reason == "refusal"


def test_values_are_stripped():
    assert verdict(json.dumps({**GOOD, "user_query": "  q \n"})).value["user_query"] == "q"


@pytest.mark.parametrize(
    "model,keys",
    [
        (LongShortAnswer, ["input_text", "label", "misleading_label"]),
        (PairAnswer, ["input", "positive_document"]),
        (TripletAnswer, ["S1", "S2", "S3"]),
    ],
)
def test_each_answer_model_takes_exactly_its_keys(model, keys):
    answer = {key: f"value of {key}" for key in keys}
    assert verdict(json.dumps(answer), model=model).value == answer
    assert verdict(json.dumps({**answer, "S4": "x"}), model=model).reason == "schema"


def test_extract_json_never_evaluates_code():
    assert verdict("__import__('os').system('false')").reason == "invalid_json"


@pytest.mark.parametrize(
    "text,kept",
    [
        ('["A", "B", "C', ["A", "B"]),
        ('{"tasks": ["A", "B", "C', ["A", "B"]),
        ('```json\n{\n  "tasks": [\n    "A",\n    "B",\n    "C', ["A", "B"]),
        ('{"tasks": ["A", "B"], "note": "x', ["A", "B"]),
        ('{"Task 1": "A", "Task 2": "B", "Task 3": "C', ["A", "B"]),
        ('{"Task 1": "A [draft]", "Task 2": "B", "Task', ["A [draft]", "B"]),
        ('{"tasks": "A', []),
        ('{"tasks": [', []),
        ("no JSON at all", []),
    ],
)
def test_a_cut_off_brainstorm_answer_keeps_its_complete_tasks(text, kept):
    assert leading_strings(text) == kept


@pytest.mark.parametrize(
    "value,tasks",
    [
        ({"tasks": ["Find A.", " Find\n B. "]}, ["Find A.", "Find B."]),
        (["Find A.", "Find B."], ["Find A.", "Find B."]),
        ({"list": ["Find A.", "Find B."]}, ["Find A.", "Find B."]),
        ({"tasks": ["Find A."], "examples": ["Find B."]}, ["Find A."]),
        ({"Task 1": "Find A.", "Task 2": "Find B."}, ["Find A.", "Find B."]),
        ({"question": "what", "answer": "that"}, []),  # single words are not tasks
        ({"Task 1": "Find A.", "count": 2}, []),
        ({"one": ["Find A."], "two": ["Find B."]}, []),
        ({}, []),
        ("A", []),
    ],
)
def test_task_strings_takes_the_shapes_models_write(value, tasks):
    assert task_strings(value, 300) == tasks
