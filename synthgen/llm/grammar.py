"""JSON schemas as GBNF grammars for llama.cpp: what the embedded model's answers are held to."""

import json
from typing import Any

_GRAMMARS: dict[str, bytes] = {}
# llama_cpp's converter lets raw control characters into strings; JSON (and json.loads) does not.
_LOOSE_CHAR = 'char ::= [^"\\\\]'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F]'


def tighten(schema: Any, max_items: int = 0) -> Any:
    """A copy of a JSON schema that also says what validation demands anyway: strings are not empty,
    lists (at any depth: the list inside {"tasks": [...]} too) have at least one item and, when
    max_items is given, at most that many (a small model asked for 20 tasks may go on listing until
    it is cut off)."""
    if isinstance(schema, list):
        return [tighten(item, max_items) for item in schema]
    if not isinstance(schema, dict):
        return schema
    node = {key: tighten(value, max_items) if key in ("items", "anyOf", "oneOf", "allOf") else value
            for key, value in schema.items()}
    if isinstance(node.get("properties"), dict):
        node["properties"] = {key: tighten(value, max_items) for key, value in node["properties"].items()}
    if node.get("type") == "string":
        node.setdefault("minLength", 1)
    if node.get("type") == "array":
        node.setdefault("minItems", 1)
        if max_items:
            node.setdefault("maxItems", max_items)
    return node


def holds_list(schema: Any) -> bool:
    """Whether an answer of this schema holds a list: a list itself, or an object with a list
    somewhere among its properties (the brainstorm's {"tasks": [...]})."""
    if isinstance(schema, list):
        return any(holds_list(item) for item in schema)
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "array":
        return True
    properties = schema.get("properties")
    nested = list(properties.values()) if isinstance(properties, dict) else []
    nested += [schema[key] for key in ("anyOf", "oneOf", "allOf") if key in schema]
    return any(holds_list(item) for item in nested)


def schema_grammar(schema: dict[str, Any], max_items: int = 0) -> bytes:
    """The GBNF text of a JSON schema (cached), through llama_cpp's converter.

    A schema the converter cannot take falls back to the grammar of any JSON value, as llama_cpp
    itself does; the answer is validated afterwards in any case.
    """
    key = json.dumps([schema, max_items], sort_keys=True)
    if key not in _GRAMMARS:
        from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

        try:
            text = json_schema_to_gbnf(json.dumps(tighten(schema, max_items)))
        except Exception:  # noqa: BLE001 - any failure of the converter means: plain JSON
            text = JSON_GBNF
        _GRAMMARS[key] = text.replace(_LOOSE_CHAR, _STRICT_CHAR).encode("utf-8")
    return _GRAMMARS[key]
