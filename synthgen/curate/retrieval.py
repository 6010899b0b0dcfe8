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
"""

import collections
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

from synthgen.config import Config, EmbedConfig
from synthgen.embedding_cache import EmbeddingCache
from synthgen.instructions import query_text
from synthgen.kinds import SOURCE_LANGUAGE, TARGET_LANGUAGE
from synthgen.models import DEFAULT_EMBEDDING_MODEL
from synthgen.store import Example

if TYPE_CHECKING:
    from synthgen.curate.relabel import Candidate
    from synthgen.store import Judgement

CONSISTENCY, FALSE_NEGATIVE = "consistency", "false-negative"
INCONSISTENT = "inconsistent"
ENGLISH = ("English", "unknown")  # unknown: imported without a language, most often English
ROWS_PER_BLOCK = 1024  # queries scored against a kind's documents at once: memory ~ 1024 x documents


@dataclass
class Entry:
    """An example as this stage sees it: its number among those reaching the stage, and its texts."""

    row: int
    id: str
    kind: str
    task: str
    text: str  # the query as written
    query: str  # through the query template
    positive: str
    negative: Optional[str]


@dataclass
class Outcome:
    """What the stage decided for one example: dropped (reason, evidence), swapped, or given negatives."""

    drop: Optional[tuple[str, dict[str, Any]]] = None
    swap: Optional[dict[str, Any]] = None
    judged: Optional[tuple["Candidate", "Judgement"]] = None  # relabelling's judgement
    negatives: list[str] = field(default_factory=list)


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
    def __init__(self, full: Config, cache: EmbeddingCache, checks: list[str], mine: int,
                 relabel_ledger: Optional[Path] = None, show_progress: bool = True):
        """relabel_ledger: where relabelling keeps its judgements (None: no relabelling)."""
        self.full = full
        self.config = config = full.curate
        self.relabel_ledger = relabel_ledger
        self.relabelled: Optional[dict[str, Any]] = None  # relabelling's summary
        self.cache = cache
        self.checks = checks
        self.mine = mine
        self.show_progress = show_progress
        self.languages = embed_languages(config.embed.languages, cache.embedder.name)
        self.entries: list[Entry] = []
        self.counts: dict[str, collections.Counter] = {name: collections.Counter() for name in [*checks, "mine"]}
        self.ranks: collections.Counter = collections.Counter()  # rank of the positive -> examples
        self.margins: list[float] = []  # cos(q, positive) - cos(q, negative) of each example with a negative

    def add(self, row: int, example: Example) -> None:
        """Take the example into the stage, or count it passed through."""
        if not readable(example, self.languages):
            for counts in self.counts.values():
                counts["passed through (a language the embedder does not read)"] += 1
            return
        query = query_text(self.config.embed.query_template, example.task, example.query)
        self.entries.append(Entry(row, example.id, example.kind, example.task, example.query, query, example.positive, example.negative))

    def run(self) -> dict[int, Outcome]:
        outcomes: dict[int, Outcome] = collections.defaultdict(Outcome)
        by_kind: dict[str, list[Entry]] = collections.defaultdict(list)
        for entry in self.entries:
            by_kind[entry.kind].append(entry)
        retrieved: dict[int, list[str]] = {}  # row -> the documents retrieved for its query, best first
        for kind, entries in sorted(by_kind.items()):
            np = _numpy()
            queries = self.cache.vectors([e.query for e in entries], self.show_progress, f"embedding {kind} queries")
            documents = list(dict.fromkeys(e.positive for e in entries))
            vectors = self.cache.vectors(documents, self.show_progress, f"embedding {kind} positives")
            where = {text: n for n, text in enumerate(documents)}
            own = np.fromiter((where[e.positive] for e in entries), dtype=np.int64, count=len(entries))
            positive_scores = np.einsum("ij,ij->i", queries, vectors[own])
            if CONSISTENCY in self.checks or self.relabel_ledger is not None:
                self._rank(entries, queries, documents, vectors, positive_scores, outcomes, retrieved)
            if FALSE_NEGATIVE in self.checks:
                self._false_negatives(kind, entries, queries, positive_scores, outcomes)
        if self.relabel_ledger is not None:
            self._relabel(retrieved, outcomes)
        if self.mine:
            self._mine(by_kind, outcomes)
        return outcomes

    def _relabel(self, retrieved: dict[int, list[str]], outcomes: dict[int, Outcome]) -> None:
        """The LLM judges each kept example's retrieved documents; a relabelled example's new
        positive is what mining then mines for."""
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
        entries = {e.row: e for e in self.entries if outcomes[e.row].drop is None}
        candidates = [Candidate(e.row, e.id, e.task, e.text, e.positive,
                                candidate_documents(e.positive, retrieved[e.row], top_m)) for e in entries.values()]
        result = relabel_candidates(candidates, self.full, self.relabel_ledger, self.show_progress)
        for candidate in candidates:
            judgement = result.judgements[candidate.row]
            outcome, entry = outcomes[candidate.row], entries[candidate.row]
            outcome.judged = (candidate, judgement)
            if judgement.verdict == DROPPED:
                outcome.drop = (RELABELLED_OUT, evidence(judgement, candidate))
            elif judgement.verdict == RELABELLED:
                entry.positive, entry.negative = candidate.documents[judgement.best], entry.positive
        self.relabelled = result.summary()

    def _rank(self, entries: list[Entry], queries: Any, documents: list[str], vectors: Any,
              positive_scores: Any, outcomes: dict[int, Outcome], retrieved: dict[int, list[str]]) -> None:
        """Each query against every positive of its kind: the rank of its own (consistency), and the
        documents relabelling shows the LLM."""
        np = _numpy()
        k = self.config.consistency.top_k
        consistency = CONSISTENCY in self.checks
        top_m = self.config.relabel.top_m if self.relabel_ledger is not None else 0
        owners: dict[str, str] = {}  # a document -> the id of the first example whose positive it is
        for entry in entries:
            owners.setdefault(entry.positive, entry.id)
        counts = self.counts.get(CONSISTENCY)
        for start in range(0, len(entries), ROWS_PER_BLOCK):
            block = queries[start:start + ROWS_PER_BLOCK] @ vectors.T
            mine = positive_scores[start:start + ROWS_PER_BLOCK]
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
                    outcomes[entry.row].drop = (INCONSISTENT, {
                        "rank": rank, "top_k": k, "documents": len(documents),
                        "positive_score": _score(mine[offset]),
                        "best_score": _score(block[offset, best[offset]]),
                        "best_document_of": owners[documents[int(best[offset])]],
                        "best_document": _excerpt(documents[int(best[offset])]),
                    })

    def _false_negatives(self, kind: str, entries: list[Entry], queries: Any, positive_scores: Any,
                         outcomes: dict[int, Outcome]) -> None:
        np = _numpy()
        counts = self.counts[FALSE_NEGATIVE]
        with_negative = [n for n, e in enumerate(entries) if e.negative is not None]
        if not with_negative:
            return
        negatives = self.cache.vectors([entries[n].negative or "" for n in with_negative], self.show_progress,
                                       f"embedding {kind} negatives")
        scores = np.einsum("ij,ij->i", queries[with_negative], negatives)
        action = self.config.false_negative.action
        for n, negative_score in zip(with_negative, scores.tolist()):
            self.margins.append(float(positive_scores[n]) - negative_score)  # every example's, for stats
            if outcomes[entries[n].row].drop is not None:
                continue  # inconsistent already
            counts["checked"] += 1
            if negative_score <= positive_scores[n]:
                continue
            evidence = {"positive_score": _score(positive_scores[n]), "negative_score": _score(negative_score)}
            counts[{"drop": "dropped", "swap": "swapped", "keep": "kept (flagged)"}[action]] += 1
            if action == "drop":
                outcomes[entries[n].row].drop = (FALSE_NEGATIVE, evidence)
            elif action == "swap":
                outcomes[entries[n].row].swap = evidence
                entries[n].positive, entries[n].negative = entries[n].negative or "", entries[n].positive

    def _mine(self, by_kind: dict[str, list[Entry]], outcomes: dict[int, Outcome]) -> None:
        from datasets import Dataset
        from sentence_transformers.util import mine_hard_negatives

        counts = self.counts["mine"]
        model = CachedModel(self.cache, self.show_progress)
        for _, every in sorted(by_kind.items()):
            entries = [e for e in every if outcomes[e.row].drop is None]
            corpus = list(dict.fromkeys([e.positive for e in entries] + [e.negative for e in entries if e.negative]))
            if len(corpus) < 2:
                counts["examples in a kind with fewer than 2 documents"] += len(entries)
                continue
            # Columns named for mine_hard_negatives (anchor, documents), not the stored example's fields.
            dataset = Dataset.from_dict({"anchor": [e.query for e in entries], "documents": [e.positive for e in entries]})
            with quiet_stderr(not self.show_progress):
                mined = mine_hard_negatives(
                    dataset, model, anchor_column_name="anchor", positive_column_name="documents", corpus=corpus, num_negatives=self.mine + 1,  # type: ignore[arg-type]
                    relative_margin=self.config.mine.relative_margin, output_format="labeled-list",
                    batch_size=self.config.embed.batch_size, verbose=False,
                )
            found = {(row["anchor"], row["documents"][0]): row["documents"][1:] for row in mined}
            for entry in entries:
                # One more than asked, so that the example's own negative, when mined, can be left out.
                negatives = [d for d in found.get((entry.query, entry.positive), []) if d != entry.negative][:self.mine]
                outcomes[entry.row].negatives = negatives
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
        return result


class CachedModel:
    """What mine_hard_negatives asks of a SentenceTransformer, answered from the embedding cache, so
    texts embedded by the checks are not embedded again (and an endpoint embedder can mine too)."""

    device = "cpu"

    def __init__(self, cache: EmbeddingCache, show_progress: bool):
        self.cache = cache
        self.show_progress = show_progress

    def encode_query(self, texts: list[str], **_: Any) -> Any:
        return self.cache.vectors(texts, self.show_progress, "embedding queries")

    def encode_document(self, texts: list[str], **_: Any) -> Any:
        return self.cache.vectors(texts, self.show_progress, "embedding documents")

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
