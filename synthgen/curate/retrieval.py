"""The checks that judge an example against the others of its kind through an embedder.

- consistency (round trip, as Promptagator): the positive must be among the top k documents for its
  own query, out of the distinct positives of its kind; else the example is dropped as inconsistent,
  with the positive's rank and the document that beat it.
- false-negative: the example's negative must not score above its positive for its query; one that
  does is dropped, swapped with the positive, or kept, as set.
- mining: K hard negatives per example from every document of its kind, by sentence-transformers'
  mine_hard_negatives with a margin relative to the positive's score (NV-Retriever).

Queries are embedded through the query template with the example's task, documents as they are,
all through the embedding cache. Examples the embedder cannot read (not English, with an
English-only embedder) are passed through and counted.

Memory grows with the number of examples, not their length: the stage keeps the examples in a spool
on disk and holds each by the digests of its texts; vectors come from the cache's memory-mapped
file, a kind at a time. (Relabelling holds the texts it shows the LLM while it asks.)
"""

import collections
import contextlib
import itertools
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

import msgspec

from synthgen.config import Config, EmbedConfig
from synthgen.embedding_cache import EmbeddingCache, text_digest
from synthgen.instructions import query_text
from synthgen.kinds import SOURCE_LANGUAGE, TARGET_LANGUAGE
from synthgen.models import DEFAULT_EMBEDDING_MODEL
from synthgen.store import Example, Passage, PassageIndex, Spool

if TYPE_CHECKING:
    from synthgen.curate.relabel import Candidate
    from synthgen.store import Judgement

CONSISTENCY, FALSE_NEGATIVE = "consistency", "false-negative"
INCONSISTENT = "inconsistent"
PASSAGE_POSITIVES = ("short-long", "long-long")  # the kinds whose positive a corpus passage can be
ENGLISH = ("English", "unknown")  # unknown: imported without a language, most often English
# Scores held at once (float32: 64 MB): queries are scored against a kind's documents in blocks of
# this many over the number of documents, by the checks and by mining alike.
SCORES_PER_BLOCK = 2**24


