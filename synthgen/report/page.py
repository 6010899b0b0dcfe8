"""The report as one HTML file: the template shipped in the package, its stylesheet and script
inline, the sections' markup, and the browser's sample as inline JSON.

Self-contained by construction: nothing in the page is fetched (a Content-Security-Policy of
default-src 'none' says so to the browser, and lets only the page's own script run, by its hash),
and no text of a dataset is ever markup: in HTML it is escaped, in the JSON it is a string the
script puts in the page as text. Every "/", "=" and "(" of a dataset's text is written escaped
(&#47; in HTML, \\/ in JSON), so a URL or a tag in an example is shown as it is, and yet the file
names no URL and holds no src= or url( but its own.
"""

import base64
import hashlib
import html
import json
import re
from importlib import resources
from typing import Any, Sequence

_PARTS = re.compile(r"@@([A-Z]+)@@")
# Written as references in a dataset's text, so that no text of it reads as a reference to load
# (a URL's "//", an attribute's "src=", a stylesheet's "url("), even to a tool that scans the file.
_NAMES_NOTHING = (("/", "&#47;"), ("=", "&#61;"), ("(", "&#40;"))


def esc(value: Any) -> str:
    """Any value as HTML text (None as "-"), "/", "=" and "(" as character references."""
    if value is None:
        return "-"
    return references(html.escape(str(value), quote=True))


def references(text: str) -> str:
    """HTML text (escaped already) with "/", "=" and "(" as character references."""
    for char, reference in _NAMES_NOTHING:
        text = text.replace(char, reference)
    return text


def inline_json(value: Any) -> str:
    """JSON to stand inside <script type="application/json">: no "<" (so no </script> or <!--), no
    "&" or ">", no line separators a script could trip on, and "/", "=" and "(" escaped as esc()
    writes them in HTML (JSON allows \\/ and \\u escapes in any string)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("/", "\\/"), ("=", "\\u003d"),
                          ("(", "\\u0028"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def shipped(name: str) -> str:
    """A file shipped beside this module (the template, the stylesheet, the script)."""
    return resources.files("synthgen.report").joinpath("static").joinpath(name).read_text(encoding="utf-8")


def policy(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    # Styles: the charts' SVG carries style attributes, which no hash can allow.
    return f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'"


def page(title: str, sections: Sequence[tuple[str, str, str]], header: str, data: Any) -> str:
    """sections: (id, title, inner HTML) in order; header: the HTML above them; data: the browser's."""
    script = shipped("report.js")
    nav = "".join(f'<a href="#{ident}">{esc(name)}</a>' for ident, name, _ in sections)
    body = "".join(f'<section id="{ident}"><h2>{esc(name)}</h2>{inner}</section>' for ident, name, inner in sections)
    parts = {"POLICY": policy(script), "TITLE": esc(title), "STYLE": shipped("report.css"), "HEADER": header,
             "NAV": nav, "BODY": body, "DATA": inline_json(data), "SCRIPT": script}
    # One pass over the template: what is put in is never read again for markers.
    return _PARTS.sub(lambda match: parts[match[1]], shipped("template.html"))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric_from: int = 1) -> str:
    """A table; columns from numeric_from on are right-aligned numbers (thousands separated)."""
    def cell(n: int, value: Any) -> str:
        if n < numeric_from:
            return f"<td>{esc(value)}</td>"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f'<td class="num">{esc(value)}</td>'
        return f'<td class="num">{value:,}</td>' if isinstance(value, int) else f'<td class="num">{value:,.4g}</td>'

    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(n, v) for n, v in enumerate(row)) + "</tr>" for row in rows)
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def chart(title: str, svg: str | None, note: str = "") -> str:
    """A chart in its figure, or nothing when there was nothing to draw."""
    if svg is None:
        return ""
    caption = esc(title) + (f' <span class="note">{esc(note)}</span>' if note else "")
    return f'<figure class="chart-box"><figcaption>{caption}</figcaption>{svg}</figure>'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def samples(records: Sequence[tuple[str, str]]) -> str:
    """A few records shown folded: (summary line, body text)."""
    return "".join(f"<details><summary>{esc(summary)}</summary><pre>{esc(text)}</pre></details>"
                   for summary, text in records)
