"""pydantic models of each kind's LLM answer, and the JSON schemas sent for them.

The records synthgen stores are defined in store.py."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

# A non-empty string once surrounding white space is stripped.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Answer(BaseModel):
    """An LLM answer: exactly the kind's keys, each a non-empty string; anything else is rejected."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ShortLongAnswer(Answer):
    user_query: Text
    positive_document: Text
    hard_negative_document: Text


class LongShortAnswer(Answer):
    input_text: Text
    label: Text
    misleading_label: Text


class PairAnswer(Answer):
    """short-short and long-long: an input and its positive, no negative."""

    input: Text
    positive_document: Text


class TripletAnswer(Answer):
    """sts and bitext: S1, with S2 close to it and S3 further away."""

    S1: Text
    S2: Text
    S3: Text


# Answers grounded in a passage of the user's corpus (generate --corpus): the passage is one side
# of the pair, written by nobody; the LLM writes the other side, and the task unless one is given
# (the ...WithTask answers).


class GroundedQueryAnswer(Answer):
    """short-long: a query the passage answers."""

    user_query: Text


class GroundedLabelAnswer(Answer):
    """long-short: the passage's label."""

    label: Text


class GroundedSentenceAnswer(Answer):
    """short-short: a short query and the passage's own sentence that answers it, copied."""

    user_query: Text
    sentence: Text


class GroundedTextAnswer(Answer):
    """long-long: a passage-length text that the passage matches."""

    matching_text: Text


# The task first: a model that decodes in the schema's order settles the task before the query.


class GroundedQueryWithTask(Answer):
    task: Text
    user_query: Text


class GroundedLabelWithTask(Answer):
    task: Text
    label: Text


class GroundedSentenceWithTask(Answer):
    task: Text
    user_query: Text
    sentence: Text


class GroundedTextWithTask(Answer):
    task: Text
    matching_text: Text


def answer_schema(model: type[Answer]) -> dict[str, Any]:
    """The JSON schema sent as response_format: plain strings, all keys required, no others.

    Built by hand rather than from model_json_schema() because strict structured-output servers
    refuse keywords such as minLength; the length check stays in pydantic.
    """
    keys = list(model.model_fields)
    return {
        "type": "object",
        "properties": {key: {"type": "string"} for key in keys},
        "required": keys,
        "additionalProperties": False,
    }


# The brainstorm's answer: an object holding the list, {"tasks": [...]}, in every structured-output
# mode. Not a bare list: json_object mode (the fallback of servers that refuse json_schema, such as
# llama_cpp.server) forces an object, and a model asked for a list then invents its own keys.
TASK_LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"tasks": {"type": "array", "items": {"type": "string"}}},
    "required": ["tasks"],
    "additionalProperties": False,
}

