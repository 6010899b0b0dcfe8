"""The curate command: each example passes the checks in order, or is dropped by the first that
fails it, with the evidence; nothing is lost (kept + dropped = the examples read).

A check is an object with a `name` (as --checks spells it), the `reason` it writes, and
`judge(example)`: None to pass the example on, or the evidence for dropping it. Checks that compare
an example with those before it (near duplicates) remember only the examples they passed, so they
come after the checks that look at one example alone.
"""

import collections
import contextlib
import multiprocessing
import os
from dataclasses import dataclass, field
from itertools import islice
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Protocol

from synthgen.config import Config
from synthgen.curate.retrieval import CONSISTENCY, FALSE_NEGATIVE, RetrievalStage, open_cache
from synthgen.errors import BadInput
from synthgen.kinds import SOURCE_LANGUAGE, TARGET_LANGUAGE
from synthgen.store import (
    RELABEL_NAME,
    CorpusFolder,
    CuratedFolder,
    Example,
    ReadCounts,
    dropped,
    example_files,
    read_examples,
)


class Check(Protocol):
    name: str
    reason: str

    def judge_many(self, examples: list[Example]) -> list[Optional[dict[str, Any]]]:
        """judge() of each example in turn (a check may do it faster, e.g. in worker processes)."""
        ...

    def summary(self) -> dict[str, int]: ...

    def close(self) -> None:
        """End what the check started (worker processes)."""
        ...


class NearDuplicateCheck:
    name = reason = "near-duplicate"

    def __init__(self, config: Config):
        from synthgen.curate.near_duplicates import NearDuplicates

        settings = config.curate.near_duplicate
        self.fields = settings.fields
        self.index = NearDuplicates(settings.threshold, settings.num_perm, settings.bands, settings.word_shingle,
                                    settings.char_shingle, settings.exact, settings.processes or None)
        self.ids: list[str] = []  # the ids of the examples kept so far, by their key in the index

    def judge(self, example: Example) -> Optional[dict[str, Any]]:
        return self.judge_many([example])[0]

    def judge_many(self, examples: list[Example]) -> list[Optional[dict[str, Any]]]:
        texts = ["\n".join(getattr(example, name) or "" for name in self.fields) for example in examples]
        verdicts: list[Optional[dict[str, Any]]] = []
        for example, first in zip(examples, self.index.first_like_many(texts, [e.language for e in examples])):
            if first is None:
                self.ids.append(example.id)
                verdicts.append(None)
            else:
                verdicts.append({"duplicate_of": self.ids[first]})
        return verdicts

    def close(self) -> None:
        self.index.close()

    def summary(self) -> dict[str, int]:
        return {"examples kept as originals": len(self.ids)}


