"""The query template: one default, one check, one way to write the query side (train and eval share them)."""

import pytest

from synthgen.errors import BadInput
from synthgen.export import INSTRUCTION_TEMPLATE
from synthgen.instructions import QUERY_TEMPLATE, check_template, query_text


def test_the_paper_template_is_the_default():
    assert QUERY_TEMPLATE == "Instruct: {task}\nQuery: {query}"
    assert INSTRUCTION_TEMPLATE == QUERY_TEMPLATE, "the e5 export writes the query side train and eval read"
    assert query_text(QUERY_TEMPLATE, "Find the dish", "apple") == "Instruct: Find the dish\nQuery: apple"


def test_no_instruction_means_the_bare_query():
    assert query_text(QUERY_TEMPLATE, None, "apple") == "apple"
    assert query_text(QUERY_TEMPLATE, "", "apple") == "apple"


@pytest.mark.parametrize("template", [QUERY_TEMPLATE, "{query}", "query: {query}", "{task} | {query}",
                                      "{{literal braces}} {query}"])
def test_good_templates_pass(template):
    assert check_template(template) == template


@pytest.mark.parametrize("template,message", [
    ("{instruction}: {query}", "only {task} and {query} may be named"),
    ("{0} {query}", "only {task} and {query} may be named"),
    ("{query", "only {task} and {query} may be named"),
    ("Instruct: {task}", "must contain {query}"),
    ("", "must contain {query}"),
])
def test_bad_templates_fail_with_the_option_named(template, message):
    with pytest.raises(BadInput) as caught:
        check_template(template)
    assert str(caught.value).startswith("--query-template ") and message in str(caught.value)
