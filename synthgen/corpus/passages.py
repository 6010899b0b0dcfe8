"""A document's text cut into passages: whole paragraphs packed up to a size, a longer paragraph cut
by words into windows that overlap.

A passage is a slice of the document's text, as it is (its offset and length point at it), so
what joined two paragraphs (a blank line, spaces) is kept. Text comes in blocks and goes out in
passages: nothing holds more than the paragraph being read and the passages being packed, and a
paragraph longer than MAX_PARAGRAPH characters (a file with no blank line) is cut at a space.

Words are runs of characters between spaces, except in Chinese and Japanese, whose characters
count as a word each (a 150-character passage of Chinese holds about as much as 100 English
words). Other scripts written without spaces (Thai, Khmer, ...) count a phrase as a word.
"""

import math
import re
from itertools import chain
from typing import Iterable, Iterator, NamedTuple, Optional

# Han (with the compatibility and the first supplementary block) and kana: a character a word.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df"
WORD = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")
CJK = re.compile(f"[{_CJK}]")
# A blank line: two line ends (\n, \r\n or a lone \r) with nothing but spaces between them.
_BREAK = re.compile(r"(?:\r?\n|\r(?!\n))[^\S\r\n]*(?:\r?\n|\r(?!\n))")
_NOT_SPACE = re.compile(r"\S")
# A paragraph is handed on in pieces of at most this many characters: about 30,000 words, which a
# document with blank lines never reaches, and a bound on what one held paragraph costs.
MAX_PARAGRAPH = 200_000
# A paragraph of at most this many words that ends no sentence is taken for a heading, and starts
# the passage of the paragraph after it rather than ending the one before.
HEADING_WORDS = 12
_SENTENCE_ENDS = (".", "!", "?", "…", ";", ",", '"', "'", "”", "’", "»", ")", "。", "！", "？")


def count_words(text: str) -> int:
    if text.isascii():
        return len(text.split())  # the same count as WORD's, at C speed
    return len(WORD.findall(text))


def mostly_cjk(text: str) -> bool:
    """Written mostly in Chinese or Japanese characters (shingled by characters, not words)."""
    return not text.isascii() and len(CJK.findall(text)) * 2 > count_words(text)


class Paragraph(NamedTuple):
    offset: int  # of its first character in the document's text
    lead: str  # the text between the paragraph before and this one (spaces, line ends)
    text: str  # no space at either end
    words: int


class Piece(NamedTuple):
    """A passage's text and place in its document."""

    offset: int
    text: str
    words: int


def paragraphs(blocks: Iterable[str], longest: int = MAX_PARAGRAPH) -> Iterator[Paragraph]:
    """The paragraphs of a text given in blocks, in order."""
    buffer, base, end = "", 0, 0  # buffer starts at document offset base; end: the last paragraph's end in it
    for block in chain(blocks, [None]):
        final = block is None
        if block is not None:
            buffer, base, end = buffer[end:] + block, base + end, 0
        while found := _NOT_SPACE.search(buffer, end):
            start = found.start()
            broken = _BREAK.search(buffer, start)
            if broken:
                stop = broken.start()
            elif final:
                stop = len(buffer)
            elif len(buffer) - start > longest:
                space = _last_space(buffer, start, start + longest)
                stop = space if space > start else start + longest
            else:
                break  # the paragraph may go on in the next block
            text = buffer[start:stop].rstrip()
            yield Paragraph(base + start, buffer[end:start], text, count_words(text))
            end = start + len(text)


def _last_space(text: str, start: int, stop: int) -> int:
    """Where the last space, tab or line end in text[start:stop] is, or -1."""
    return max(text.rfind(space, start, stop) for space in " \t\n\r")


def passages(pieces: Iterable[Paragraph], size: int, overlap: int, minimum: int) -> Iterator[Piece]:
    """Paragraphs packed whole while they fit in `size` words (a heading goes with the paragraph
    after it); a group that does not fit (a long paragraph, with any too-short ones or headings
    before it) is cut into windows. A document's last passage,
    when shorter than `minimum`, joins the one before; a document shorter than that gives one
    passage, and the caller decides."""
    group: list[Paragraph] = []
    words = 0
    held: Optional[Piece] = None  # the last passage, kept back in case a short end joins it
    for paragraph in pieces:
        if group and words + paragraph.words > size and words >= minimum:
            done, group = _heading_carried(group, minimum)
            for piece in cut(done, size, overlap):
                if held is not None:
                    yield held
                held = piece
            words = sum(paragraph.words for paragraph in group)
        group.append(paragraph)
        words += paragraph.words
        if words > size:
            for piece in cut(group, size, overlap):
                if held is not None:
                    yield held
                held = piece
            group, words = [], 0
    if group and words < minimum and held is not None:
        held = Piece(held.offset, held.text + _joined(group), held.words + words)
    elif group:
        for piece in cut(group, size, overlap):
            if held is not None:
                yield held
            held = piece
    if held is not None:
        yield held


def _heading_carried(group: list[Paragraph], minimum: int) -> tuple[list[Paragraph], list[Paragraph]]:
    """The group split before its trailing headings, which go with the paragraph they head."""
    keep = len(group)
    while keep > 1 and is_heading(group[keep - 1]):
        keep -= 1
    if sum(paragraph.words for paragraph in group[:keep]) < minimum:
        return group, []
    return group[:keep], group[keep:]


def is_heading(paragraph: Paragraph) -> bool:
    """A few words that end no sentence: a title, a heading, a label ("Ingredients:")."""
    return paragraph.words <= HEADING_WORDS and not paragraph.text.endswith(_SENTENCE_ENDS)


def _joined(group: list[Paragraph]) -> str:
    return "".join(paragraph.lead + paragraph.text for paragraph in group)


def cut(group: list[Paragraph], size: int, overlap: int) -> Iterator[Piece]:
    """The group as one passage, or as the fewest windows of at most `size` words that overlap by
    at least `overlap` (all of a length, spread evenly: no short tail)."""
    text = group[0].text + _joined(group[1:])
    offset = group[0].offset
    n = count_words(text)  # the paragraphs' sum, but for a word cut at MAX_PARAGRAPH and joined again
    if n <= size:
        yield Piece(offset, text, n)
        return
    windows = math.ceil((n - overlap) / (size - overlap))
    width = math.ceil((n + (windows - 1) * overlap) / windows)
    firsts = [round(number * (n - width) / (windows - 1)) for number in range(windows)]
    # One pass over the words, noting where the windows' first and last words are (not every word's place).
    marks = sorted([(first, 0, number) for number, first in enumerate(firsts)]
                   + [(first + width - 1, 1, number) for number, first in enumerate(firsts)])
    bounds = [[0, 0] for _ in firsts]
    at = 0
    for position, word in enumerate(WORD.finditer(text)):
        while at < len(marks) and marks[at][0] == position:
            bounds[marks[at][2]][marks[at][1]] = word.end() if marks[at][1] else word.start()
            at += 1
        if at == len(marks):
            break
    for begin, end in bounds:
        yield Piece(offset + begin, text[begin:end], width)
