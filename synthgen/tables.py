"""Plain text tables for the terminal, one look for every command that prints one (stats, eval)."""

import math
from typing import Any, Sequence

INDENT = "  "
GAP = "  "


def cell(value: Any) -> str:
    """None as "-", a whole float without its ".0", anything else as str() gives it."""
    if value is None:
        return "-"
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(title: str, header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """The title, then the header, a rule and the rows indented under it: the first column to the
    left, the others to the right."""
    cells = [[cell(v) for v in header]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    cells.insert(1, ["-" * w for w in widths])

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(row[1:], widths[1:])]
        return (INDENT + GAP.join(parts)).rstrip()

    return "\n".join([title, *map(line, cells)])
