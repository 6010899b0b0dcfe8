"""The query side's instruction: the paper's template, the one check of a `--query-template`, and
the query as a model sees it. Shared by train and eval, so that a model is evaluated with the text
it was trained on.
"""

from typing import Optional

from synthgen.errors import BadInput

QUERY_TEMPLATE = "Instruct: {task}\nQuery: {query}"


def check_template(template: str) -> str:
    """The template, if it names {query} and nothing but {task} and {query}; else BadInput."""
    try:
        template.format(task="t", query="q")
    except (KeyError, IndexError, ValueError) as exc:
        raise BadInput(f"--query-template {template!r}: only {{task}} and {{query}} may be named ({exc})") from None
    if "{query}" not in template:
        raise BadInput(f"--query-template {template!r} must contain {{query}}")
    return template


def query_text(template: str, instruction: Optional[str], query: str) -> str:
    """The template with the instruction, or the bare query when there is none."""
    if not instruction:
        return query
    return template.format(task=instruction, query=query)
