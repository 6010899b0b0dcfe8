"""synthgen corpus ingest: a user's files into a corpus folder (the passages kept, those dropped,
and the manifest), written through the store's output (CorpusFolder.open) and committed together
at the end.

Files are read one document at a time and a document a block at a time; passages go out in
batches, so memory holds a batch of passages and, for each passage kept, what finding its repeats
takes (Repeats: its near-duplicate signature in curate's NearDuplicates, the one cost that grows
with the corpus; [corpus] near_duplicates = false goes without).

A passage is dropped, and written with its reason to the dropped passages, when it is shorter than
min_words (a whole document that short), repeats a kept passage exactly ("duplicate", naming it:
case and spacing ignored), or nearly ("near-duplicate"). Each is judged after all the passages
before it, whatever the batch it fell in, so the output does not depend on batching.
"""

import array
import collections
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import xxhash

from synthgen import __version__
from synthgen.config import Config, CorpusConfig
from synthgen.corpus.decoding import CANNOT_READ, EMPTY, NO_TEXT, Skipped
from synthgen.corpus.formats import FORMATS, Advance, documents
from synthgen.corpus.passages import Paragraph, mostly_cjk, paragraphs, passages
from synthgen.corpus.walk import InputFile, collect
from synthgen.errors import BadInput
from synthgen.store import CorpusFolder, DroppedPassage, KeptAndDropped, Passage

BATCH = 2048  # passages judged together: NearDuplicates signs a batch in worker processes, 1,024 a worker
SHORT, DUPLICATE, NEAR_DUPLICATE = "short", "duplicate", "near-duplicate"
# NearDuplicates shingles the texts of these languages by characters: any of them will do.
_UNSPACED = "Japanese"


