import json

import pytest

from synthgen.config import load_config
from synthgen.kinds import KINDS, SUBTYPES
from synthgen.prompts import PLACEHOLDER, PromptError, Template, Templates
from synthgen.sampling import Planner


@pytest.fixture(scope="module")
def templates():
    return Templates()


def test_every_template_renders_with_no_placeholder_left(templates):
    config = load_config()
    tasks = {kind: ["Find recipes for {leftover} ingredients."] for kind in SUBTYPES}
    planner = Planner(config, tasks)
    seen = set()
    for index in range(400):
        item = planner.item(index)
        seen.add(item.kind)
        prompt = templates.generate[item.kind].render(item.placeholders)
        leftovers = [name for name in PLACEHOLDER.findall(prompt) if name != "leftover"]
        assert leftovers == []
        for value in item.placeholders.values():
            assert value in prompt
    assert seen == set(KINDS)
    for subtype in SUBTYPES:
        values = {"num_tasks": "20", "topic": "beekeeping", "persona": "a retired pilot",
                  "known_tasks": "- Find hive inspection logs."}
        prompt = templates.brainstorm[subtype].render(values)
        assert PLACEHOLDER.findall(prompt) == []
        assert all(value in prompt for value in values.values())
        assert "JSON object" in prompt and '{"tasks": [' in prompt


@pytest.mark.parametrize("kind", list(KINDS))
def test_generation_template_names_its_kinds_json_keys(templates, kind):
    text = templates.generate[kind].text
    for key in KINDS[kind].answer.model_fields:
        assert json.dumps(key) in text, f"{kind} template does not name {key}"
    assert "JSON object" in text


def test_symmetric_kinds_state_their_scores(templates):
    for kind in ("sts", "bitext"):
        text = templates.generate[kind].text
        assert "{high_score}" in text and "{low_score}" in text


def test_unknown_placeholder_in_template_is_an_error():
    with pytest.raises(PromptError, match="unknown placeholder {colour}"):
        Template("a {task} in {colour}", ("task",), "t")


def test_declared_placeholder_never_used_is_an_error():
    with pytest.raises(PromptError, match="never uses placeholder {language}"):
        Template("a {task}", ("task", "language"), "t")


def test_render_needs_every_value_and_no_other():
    template = Template('{"key": 1} for {task} in {language}', ("task", "language"), "t")
    assert template.render({"task": "T", "language": "Welsh"}) == '{"key": 1} for T in Welsh'
    with pytest.raises(PromptError, match="no value for {language}"):
        template.render({"task": "T"})
    with pytest.raises(PromptError, match="unknown placeholder {colour}"):
        template.render({"task": "T", "language": "Welsh", "colour": "red"})


def test_values_holding_braces_are_not_rendered_again():
    template = Template("do {task}", ("task",), "t")
    assert template.render({"task": "{language}"}) == "do {language}"
