"""The one text-table renderer of stats and eval."""

from synthgen.tables import cell, table


def test_table_layout():
    text = table("title", ["", "n", "share"], [["short-long", 5, "31.2%"], ["sts", 12, None]])
    assert text.splitlines() == [
        "title",
        "               n  share",
        "  ----------  --  -----",
        "  short-long   5  31.2%",
        "  sts         12      -",
    ]


def test_cells():
    assert [cell(v) for v in (None, 3.0, 2.5, 7, "x", 1e16, float("inf"))] == [
        "-", "3", "2.5", "7", "x", "1e+16", "inf"]