def document_id(source: str) -> str:
    """16 hex digits of the document's name: the same name, the same id, whatever else is ingested."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


class Repeats:
    """The passages kept so far; says which kept passage a new one repeats, exactly or nearly.

    Near duplicates are NearDuplicates' (which finds an exact repeat too: its shingles are the
    same); exact ones are told from them by the digest of the kept passage's text. Without near
    duplicates, a table of digests finds the exact ones. Each kept passage costs the index's
    signature and 20 bytes here: its digest and its id (a document id and an index)."""

    def __init__(self, settings: CorpusConfig):
        self._digests = array.array("Q")
        self._documents = array.array("Q")
        self._indices = array.array("L")
        self.exact: dict[int, int] = {}  # text digest -> number of the kept passage (no near duplicates only)
        self.near = None
        if settings.near_duplicates:
            from synthgen.curate.near_duplicates import NearDuplicates

            near = settings.near_duplicate
            self.near = NearDuplicates(near.threshold, near.num_perm, near.bands, near.word_shingle,
                                       near.char_shingle, near.exact, near.processes or None)

    def id_of(self, number: int) -> str:
        return f"{self._documents[number]:016x}-{self._indices[number]}"

    def judge(self, batch: list[Passage]) -> list[Optional[tuple[str, str]]]:
        """For each passage in turn: None (kept), or (reason, the id of the kept passage it repeats)."""
        keys = [_digest(passage.text) for passage in batch]
        if self.near is not None:
            texts = [passage.text for passage in batch]
            firsts = self.near.first_like_many(texts, [_UNSPACED if mostly_cjk(text) else "" for text in texts])
        verdicts: list[Optional[tuple[str, str]]] = []
        for number, (passage, key) in enumerate(zip(batch, keys)):
            first = firsts[number] if self.near is not None else self.exact.get(key)
            if first is None:
                if self.near is None:
                    self.exact[key] = len(self._digests)
                self._digests.append(key)
                self._documents.append(int(passage.doc_id, 16))
                self._indices.append(int(passage.id.rpartition("-")[2]))
                verdicts.append(None)
            else:
                verdicts.append((DUPLICATE if self._digests[first] == key else NEAR_DUPLICATE, self.id_of(first)))
        return verdicts

    def close(self) -> None:
        if self.near is not None:
            self.near.close()


def _digest(text: str) -> int:
    """Case and runs of spaces do not count: a passage re-wrapped or re-cased is a repeat."""
    return xxhash.xxh3_64_intdigest(" ".join(text.casefold().split()).encode("utf-8", "surrogatepass"))


@dataclass
class Tally:
    """What the manifest counts."""

    files: collections.Counter = field(default_factory=collections.Counter)  # read, by name ending
    documents: int = 0
    characters: int = 0
    words: int = 0
    lines_skipped: collections.Counter = field(default_factory=collections.Counter)  # .jsonl lines
    made: int = 0
    kept: int = 0
    kept_words: int = 0
    kept_characters: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def skip(self, source: str, reason: str, detail: str = "") -> None:
        self.skipped.append({"path": source, "reason": reason, **({"detail": detail} if detail else {})})


class Run:
    """One ingest: documents in, passages to the output through the batch of those not yet judged."""

    def __init__(self, settings: CorpusConfig, output: KeptAndDropped, repeats: Repeats):
        self.settings = settings
        self.output = output
        self.repeats = repeats
        self.tally = Tally()
        self.batch: list[tuple[Passage, int]] = []  # passages not yet judged, and their words

    def read(self, file: InputFile, advance: Advance) -> None:
        tally = self.tally
        if file.size == 0:
            tally.skip(file.source, EMPTY)
            return
        try:
            found = documents(file.path, file.source, file.form, self.settings.text_field, tally.lines_skipped, advance)
        except Skipped as exc:
            tally.skip(file.source, exc.reason, exc.detail)
            return
        except OSError as exc:
            tally.skip(file.source, CANNOT_READ, exc.strerror or str(exc))
            return
        read_any = False
        try:
            for document in found:
                if self.document(document.source, document.blocks):
                    read_any = True
                elif file.form == "jsonl":
                    tally.lines_skipped["no text"] += 1
        except Skipped as exc:  # raised before the first document (a .jsonl file with none)
            tally.skip(file.source, exc.reason, exc.detail)
            return
        if read_any:
            tally.files[file.path.suffix.lower()] += 1
        else:
            tally.skip(file.source, NO_TEXT, "nothing but spaces" if file.form != "jsonl" else "every line's text is empty")

    def document(self, source: str, blocks: Iterable[str]) -> bool:
        """Cut one document into passages; False when it holds no text."""
        settings, tally = self.settings, self.tally
        doc_id = document_id(source)
        number = -1
        counted = _Counted(blocks)
        for number, piece in enumerate(passages(counted.paragraphs(), settings.passage_words,
                                                 settings.overlap_words, settings.min_words)):
            passage = Passage(id=f"{doc_id}-{number}", doc_id=doc_id, source=source, offset=piece.offset,
                              text=piece.text)
            tally.made += 1
            self.batch.append((passage, piece.words))
            if len(self.batch) >= BATCH:
                self.flush()
        if number < 0:
            return False
        tally.documents += 1
        tally.characters += counted.characters
        tally.words += counted.words
        return True

    def flush(self) -> None:
        """Keep or drop the batch's passages, in order (the dropped ones are in input order too)."""
        minimum = self.settings.min_words
        judged = iter(self.repeats.judge([passage for passage, words in self.batch if words >= minimum]))
        for passage, words in self.batch:
            verdict: Optional[tuple[str, Optional[str]]] = next(judged) if words >= minimum else (SHORT, None)
            if verdict is None:
                self.output.keep(passage)
                self.tally.kept += 1
                self.tally.kept_words += words
                self.tally.kept_characters += len(passage.text)
            else:
                self.drop(passage, *verdict)
        self.batch = []

    def drop(self, passage: Passage, reason: str, duplicate_of: Optional[str] = None) -> None:
        self.output.drop(DroppedPassage(id=passage.id, doc_id=passage.doc_id, source=passage.source,
                                        offset=passage.offset, text=passage.text, reason=reason,
                                        duplicate_of=duplicate_of))
        self.tally.dropped[reason] += 1


class _Counted:
    """A document's paragraphs, counting the characters and words that went by."""

    def __init__(self, blocks: Iterable[str]):
        self.blocks = blocks
        self.characters = 0
        self.words = 0

    def paragraphs(self) -> Iterator[Paragraph]:
        for paragraph in paragraphs(self._blocks()):
            self.words += paragraph.words
            yield paragraph

    def _blocks(self) -> Iterator[str]:
        for block in self.blocks:
            self.characters += len(block)
            yield block


