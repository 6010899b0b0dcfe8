"""The documents of one file, by its format: each a name (its source) and its text, a block at a time.

.txt and .md: the file is one document, its text as decoded. .jsonl: each line is a document, the
text in one field (lines that are not JSON, or lack the field, are counted). .html and .htm: the
text a reader sees (script, style and navigation menus left out), a paragraph per block element,
paragraphs joined by a blank line. .pdf (the pdf extra): the text of each page, pages joined by a
blank line. A document's text, so made, is what a passage's offset counts characters of.

Whatever makes a file unusable is found before its first document is handed out (Skipped), so a
file gives all its documents or none.
"""

import collections
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterable, Iterator

import msgspec

from synthgen.corpus.decoding import (
    BINARY,
    EMPTY,
    NO_TEXT,
    Skipped,
    bom_codec,
    encoding_of,
    head,
    text_blocks,
)
from synthgen.errors import UNDECODABLE

# File name endings read, and the reader of each (matched whatever their case).
FORMATS = {".txt": "text", ".md": "text", ".jsonl": "jsonl", ".html": "html", ".htm": "html", ".pdf": "pdf"}
PDF_NEEDS = "PDF needs: pip install 'synthgen[pdf]'"
UNREADABLE_PDF = "unreadable PDF"
NO_FIELD = "no text field"
BLANK_LINE = "\n\n"


@dataclass
class Document:
    source: str  # the file's name as the passages give it; a .jsonl document adds ":<line>"
    blocks: Iterable[str]  # the document's text, in order


Advance = Callable[[int], None]  # told how many bytes of the file were read


def documents(path: Path, source: str, form: str, text_field: str, skipped_lines: collections.Counter,
              advance: Advance) -> Iterator[Document]:
    """The file's documents; Skipped (or OSError) when it has none, raised before the first one."""
    if form == "jsonl":
        return _jsonl(path, source, text_field, skipped_lines, advance)
    if form == "pdf":
        return _pdf(path, source, advance)
    codec = encoding_of(path)
    blocks = text_blocks(path, codec, advance)
    return iter([Document(source, _html_text(blocks) if form == "html" else blocks)])


# -- .jsonl ------------------------------------------------------------------------------------------

_decode = msgspec.json.Decoder().decode


def _jsonl(path: Path, source: str, field: str, skipped_lines: collections.Counter,
           advance: Advance) -> Iterator[Document]:
    start = head(path)
    if not start.strip():
        raise Skipped(EMPTY)
    codec = bom_codec(start)
    if codec not in (None, "utf-8-sig"):
        raise Skipped(BINARY, f"{codec}: JSON lines are UTF-8")
    if b"\0" in start:
        raise Skipped(BINARY, "NUL bytes")
    return _jsonl_documents(path, source, field, skipped_lines, advance)


def _jsonl_documents(path: Path, source: str, field: str, skipped_lines: collections.Counter,
                     advance: Advance) -> Iterator[Document]:
    found = 0
    lines: collections.Counter = collections.Counter()
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            advance(len(line))
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if not line.strip():
                continue
            try:
                record = _decode(line)
            except (*UNDECODABLE, UnicodeDecodeError):  # msgspec raises the latter for bytes not UTF-8
                lines["not JSON"] += 1
                continue
            text = record.get(field) if isinstance(record, dict) else None
            if not isinstance(text, str):
                lines[f"no string field {field!r}"] += 1
                continue
            found += 1
            yield Document(f"{source}:{number}", [text])
    if not found:  # nothing was handed out: the file is skipped whole (its lines counted there)
        detail = ", ".join(f"{reason}: {count}" for reason, count in sorted(lines.items()))
        raise Skipped(NO_FIELD, f"no line holds a string field {field!r} ({detail or 'no lines'})")
    skipped_lines.update(lines)


# -- .html -------------------------------------------------------------------------------------------

# Elements whose text a reader does not see, and menus (nav): links to other pages, the same on each.
_HIDDEN = frozenset({"script", "style", "noscript", "template", "svg", "math", "nav"})
# Elements that end a paragraph where they start and where they end.
_BLOCKS = frozenset("""address article aside blockquote caption dd details dialog div dl dt fieldset figcaption figure
    footer form h1 h2 h3 h4 h5 h6 header hgroup hr li main ol p pre section summary table title tr ul""".split())
_CELLS = frozenset({"td", "th"})
_SPACES = re.compile(r"\s+")
_RUNS_OF_SPACES = re.compile(r" {2,}")
_AROUND_NEWLINES = re.compile(r" *\n *")


class _HtmlText(HTMLParser):
    """The visible text of an HTML page, fed a block at a time: paragraphs out as they end."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []  # text ready to hand out
        self._paragraph: list[str] = []
        self._hidden: list[str] = []  # the hidden elements open
        self._pre = 0
        self._started = False

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in _HIDDEN:
            self._hidden.append(tag)
        elif tag == "br":
            self._paragraph.append("\n")
        elif tag in _BLOCKS:
            self.end_paragraph()
            self._pre += tag == "pre"
        elif tag in _CELLS:
            self._paragraph.append(" ")

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        if tag not in _HIDDEN:  # <svg/> holds nothing
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            if tag in self._hidden:  # an end tag with no start is ignored, as browsers do
                while self._hidden.pop() != tag:
                    pass
        elif tag in _BLOCKS:
            self.end_paragraph()
            if tag == "pre" and self._pre:
                self._pre -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._paragraph.append(data if self._pre else _SPACES.sub(" ", data))

    def end_paragraph(self) -> None:
        text = "".join(self._paragraph)
        self._paragraph = []
        if not self._pre:
            text = _AROUND_NEWLINES.sub("\n", _RUNS_OF_SPACES.sub(" ", text))
        text = text.strip()
        if text:
            self.out.append(BLANK_LINE + text if self._started else text)
            self._started = True

    def take(self) -> str:
        text = "".join(self.out)
        self.out = []
        return text


def _html_text(blocks: Iterable[str]) -> Iterator[str]:
    parser = _HtmlText()
    for block in blocks:
        parser.feed(block)
        if text := parser.take():
            yield text
    parser.close()
    parser.end_paragraph()
    if text := parser.take():
        yield text


# -- .pdf --------------------------------------------------------------------------------------------


def _pdf(path: Path, source: str, advance: Advance) -> Iterator[Document]:
    try:
        import pypdf
    except ImportError:
        raise Skipped(PDF_NEEDS) from None
    # pypdf logs every repaired flaw of a file it still reads; the skip reason says what matters.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    if not head(path):
        raise Skipped(EMPTY)
    try:
        reader = pypdf.PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise Skipped(UNREADABLE_PDF, "encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
    except Skipped:
        raise
    except Exception as exc:  # pypdf raises many kinds on a damaged file; each means this file is unread
        raise Skipped(UNREADABLE_PDF, f"{type(exc).__name__}: {exc}") from None
    advance(path.stat().st_size)
    if not any(page.strip() for page in pages):
        raise Skipped(NO_TEXT, "no text layer (a scan?)")
    # The pages are held, not the file: a PDF's text is a small part of its bytes.
    blocks = [BLANK_LINE + page if number else page for number, page in enumerate(pages)]
    return iter([Document(source, blocks)])

