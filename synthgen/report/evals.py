"""The eval results a report is given (--eval FILE): what `synthgen eval passkey --json` and
`synthgen eval retrieval --json` print, read back and checked, so a wrong file is said in one line."""

import json
from pathlib import Path
from typing import Any

from synthgen.errors import BadInput
from synthgen.evaluate import METRICS

__all__ = ["METRICS", "read_eval"]


def read_eval(path: Path) -> dict[str, Any]:
    what = f"{path} is not a result of `synthgen eval passkey --json` or `synthgen eval retrieval --json`"
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{what} ({exc})") from None
    if not isinstance(result, dict):
        raise BadInput(what)
    try:
        if result.get("benchmark") == "passkey":
            for row in result["lengths"]:
                float(row["length"]), float(row["accuracy"]), int(row["queries"])
        elif result.get("benchmark") == "retrieval":
            # Every metric eval retrieval prints now; a file of an older synthgen lacks map@100 and
            # recall@100, and is shown with "-" there.
            for group in result["groups"].values():
                int(group["queries"]), float(group["ndcg@10"]), *(float(group[m]) for m in METRICS if m in group)
        else:
            raise BadInput(what)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BadInput(f"{what}: a field is missing or not a number") from None
    return {**result, "file": str(path)}