class LanguageCheck:
    """Query and positive in the example's language; for bitext, S1 in the source language and S2
    and S3 in the target language. Texts in a language synthgen does not know (imported data), or
    shorter than min_chars, are passed through and counted.

    A large batch is judged in worker processes (naming a language is all of this check's time and
    needs nothing but the texts), each with its own copy of the model."""

    name = reason = "language"

    def __init__(self, config: Config, processes: Optional[int] = None):
        from synthgen.config import known_languages
        from synthgen.curate.language import LanguageIdentifier

        self.identifier = LanguageIdentifier()  # here too: a missing extra fails before any reading
        self.min_chars = config.curate.language.min_chars
        self.known = frozenset(known_languages())
        self.counts: collections.Counter = collections.Counter()
        self.processes = processes if processes is not None else (os.cpu_count() or 1)
        self._pool: Optional[Pool] = None

    def judge(self, example: Example) -> Optional[dict[str, Any]]:
        return self.judge_many([example])[0]

    def judge_many(self, examples: list[Example]) -> list[Optional[dict[str, Any]]]:
        jobs = [language_texts(example) for example in examples]
        if self.processes < 2 or len(jobs) < LANGUAGE_PARALLEL_FROM:
            verdicts, counts = judge_languages(self.identifier, jobs, self.known, self.min_chars)
            self.counts.update(counts)
            return verdicts
        if self._pool is None:
            self._pool = multiprocessing.Pool(self.processes, initializer=_load_identifier)
        chunks = [(jobs[n:n + LANGUAGE_CHUNK], self.known, self.min_chars) for n in range(0, len(jobs), LANGUAGE_CHUNK)]
        results: list[Optional[dict[str, Any]]] = []
        for verdicts, counts in self._pool.imap(_judge_chunk, chunks):
            results += verdicts
            self.counts.update(counts)
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def summary(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


LANGUAGE_PARALLEL_FROM = 1_000  # a worker loads the model in about a second: not worth it for less
LANGUAGE_CHUNK = 250

# What the language check reads of an example: (field, text, the language expected) per text.
LanguageTexts = list[tuple[str, Optional[str], Optional[str]]]


def language_texts(example: Example) -> LanguageTexts:
    if example.kind == "bitext":
        source, target = example.placeholders.get(SOURCE_LANGUAGE), example.placeholders.get(TARGET_LANGUAGE)
        return [("query", example.query, source), ("positive", example.positive, target),
                ("negative", example.negative, target)]
    return [("query", example.query, example.language), ("positive", example.positive, example.language)]


def judge_languages(identifier: Any, jobs: list[LanguageTexts], known: frozenset[str],
                    min_chars: int) -> tuple[list[Optional[dict[str, Any]]], collections.Counter]:
    """Each example's evidence (the first text not in its language) or None, and what was counted."""
    counts: collections.Counter = collections.Counter()
    verdicts: list[Optional[dict[str, Any]]] = []
    for texts in jobs:
        verdict = None
        for name, text, language in texts:
            if not text:
                continue
            if language not in known:
                counts["texts in no known language"] += 1
            elif len(text.strip()) < min_chars:
                counts["texts too short to tell"] += 1
            else:
                counts["texts checked"] += 1
                evidence = identifier.verdict(text, language)
                if evidence is not None:
                    verdict = {"field": name, "expected": language, **evidence}
                    break
        verdicts.append(verdict)
    return verdicts, counts


_IDENTIFIER: Any = None  # a worker process's model


def _load_identifier() -> None:
    global _IDENTIFIER
    from synthgen.curate.language import LanguageIdentifier

    _IDENTIFIER = LanguageIdentifier()


def _judge_chunk(job: tuple[list[LanguageTexts], frozenset[str], int]) -> tuple[list, collections.Counter]:
    return judge_languages(_IDENTIFIER, *job)


CHECKS: dict[str, Callable[[Config], Check]] = {"language": LanguageCheck, "near-duplicate": NearDuplicateCheck}
BATCH = 4096  # examples judged together: a check may hand a batch to worker processes

# Checks that need every example of a kind before they judge one: they run after those above, on
# what those kept, through an embedder.
EMBEDDING_CHECKS = (CONSISTENCY, FALSE_NEGATIVE)


def check_names(names: list[str]) -> None:
    known = [*CHECKS, *EMBEDDING_CHECKS]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BadInput(f"no check {unknown[0]!r} (known: {', '.join(known)})")
    if len(set(names)) != len(names):
        raise BadInput("--checks names a check twice")


def make_checks(names: list[str], config: Config) -> list[Check]:
    # Checks that remember what they passed go last, whatever order they were named in.
    return [CHECKS[name](config) for name in sorted((n for n in names if n in CHECKS), key=lambda n: n == "near-duplicate")]


@dataclass
class Tally:
    """Examples in, kept, and dropped by reason, overall and per kind and per language."""

    examples: int = 0
    kept: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)
    kinds: dict = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    languages: dict = field(default_factory=lambda: collections.defaultdict(collections.Counter))

    def add(self, example: Example, reason: Optional[str]) -> None:
        outcome = reason or "kept"
        self.examples += 1
        self.kept += reason is None
        if reason:
            self.dropped[reason] += 1
        for table, name in ((self.kinds, example.kind), (self.languages, example.language or "(none)")):
            table[name]["in"] += 1
            table[name][outcome] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "by_kind": {name: dict(counts) for name, counts in sorted(self.kinds.items())},
            "by_language": {name: dict(counts) for name, counts in
                            sorted(self.languages.items(), key=lambda item: -item[1]["in"])},
        }


