"""A file's bytes as text: which encoding it is in, decided before any of it becomes a document.

A byte-order mark names UTF-8, UTF-16 or UTF-32 outright. Without one, a NUL byte near the start
means a binary file; then UTF-8, which nearly every text file written today is. What is not
UTF-8 is named by charset-normalizer from a sample: a Western file (Latin-1, cp1252) decoded as
Latin-1 by default would read right, but a Cyrillic cp1251 or a Japanese Shift_JIS one would
become mojibake that nothing downstream notices. The whole file is checked against the encoding
before the first passage is made, so a file is never given up halfway: it is read whole or
skipped whole, with its reason.
"""

import codecs
from pathlib import Path
from typing import Callable, Iterator, Optional

# Skip reasons, as the manifest counts them.
EMPTY = "empty"
BINARY = "binary"
UNDECODABLE = "undecodable"
NO_TEXT = "no text"
CANNOT_READ = "cannot read"

SNIFF = 1 << 16  # bytes read to find a byte-order mark or NUL bytes, and sampled for the detector
BLOCK = 1 << 18  # bytes decoded at a time: a document is never read whole

# UTF-32 LE's mark begins with UTF-16 LE's, so it is tried first. The codecs drop the mark.
# Windows' Western encoding, a superset of Latin-1's printable characters: the legacy encoding of
# most text that is not UTF-8 (HTML5 reads a page labelled Latin-1 with it too).
WESTERN = "cp1252"
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class Skipped(Exception):
    """A file (or a .jsonl file's every line) that gives no document: the reason, as counted, and a detail."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(SNIFF)


def bom_codec(start: bytes) -> Optional[str]:
    for bom, codec in BOMS:
        if start.startswith(bom):
            return codec
    return None


def encoding_of(path: Path) -> str:
    """The codec that decodes the whole file; Skipped when none does, or the file is empty or binary."""
    start = head(path)
    if not start:
        raise Skipped(EMPTY)
    codec = bom_codec(start)
    if codec is not None:
        if first_error(path, codec) is not None:
            raise Skipped(UNDECODABLE, f"not {codec} after its byte-order mark")
        return codec
    if b"\0" in start:
        raise Skipped(BINARY, "NUL bytes")
    error = first_error(path, "utf-8")
    if error is None:
        return "utf-8"
    from charset_normalizer import from_bytes

    # The head, and the bytes where UTF-8 failed: what a file holds beyond a plain ASCII head.
    with open(path, "rb") as f:
        f.seek(max(0, error - SNIFF // 2))
        sample = start + b"\n" + f.read(SNIFF) if error >= SNIFF else start
    matches = from_bytes(sample)
    guess = matches.best()
    if guess is None:
        raise Skipped(UNDECODABLE, "not UTF-8, and no other encoding fits (binary?)")
    # Encodings that fit equally well are told apart by nothing in the text ("très" reads as
    # French in cp1250 too, as "trčs"): the one most files in such a tie are in wins.
    tied = {match.encoding for match in matches
            if (match.chaos, match.coherence) == (guess.chaos, guess.coherence)}
    codec = WESTERN if WESTERN in tied else guess.encoding
    if first_error(path, codec) is None:
        return codec
    if codec == WESTERN:  # one of the five bytes cp1252 leaves undefined: Latin-1 proper
        return "latin-1"
    raise Skipped(UNDECODABLE, f"neither UTF-8 nor {codec}")


def first_error(path: Path, codec: str) -> Optional[int]:
    """About where (in bytes) the file stops decoding with codec; None when it decodes whole."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    position = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(BLOCK)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                return position + max(0, exc.start)
            if not block:
                return None
            position += len(block)


def text_blocks(path: Path, codec: str, advance: Callable[[int], None]) -> Iterator[str]:
    """The file's text a block at a time, newlines as they are (offsets count every character).

    The file decoded whole when its encoding was chosen; should it change since, a bad byte reads
    as U+FFFD rather than ending the document halfway."""
    decoder = codecs.getincrementaldecoder(codec)("replace")
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            advance(len(block))
            if text := decoder.decode(block):
                yield text
    if tail := decoder.decode(b"", final=True):
        yield tail
