"""Stored examples for the export, stats and import tests, written as synthgen writes them."""

import json
from pathlib import Path
from typing import Optional

from synthgen.kinds import KINDS


def stored(i: int, kind: str = "short-long", query: Optional[str] = None, positive: Optional[str] = None,
           negative: Optional[str] = "", task: Optional[str] = None, language: str = "English",
           placeholders: Optional[dict] = None, **extra) -> dict:
    """A stored example (design.md §3); negative "" means "the kind's default" (None for pairs)."""
    if negative == "":
        negative = None if KINDS[kind].negative_key is None else f"negative document {i} on another matter"
    task = task or KINDS[kind].instruction or f"Given a question, retrieve passages that answer it ({i % 3})."
    return {
        "id": f"run-{i}",
        "index": i,
        "kind": kind,
        "task": task,
        "language": language,
        "query": query if query is not None else f"what is thing number {i}",
        "positive": positive if positive is not None else f"thing number {i} is a thing of note",
        "negative": negative,
        "placeholders": {"task": task, "language": language, **(placeholders or {})},
        "raw": {},
        "model": "fake-model",
        "seed": 0,
        **extra,
    }


def every_kind(count_per_kind: int = 2) -> list[dict]:
    """count_per_kind examples of each of the six kinds, in kind order."""
    return [stored(len(KINDS) * j + k, kind) for j in range(count_per_kind) for k, kind in enumerate(KINDS)]


def write_jsonl(path: Path, records, raw_lines=()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r, ensure_ascii=False) for r in records] + list(raw_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