def block_rows(documents: int) -> int:
    return max(1, SCORES_PER_BLOCK // max(1, documents))


@dataclass(slots=True)
class Entry:
    """An example as this stage holds it: its number in the spool, and its texts by their digests
    (the texts stay in the spool: memory grows with the examples, not with their length)."""

    row: int
    id: str
    kind: str
    query: bytes  # through the query template
    positive: bytes
    negative: Optional[bytes]


@dataclass
class Outcome:
    """What the stage decided for one example: dropped (reason, evidence), swapped, or given negatives."""

    drop: Optional[tuple[str, dict[str, Any]]] = None
    swap: Optional[dict[str, Any]] = None
    judged: Optional[tuple["Candidate", "Judgement"]] = None  # relabelling's judgement
    negatives: list[bytes] = field(default_factory=list)  # mined, by digest
    passage: Optional[Passage] = None  # the corpus passage a relabelled example's new positive is


def readable(example: Example, languages: str) -> bool:
    if languages == "all":
        return True
    if example.kind == "bitext":
        return all(example.placeholders.get(key) == "English" for key in (SOURCE_LANGUAGE, TARGET_LANGUAGE))
    return example.language in ENGLISH


def embed_languages(settings: str, model_name: str) -> str:
    if settings != "auto":
        return settings
    return "english" if model_name == DEFAULT_EMBEDDING_MODEL else "all"


def open_cache(settings: EmbedConfig, show_progress: bool = True) -> EmbeddingCache:
    """The embedder [curate.embed] names, behind its on-disk cache."""
    from synthgen.embedders import open_embedder

    with quiet_stderr(not show_progress):
        embedder = open_embedder(settings.model or None, settings.base_url or None, None, settings.batch_size,
                                 settings.max_seq_length or None)
    return EmbeddingCache(embedder, Path(settings.cache).expanduser() if settings.cache else None)


class RetrievalStage:
    """Holds every example given to it in a spool, judges them all at once (run), then gives them back
    in order with what it decided (results)."""

    def __init__(self, full: Config, cache: EmbeddingCache, checks: list[str], mine: int, spool: Spool,
                 relabel_ledger: Optional[Path] = None, show_progress: bool = True,
                 passages: Optional[PassageIndex] = None):
        """relabel_ledger: where relabelling keeps its judgements (None: no relabelling); passages: a
        corpus whose passages are the pool negatives are mined from for the kinds whose positive is a
        passage (short-long, long-long), instead of the documents of the kind."""
        self.passages = passages
        self._passage_numbers: dict[bytes, int] = {}  # a passage's digest -> its number, once embedded
        self.full = full
        self.config = config = full.curate
        self.relabel_ledger = relabel_ledger
        self.relabelled: Optional[dict[str, Any]] = None  # relabelling's summary
        self.cache = cache
        self.checks = checks
        self.mine = mine
        self.spool = spool
        self.show_progress = show_progress
        self.languages = embed_languages(config.embed.languages, cache.embedder.name)
        self.entries: list[Entry] = []
        self.documents: dict[bytes, tuple[int, str]] = {}  # a document -> the row and field it is first found in
        self.outcomes: dict[int, Outcome] = {}  # by row: only the examples something was decided for
        self.counts: dict[str, collections.Counter] = {name: collections.Counter() for name in [*checks, "mine"]}
        self.ranks: collections.Counter = collections.Counter()  # rank of the positive -> examples
        self.margins: list[float] = []  # cos(q, positive) - cos(q, negative) of each example with a negative

    def add(self, example: Example) -> None:
        """Take the example into the stage; one the embedder cannot read is counted passed through."""
        row = self.spool.add(example)
        if not readable(example, self.languages):
            for counts in self.counts.values():
                counts["passed through (a language the embedder does not read)"] += 1
            return
        query, positive, negative = self._texts(example)
        entry = Entry(row, example.id, sys.intern(example.kind), text_digest(query), text_digest(positive),
                      text_digest(negative) if negative is not None else None)
        self.entries.append(entry)
        self.documents.setdefault(entry.positive, (row, "positive"))
        if entry.negative is not None:
            self.documents.setdefault(entry.negative, (row, "negative"))

    def _texts(self, example: Example) -> tuple[str, str, Optional[str]]:
        """What is embedded of an example: the query through the template, the positive, the negative."""
        return (query_text(self.config.embed.query_template, example.task, example.query),
                example.positive, example.negative)

    def document(self, digest: bytes) -> str:
        """A document's text, read back from the spool (or the corpus)."""
        if digest not in self.documents and self.passages is not None:
            return self.passages[self._passage_numbers[digest]].text
        row, name = self.documents[digest]
        return getattr(self.spool.get(row), name)

    def _corpus_pool(self) -> list[bytes]:
        """Every distinct passage of the corpus by its digest, embedded first (a pass over the corpus
        for the digests, another for the texts the cache lacks)."""
        assert self.passages is not None
        if not self._passage_numbers:
            for number, passage in enumerate(self.passages):
                self._passage_numbers.setdefault(text_digest(passage.text), number)
            missing = self.cache.missing(self._passage_numbers)
            if missing:
                texts = ((digest, passage.text) for passage in self.passages
                         if (digest := text_digest(passage.text)) in missing)
                self.cache.embed(texts, len(missing), self.show_progress, "embedding the corpus")
        return list(self._passage_numbers)

    def _pool(self, kind: str, entries: list[Entry]) -> list[bytes]:
        """The documents a query of the kind is ranked against: its kind's positives, or with a
        corpus, for the kinds whose positive is a passage, every passage of it (and any positive that
        is not one of them), as Promptagator's round trip and FRet's relabelling retrieve."""
        positives = list(dict.fromkeys(e.positive for e in entries))
        if self.passages is None or kind not in PASSAGE_POSITIVES:
            return positives
        pool = self._corpus_pool()
        return pool + [d for d in positives if d not in self._passage_numbers]

    def results(self) -> Iterator[tuple[Example, Optional[tuple[str, dict[str, Any]]]]]:
        """Every example given, in order: dropped (with its reason and evidence) or kept, and then
        with what run() did to it."""
        for row, example in enumerate(self.spool):
            outcome = self.outcomes.get(row)
            if outcome is None:
                yield example, None
            elif outcome.drop is not None:
                yield example, outcome.drop
            else:
                yield self._amended(example, outcome), None

    def _amended(self, example: Example, outcome: Outcome) -> Example:
        """The example with what the stage did to it, in the order it did it: swapped (a false
        negative), relabelled, given mined negatives."""
        if outcome.swap is not None:
            example = msgspec.structs.replace(example, positive=example.negative, negative=example.positive,
                                              curation={**(example.curation or {}), "swapped": outcome.swap})
        if outcome.judged is not None:
            from synthgen.curate.relabel import judged_example

            example = judged_example(example, *outcome.judged)
            if outcome.passage is not None:
                example = msgspec.structs.replace(example, passage_id=outcome.passage.id, doc_id=outcome.passage.doc_id)
        if outcome.negatives:
            have = {example.positive, *example.all_negatives()}
            mined = [text for text in map(self.document, outcome.negatives) if text not in have]
            example = msgspec.structs.replace(example, negatives=(example.negatives or []) + mined or None)
        return example

    def run(self) -> dict[int, Outcome]:
        self._embed()
        by_kind: dict[str, list[Entry]] = collections.defaultdict(list)
        for entry in self.entries:
            by_kind[entry.kind].append(entry)
        retrieved: dict[int, list[bytes]] = {}  # row -> the documents retrieved for its query, best first
        for kind, entries in sorted(by_kind.items()):
            np = _numpy()
            queries = self.cache.vectors_of([e.query for e in entries])
            documents = self._pool(kind, entries)
            vectors = self.cache.vectors_of(documents)
            where = {digest: n for n, digest in enumerate(documents)}
            own = np.fromiter((where[e.positive] for e in entries), dtype=np.int64, count=len(entries))
            positive_scores = np.einsum("ij,ij->i", queries, vectors[own])
            del where
            if CONSISTENCY in self.checks or self.relabel_ledger is not None:
                self._rank(entries, queries, documents, vectors, own, retrieved)
            if FALSE_NEGATIVE in self.checks:
                self._false_negatives(entries, queries, positive_scores)
        if self.relabel_ledger is not None:
            self._relabel(retrieved)
        if self.mine:
            self._mine(by_kind)
        return self.outcomes

    def _outcome(self, row: int) -> Outcome:
        return self.outcomes.setdefault(row, Outcome())

    def _dropped(self, row: int) -> bool:
        outcome = self.outcomes.get(row)
        return outcome is not None and outcome.drop is not None

    def _embed(self) -> None:
        """Embed every text not in the cache yet, in one pass over the spool (the texts are read back
        from it a chunk at a time, never all held)."""
        needed = itertools.chain.from_iterable((e.query, e.positive, e.negative) for e in self.entries)
        missing = self.cache.missing(d for d in needed if d is not None)
        if not missing:
            return

        def texts() -> Iterator[tuple[bytes, str]]:
            entries = iter(self.entries)
            entry = next(entries, None)
            for row, example in enumerate(self.spool):
                if entry is None:
                    return
                if entry.row != row:
                    continue  # passed through
                for digest, text in zip((entry.query, entry.positive, entry.negative), self._texts(example)):
                    if digest in missing and text is not None:
                        missing.discard(digest)
                        yield digest, text
                entry = next(entries, None)

        self.cache.embed(texts(), len(missing), self.show_progress)

    def _relabel(self, retrieved: dict[int, list[bytes]]) -> None:
        """The LLM judges each kept example's retrieved documents; a relabelled example's new
        positive is what mining then mines for. The candidates' texts are held while the LLM judges."""
        from synthgen.curate.relabel import (
            DROPPED,
            RELABELLED,
            RELABELLED_OUT,
            Candidate,
            candidate_documents,
            evidence,
            relabel_candidates,
        )

        assert self.relabel_ledger is not None
        top_m = self.config.relabel.top_m
        entries = {e.row: e for e in self.entries if not self._dropped(e.row)}
        candidates, digests = [], {}
        for entry in entries.values():
            example = self.spool.get(entry.row)
            shown = candidate_documents(entry.positive, retrieved[entry.row], top_m)
            digests[entry.row] = shown
            candidates.append(Candidate(entry.row, entry.id, example.task, example.query,
                                        self.document(entry.positive), [self.document(d) for d in shown]))
        result = relabel_candidates(candidates, self.full, self.relabel_ledger, self.show_progress)
        for candidate in candidates:
            judgement = result.judgements[candidate.row]
            outcome, entry = self._outcome(candidate.row), entries[candidate.row]
            outcome.judged = (candidate, judgement)
            if judgement.verdict == DROPPED:
                outcome.drop = (RELABELLED_OUT, evidence(judgement, candidate))
            elif judgement.verdict == RELABELLED:
                entry.positive, entry.negative = digests[candidate.row][judgement.best], entry.positive
                if entry.positive in self._passage_numbers:  # grounded: the example moves to that passage
                    outcome.passage = self.passages[self._passage_numbers[entry.positive]]  # type: ignore[index]
        self.relabelled = result.summary()
    def _rank(self, entries: list[Entry], queries: Any, documents: list[bytes], vectors: Any, own: Any,
              retrieved: dict[int, list[bytes]]) -> None:
        """Each query against every positive of its kind: the rank of its own (consistency), and the
        documents relabelling shows the LLM."""
        np = _numpy()
        k = self.config.consistency.top_k
        consistency = CONSISTENCY in self.checks
        top_m = self.config.relabel.top_m if self.relabel_ledger is not None else 0
        owners: dict[bytes, str] = {}  # a document -> the id of the first example whose positive it is
        for entry in entries:
            owners.setdefault(entry.positive, entry.id)
        counts = self.counts.get(CONSISTENCY)
        rows = block_rows(len(documents))
        for start in range(0, len(entries), rows):
            block = queries[start:start + rows] @ vectors.T
            # The positive's score from the same product as the others': computed apart, it can differ
            # in the last bit, and the positive would outrank itself.
            mine = block[np.arange(len(block)), own[start:start + rows]]
            ranks = (block > mine[:, None]).sum(axis=1) + 1
            best = block.argmax(axis=1)
            if top_m:
                m = min(top_m, block.shape[1])
                top = np.argpartition(-block, m - 1, axis=1)[:, :m]
            for offset, rank in enumerate(ranks.tolist()):
                entry = entries[start + offset]
                if top_m:
                    order = top[offset][np.argsort(-block[offset, top[offset]], kind="stable")]
                    retrieved[entry.row] = [documents[n] for n in order.tolist()]
                if not consistency or counts is None:
                    continue
                counts["checked"] += 1
                self.ranks[rank] += 1
                if rank > k:
                    counts["dropped"] += 1
                    self._outcome(entry.row).drop = (INCONSISTENT, {
                        "rank": rank, "top_k": k, "documents": len(documents),
                        "positive_score": _score(mine[offset]),
                        "best_score": _score(block[offset, best[offset]]),
                        "best_document_of": self._owner(owners, documents[int(best[offset])]),
                        "best_document": _excerpt(self.document(documents[int(best[offset])])),
                    })

    def _owner(self, owners: dict[bytes, str], document: bytes) -> str:
        """The id of the first example whose positive the document is, or else its corpus passage's."""
        if document in owners:
            return owners[document]
        return f"passage {self.passages[self._passage_numbers[document]].id}"  # type: ignore[index]

    def _false_negatives(self, entries: list[Entry], queries: Any, positive_scores: Any) -> None:
        np = _numpy()
        counts = self.counts[FALSE_NEGATIVE]
        with_negative = [n for n, e in enumerate(entries) if e.negative is not None]
        if not with_negative:
            return
        negatives = self.cache.vectors_of([entries[n].negative for n in with_negative])  # type: ignore[misc]
        scores = np.einsum("ij,ij->i", queries[with_negative], negatives)
        action = self.config.false_negative.action
        for n, negative_score in zip(with_negative, scores.tolist()):
            self.margins.append(float(positive_scores[n]) - negative_score)  # every example's, for stats
            if self._dropped(entries[n].row):
                continue  # inconsistent already
            counts["checked"] += 1
            if negative_score <= positive_scores[n]:
                continue
            evidence = {"positive_score": _score(positive_scores[n]), "negative_score": _score(negative_score)}
            counts[{"drop": "dropped", "swap": "swapped", "keep": "kept (flagged)"}[action]] += 1
            if action == "drop":
                self._outcome(entries[n].row).drop = (FALSE_NEGATIVE, evidence)
            elif action == "swap":
                self._outcome(entries[n].row).swap = evidence
                entries[n].positive, entries[n].negative = entries[n].negative, entries[n].positive  # type: ignore[assignment]

    def _mine(self, by_kind: dict[str, list[Entry]]) -> None:
        """mine_hard_negatives over each kind, given the texts' digests in hex for texts: it compares
        them as strings and asks the model for their vectors, which the cache has by digest."""
        from datasets import Dataset
        from sentence_transformers.util import mine_hard_negatives

        counts = self.counts["mine"]
        model = CachedModel(self.cache)
        for kind, every in sorted(by_kind.items()):
            entries = [e for e in every if not self._dropped(e.row)]
            if self.passages is not None and kind in PASSAGE_POSITIVES:
                corpus = [digest.hex() for digest in self._corpus_pool()]
                counts["examples mined from the corpus"] += len(entries)
            else:
                corpus = list(dict.fromkeys([e.positive.hex() for e in entries] +
                                            [e.negative.hex() for e in entries if e.negative]))
            if len(corpus) < 2:
                counts["examples in a kind with fewer than 2 documents"] += len(entries)
                continue
            # Columns named for mine_hard_negatives (anchor, documents), not the stored example's fields.
            dataset = Dataset.from_dict({"anchor": [e.query.hex() for e in entries],
                                         "documents": [e.positive.hex() for e in entries]})
            with quiet_stderr(not self.show_progress):
                mined = mine_hard_negatives(
                    dataset, model, anchor_column_name="anchor", positive_column_name="documents", corpus=corpus, num_negatives=self.mine + 1,  # type: ignore[arg-type]
                    relative_margin=self.config.mine.relative_margin, output_format="labeled-list",
                    batch_size=self.config.embed.batch_size, faiss_batch_size=block_rows(len(corpus)), verbose=False,
                )
            found = {(row["anchor"], row["documents"][0]): row["documents"][1:] for row in mined}
            for entry in entries:
                # One more than asked, so that the example's own negative, when mined, can be left out.
                mined = [bytes.fromhex(d) for d in found.get((entry.query.hex(), entry.positive.hex()), [])]
                negatives = [d for d in mined if d != entry.negative][:self.mine]
                if negatives:
                    self._outcome(entry.row).negatives = negatives
                counts["examples"] += 1
                counts["negatives added"] += len(negatives)
                if len(negatives) < self.mine:
                    counts[f"examples with fewer than {self.mine}"] += 1

    def summary(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = {name: dict(sorted(c.items())) for name, c in self.counts.items()
                                             if name != "mine" or self.mine}
        if self.relabelled is not None:
            result["relabel"] = self.relabelled
        if CONSISTENCY in result:
            k = self.config.consistency.top_k
            ranks = {str(r): self.ranks[r] for r in range(1, k + 1) if self.ranks[r]}
            beyond = sum(n for r, n in self.ranks.items() if r > k)
            result[CONSISTENCY]["positive rank"] = {**ranks, **({f">{k}": beyond} if beyond else {})}
        if FALSE_NEGATIVE in result and self.margins:
            result[FALSE_NEGATIVE]["margin"] = margin_histogram(self.margins)
        return result


MARGIN_BIN = 0.05


def margin_histogram(margins: list[float]) -> dict[str, int]:
    """cos(q, positive) - cos(q, negative) of every example with a negative, counted in bins of
    MARGIN_BIN keyed by their lower edge ("-0.05" holds [-0.05, 0)): the hardness the report draws."""
    counts = collections.Counter(math.floor(margin / MARGIN_BIN) for margin in margins)
    return {f"{n * MARGIN_BIN:.2f}": counts[n] for n in sorted(counts)}


class CachedModel:
    """What mine_hard_negatives asks of a SentenceTransformer, answered from the embedding cache, so
    texts embedded by the checks are not embedded again (and an endpoint embedder can mine too). The
    "texts" it is given are digests in hex, all in the cache already."""

    device = "cpu"

    def __init__(self, cache: EmbeddingCache):
        self.cache = cache

    def encode_query(self, texts: list[str], **_: Any) -> Any:
        return self.cache.vectors_of([bytes.fromhex(text) for text in texts])

    encode_document = encode_query

    @staticmethod
    def similarity(a: Any, b: Any) -> Any:
        import torch

        return torch.as_tensor(a) @ torch.as_tensor(b).T  # unit vectors: the dot product is the cosine

    @staticmethod
    def similarity_pairwise(a: Any, b: Any) -> Any:
        import torch

        return (torch.as_tensor(a) * torch.as_tensor(b)).sum(dim=-1)


@contextlib.contextmanager
def quiet_stderr(quiet: bool) -> Iterator[None]:
    """Libraries' own progress bars (loading weights, mine_hard_negatives' scoring) off with --quiet:
    tqdm writes to the sys.stderr of the moment."""
    if not quiet:
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        yield


def _score(value: Any) -> float:
    return round(float(value), 4)


def _excerpt(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _numpy() -> Any:
    import numpy

    return numpy
