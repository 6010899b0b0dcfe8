"""Turning an LLM's text into a validated answer, or a rejection with its reason. Never eval."""

import json
import re
from dataclasses import dataclass
from typing import Any, Optional

from pydantic import ValidationError

from synthgen.llm.base import Completion
from synthgen.schemas import Answer

# Rejection reasons, as counted in the manifest and written in the rejects file.
TRUNCATED = "truncated"
REFUSAL = "refusal"
EMPTY = "empty"
INVALID_JSON = "invalid_json"
SCHEMA = "schema"
REQUEST_FAILED = "request_failed"
DUPLICATE = "duplicate"  # the same example (its dedup key) is already in the run

_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()
_NOT_FOUND = object()


def extract_json(text: str) -> Any:
    """The JSON value in text: the whole text, a ```json fence, or the first value after prose.

    Returns _NOT_FOUND when there is none.
    """
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    for fenced in _FENCE.findall(text):
        try:
            return json.loads(fenced)
        except ValueError:
            pass
    for start, char in enumerate(text):
        if char in "{[":
            try:
                return _DECODER.raw_decode(text, start)[0]
            except ValueError:
                continue
    return _NOT_FOUND


def leading_strings(text: str) -> list[str]:
    """The complete strings at the head of a brainstorm answer cut off mid-way.

    '{"tasks": ["A", "B", "C' and '["A", "B", "C' give [A, B]; so does an object of strings,
    '{"Task 1": "A", "Task 2": "B", "Task 3": "C'. A brainstorm answer cut off at max_tokens still
    holds good tasks before the cut; paid for, kept.
    """
    starts = [i for i in (text.find("["), text.find("{")) if i >= 0]
    if not starts:
        return []
    start = min(starts)
    if text[start] == "[":
        return _list_head(text, start + 1)
    return _object_head(text, start + 1)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _string_at(text: str, pos: int) -> tuple[Optional[str], int]:
    """The JSON string that starts at pos, complete, and the position after it; (None, pos) if none."""
    if not text.startswith('"', pos):
        return None, pos
    try:
        return _DECODER.raw_decode(text, pos)
    except ValueError:
        return None, pos


def _list_head(text: str, pos: int) -> list[str]:
    """The complete strings of a list whose "[" ends just before pos."""
    items: list[str] = []
    while True:
        item, pos = _string_at(text, _skip_space(text, pos))
        if item is None:
            return items
        items.append(item)
        pos = _skip_space(text, pos)
        if not text.startswith(",", pos):
            return items
        pos += 1


def _object_head(text: str, pos: int) -> list[str]:
    """The first list value's complete strings, or else the complete string values before the cut."""
    values: list[str] = []
    while True:
        key, pos = _string_at(text, _skip_space(text, pos))
        if key is None:
            return values
        pos = _skip_space(text, pos)
        if not text.startswith(":", pos):
            return values
        pos = _skip_space(text, pos + 1)
        if text.startswith("[", pos):
            return _list_head(text, pos + 1)
        value, pos = _string_at(text, pos)
        if value is None:
            return values
        values.append(value)
        pos = _skip_space(text, pos)
        if not text.startswith(",", pos):
            return values
        pos += 1


@dataclass(frozen=True)
class Verdict:
    value: Any = None  # the parsed JSON (a validated answer's dict, for generation)
    reason: Optional[str] = None  # None when accepted
    detail: str = ""


def parse_json(completion: Completion) -> Verdict:
    """The first checks every answer goes through: cut off, refused, empty, not JSON."""
    if completion.finish_reason == "length":
        return Verdict(reason=TRUNCATED, detail="finish_reason is length")
    if completion.refusal:
        return Verdict(reason=REFUSAL, detail=completion.refusal[:200])
    if not completion.text.strip():
        return Verdict(reason=EMPTY, detail="no text in the answer")
    value = extract_json(completion.text)
    if value is _NOT_FOUND:
        return Verdict(reason=INVALID_JSON, detail="no JSON value in the answer")
    return Verdict(value=value)


def validate_answer(completion: Completion, model: type[Answer]) -> Verdict:
    verdict = parse_json(completion)
    if verdict.reason:
        return verdict
    try:
        answer = model.model_validate(verdict.value)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "answer"
        return Verdict(reason=SCHEMA, detail=f"{where}: {error['msg']}")
    return Verdict(value=answer.model_dump())
