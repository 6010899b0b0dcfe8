"""The curate report as tables for people."""

from pathlib import Path
from typing import Any

from synthgen.tables import table

TOP_LANGUAGES = 15


def _rows(counts: dict[str, dict[str, int]], reasons: list[str]) -> list[list[Any]]:
    return [[name, c.get("in", 0), c.get("kept", 0), *(c.get(r, 0) for r in reasons)] for name, c in counts.items()]


def render(report: dict[str, Any], out: Path) -> str:
    reasons = list(report["dropped"])
    header = ["", "in", "kept", *reasons]
    dropped = sum(report["dropped"].values())
    lines = [f"{report['examples']} examples: kept {report['kept']}, dropped {dropped}"
             + "".join(f", {reason} {count}" for reason, count in report["dropped"].items())
             + f" (checks: {', '.join(report['checks']) or 'none'}) -> {out}"]
    lines.append(table("by kind", header, _rows(report["by_kind"], reasons)))
    languages = dict(list(report["by_language"].items())[:TOP_LANGUAGES])
    more = len(report["by_language"]) - len(languages)
    lines.append(table("by language" + (f" (the {TOP_LANGUAGES} largest of {len(report['by_language'])})" if more else ""),
                       header, _rows(languages, reasons)))
    return "\n\n".join(lines) + "\n"