def curate(paths: list[Path], out: Path, config: Config, checks: Optional[list[str]] = None,
           show_progress: bool = True, relabel: bool = False, corpus: Optional[Path] = None) -> dict[str, Any]:
    """Curate the examples of `paths` into the folder `out`; returns the report it wrote.

    checks: the checks to run (None: the config's, where embedding checks are skipped, and said so,
    when no embedder can be had). [curate.mine] negatives > 0 mines hard negatives for what is kept;
    relabel: the LLM judges the documents retrieved for each kept query (judgements kept in
    OUT/relabel.jsonl, so a rerun asks again only what it has not judged); corpus: a corpus folder
    whose passages are the documents short-long and long-long queries are ranked against (the
    consistency check, relabelling) and their negatives mined from.
    """
    settings = config.curate
    names = checks if checks is not None else settings.checks
    check_names(names)
    active = make_checks(names, config)
    embedding = [name for name in EMBEDDING_CHECKS if name in names]
    folder = CuratedFolder(out)
    files = example_files(paths, exclude=folder.examples)  # a wrong path fails before a model loads
    if corpus is not None and not (settings.mine.negatives or relabel or embedding):
        raise BadInput("--corpus is the pool the embedding checks, --mine-negatives and --relabel retrieve from: "
                       "give one of them too")
    corpus_folder = CorpusFolder(corpus) if corpus is not None else None
    if corpus_folder is not None:
        corpus_folder.read_manifest()  # not a corpus: said before a model loads
    skipped: dict[str, str] = {}
    cache = None
    if embedding or settings.mine.negatives or relabel:
        try:
            cache = open_cache(settings.embed, show_progress)
        except BadInput as exc:
            if checks is not None or settings.mine.negatives or relabel:
                raise
            skipped = {name: str(exc) for name in embedding}
            embedding = []
    read = ReadCounts()
    tally = Tally()
    with contextlib.ExitStack() as stack, folder.open() as output:
        for check in active:
            stack.callback(check.close)
        passages = stack.enter_context(contextlib.closing(corpus_folder.index())) if corpus_folder else None
        stage = RetrievalStage(config, cache, embedding, settings.mine.negatives, output.spool(),
                               out / RELABEL_NAME if relabel else None, show_progress, passages) if cache else None
        for batch in batched(read_examples(files, read, "curate", show_progress), BATCH):
            for example, verdict in zip(batch, judge(active, batch)):
                if verdict is not None:
                    output.drop(dropped(example, *verdict))
                    tally.add(example, verdict[0])
                elif stage is None:
                    output.keep(example)
                    tally.add(example, None)
                else:
                    stage.add(example)
        read.require_examples(paths)
        if stage is not None:
            stage.run()
            for example, drop in stage.results():
                if drop is not None:
                    output.drop(dropped(example, *drop))
                else:
                    output.keep(example)
                tally.add(example, drop[0] if drop else None)
        report = {
            "input": {"files": [str(f) for f in files], "lines": read.lines, "unreadable": read.unreadable,
                      "not_examples": read.not_examples},
            **tally.as_dict(),
            "checks": [check.name for check in active] + embedding + (["relabel"] if relabel else []),
            "check_counts": {check.name: check.summary() for check in active} | (stage.summary() if stage else {}),
            "skipped": skipped,
            "embedder": {**stage.cache.embedder.describe(), "languages": stage.languages,
                         "cache": str(stage.cache.folder), "computed": stage.cache.computed,
                         "reused": stage.cache.reused} if stage else None,
            "settings": settings.model_dump(mode="json"),
        }
        output.commit(report)
    return report


def batched(items: Iterable[Example], size: int) -> Iterator[list[Example]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def judge(checks: list[Check], batch: list[Example]) -> list[Optional[tuple[str, dict[str, Any]]]]:
    """Each example's (reason, evidence) from the first check it fails, or None; each check sees
    only the examples the checks before it passed, in order."""
    verdicts: list[Optional[tuple[str, dict[str, Any]]]] = [None] * len(batch)
    for check in checks:
        pending = [n for n, verdict in enumerate(verdicts) if verdict is None]
        for n, evidence in zip(pending, check.judge_many([batch[n] for n in pending])):
            if evidence is not None:
                verdicts[n] = (check.reason, evidence)
    return verdicts


def mine_grounded_run(examples: Path, out: Path, config: Config, corpus: Path,
                      show_progress: bool = True) -> dict[str, Any]:
    """What `generate --corpus` does once its run has N examples: [generate.corpus] negatives hard
    negatives for each, mined among the corpus's passages (after the LLM relabels them, with
    [generate.corpus] relabel), by curate itself into the folder `out`. No other check: those are
    curate's to run, and say what they drop."""
    grounded = config.generate.corpus
    mining = config.model_copy(deep=True)
    mining.curate.mine.negatives = grounded.negatives
    return curate([examples], out, mining, checks=[], show_progress=show_progress, relabel=grounded.relabel,
                  corpus=corpus)