def ingest(paths: list[Path], out: Path, config: Config, show_progress: bool = True) -> dict[str, Any]:
    """Ingest the files and folders of `paths` into the corpus folder `out`; returns its manifest."""
    from tqdm import tqdm

    settings = config.corpus
    folder = CorpusFolder(out)
    inputs = collect(paths, exclude=out)  # a wrong path fails before anything is written
    if not inputs.files:
        raise BadInput(f"nothing to ingest in {', '.join(str(p) for p in paths)}: {_passed_over(inputs) or 'no files'} "
                       f"(corpus ingest reads {', '.join(FORMATS)})")
    repeats = Repeats(settings)
    try:
        with folder.open() as output, tqdm(total=sum(f.size for f in inputs.files), unit="B", unit_scale=True,
                                           desc="ingest", disable=None if show_progress else True) as bar:
            run = Run(settings, output, repeats)
            done = 0
            for file in inputs.files:
                run.read(file, bar.update)
                done += file.size
                bar.update(max(0, done - bar.n))  # a file skipped unread, or read in another measure
            run.flush()
            tally = run.tally
            if not tally.kept:
                reasons = collections.Counter(entry["reason"] for entry in tally.skipped)
                raise BadInput(f"no passage to keep in {', '.join(str(p) for p in paths)}: "
                               + "; ".join(part for part in (
                                   f"{len(tally.skipped)} files skipped ({_counts(reasons)})" if reasons else "",
                                   f"{tally.made} passages made, dropped {_counts(tally.dropped)}" if tally.made else "",
                                   _passed_over(inputs)) if part))
            for name, why in inputs.unreadable:
                tally.skip(name, CANNOT_READ, why)
            manifest = _manifest(paths, settings, inputs, tally)
            output.commit(manifest)
    finally:
        repeats.close()
    return manifest


def _manifest(paths: list[Path], settings: CorpusConfig, inputs: Any, tally: Tally) -> dict[str, Any]:
    reasons = collections.Counter(entry["reason"] for entry in tally.skipped)
    return {
        "synthgen_version": __version__,
        "inputs": [str(path) for path in paths],
        "settings": settings.model_dump(mode="json"),
        "files": {
            "read": sum(tally.files.values()),
            "by_ending": dict(sorted(tally.files.items())),
            "skipped": len(tally.skipped),
            "hidden": inputs.hidden,
            "other_formats": dict(sorted(inputs.other.items())),
        },
        "documents": {"read": tally.documents, "characters": tally.characters, "words": tally.words,
                      "lines_skipped": dict(sorted(tally.lines_skipped.items()))},
        "passages": {"made": tally.made, "kept": tally.kept,
                     "words": tally.kept_words, "characters": tally.kept_characters,
                     "dropped": dict(sorted(tally.dropped.items()))},
        "skipped": {"by_reason": dict(sorted(reasons.items())), "files": tally.skipped},
    }


def _counts(counter: Any) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items())) or "none"


def _passed_over(inputs: Any) -> str:
    parts = []
    if inputs.other:
        parts.append(f"other formats {sum(inputs.other.values())} ({_counts(inputs.other)})")
    if inputs.hidden:
        parts.append(f"hidden {inputs.hidden}")
    return "passed over: " + ", ".join(parts) if parts else ""


def summary(manifest: dict[str, Any], out: Path) -> str:
    """The terminal's line: what was read, kept, dropped and skipped, and where it went."""
    files, documents, passages_ = manifest["files"], manifest["documents"], manifest["passages"]
    skipped = manifest["skipped"]["by_reason"]
    passed = {**({"hidden": files["hidden"]} if files["hidden"] else {}),
              **({"other formats": sum(files["other_formats"].values())} if files["other_formats"] else {})}
    return (f"read {files['read']} files, {documents['read']} documents: kept {passages_['kept']} passages "
            f"({passages_['words']:,} words), dropped {_counts(passages_['dropped'])}; "
            f"skipped {files['skipped']} files ({_counts(skipped)}); passed over {_counts(passed)} "
            f"-> {CorpusFolder(out).passages}")
