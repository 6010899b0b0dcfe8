"""Evaluation: the passkey benchmark (top-1 accuracy per length) and retrieval (nDCG@10, MRR@10,
recall@1, recall@10, MAP@100 and recall@100, by sentence-transformers' InformationRetrievalEvaluator)
on held-out synthgen examples or on a BEIR folder.

Queries are embedded with their instruction through the query template (synthgen.instructions: the
paper's by default), documents as they are. Every distinct model input is embedded once: the passkey
benchmark's documents across all its queries and lengths, a retrieval pool's documents and queries
across all its groups.
"""

import collections
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tqdm import tqdm

from synthgen import beir
from synthgen.beir import is_folder as is_beir_folder  # noqa: F401  (the CLI asks it)
from synthgen.embedders import Embedder, similarities, stack
from synthgen.embedding_cache import text_digest
from synthgen.errors import BadInput
from synthgen.instructions import query_text
from synthgen.models import INSTALL_HINT
from synthgen.store import CorpusFolder, ReadCounts, example_files, read_examples
from synthgen.tables import table

CHUNK = 256  # texts handed to the embedder at once (the progress bar moves per chunk)
# Distinct inputs embedded at once: enough for sentence-transformers' length-sorting within a call to
# batch like lengths together, as one encode of them all would (bench/passkey_speed.py).
ENCODE_CHUNK = 1024


def embed_all(embedder: Embedder, texts: list[str], desc: str, show_progress: bool) -> Any:
    parts = []
    with tqdm(total=len(texts), desc=desc, unit="text", disable=None if show_progress else True) as bar:
        for start in range(0, len(texts), CHUNK):
            chunk = texts[start:start + CHUNK]
            parts.append(embedder.embed(chunk))
            bar.update(len(chunk))
    return stack(parts)


# -- passkey -----------------------------------------------------------------------------------------


def passkey_folders(folder: Path) -> list[tuple[int, Path]]:
    """(length, folder) for a benchmark folder written by `synthgen passkey`, or for one of its lengths."""
    summary = folder / "passkey.json"
    if summary.is_file():
        data = json.loads(summary.read_text(encoding="utf-8"))
        return sorted((int(length), folder / sub) for length, sub in data["folders"].items())
    meta = folder / "metadata.json"
    if meta.is_file() and (folder / beir.CORPUS).is_file():
        return [(int(json.loads(meta.read_text(encoding="utf-8"))["length"]), folder)]
    raise BadInput(f"{folder} is not a passkey benchmark: no passkey.json (run `synthgen passkey --out {folder}`)")


class DistinctInputs:
    """Texts -> rows of one matrix, each distinct model input embedded once, a chunk at a time.

    Inputs are keyed by digest, so a streamed corpus of long documents is never held whole (an
    endpoint reads every text whole: its keys are the texts themselves)."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        self.rows: dict[bytes, int] = {}
        self.pending: list[str] = []
        self.parts: list[Any] = []

    def add(self, texts: list[str]) -> list[int]:
        """The row of each text's vector (the vectors come with matrix())."""
        rows = []
        for text in self.embedder.model_inputs(texts):
            key = text_digest(text)
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = len(self.rows)
                self.pending.append(text)
            rows.append(row)
        if len(self.pending) >= ENCODE_CHUNK:
            self.flush()
        return rows

    def flush(self) -> None:
        if self.pending:
            self.parts.append(self.embedder.encode(self.pending))
            self.pending = []

    def matrix(self) -> Any:
        self.flush()
        return stack(self.parts)


def evaluate_passkey(folder: Path, embedder: Embedder, template: str, show_progress: bool = True) -> dict:
    """Top-1 accuracy per length: the right document must score above every other candidate (a tie
    is a miss: a model that cannot tell the candidates apart has not found the passkey)."""
    started = time.monotonic()
    lengths = []
    for length, sub in passkey_folders(folder):
        meta = json.loads((sub / "metadata.json").read_text(encoding="utf-8"))
        lengths.append((length, sub, meta))
    inputs = DistinctInputs(embedder)
    documents: dict[int, dict[str, int]] = {}  # length -> document id -> row
    with tqdm(total=sum(m.get("documents") or 0 for _, _, m in lengths) or None, desc="passkey documents",
              unit="doc", disable=None if show_progress else True) as bar:
        for length, sub, _ in lengths:
            # Streamed a chunk at a time: a long length's corpus is hundreds of megabytes.
            ids = documents[length] = {}
            streamed = beir.corpus(sub)
            while chunk := list(itertools.islice(streamed, CHUNK)):
                for doc, row in zip(chunk, inputs.add([doc.text for doc in chunk])):
                    ids[doc.id] = row
                bar.update(len(chunk))
    asked = []  # (length, query, gold, query row)
    for length, sub, _ in lengths:
        queries = list(beir.queries(sub))
        relevant = beir.relevance(beir.read_qrels(beir.qrels_file(sub, beir.DEFAULT_SPLIT)))
        rows = inputs.add([query_text(template, q.fields.get("instruction"), q.text) for q in queries])
        asked += [(length, q, next(iter(relevant[q.id])), row) for q, row in zip(queries, rows)]
    vectors = inputs.matrix()
    embedded = len(inputs.rows)
    correct: collections.Counter = collections.Counter()
    for length, query, gold, row in asked:
        ids = documents[length]
        candidates = query.fields.get("candidates") or list(ids)
        scores = similarities(vectors[row], [vectors[ids[c]] for c in candidates])
        right = candidates.index(gold)
        correct[length] += all(scores[right] > s for i, s in enumerate(scores) if i != right)
    counts = collections.Counter(length for length, *_ in asked)
    per_length = [{"length": length, "queries": counts[length], "correct": correct[length],
                   "accuracy": correct[length] / counts[length]} for length, _, _ in lengths]
    meta = lengths[-1][2] if lengths else {}
    return {"benchmark": "passkey", "folder": str(folder), **embedder.describe(), "query_template": template,
            "unit": meta.get("unit"), "tokenizer": meta.get("tokenizer"), "candidates": meta.get("candidates"),
            "documents": sum(len(ids) for ids in documents.values()), "inputs_embedded": embedded,
            "seconds": round(time.monotonic() - started, 1), "lengths": per_length}


# -- retrieval ---------------------------------------------------------------------------------------


@dataclass
class RetrievalSet:
    """Queries (text, instruction, group), a document pool, and graded relevance."""

    query_ids: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    instructions: list[Optional[str]] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # kind of each query (examples) or "all" (BEIR)
    doc_ids: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    qrels: dict[str, dict[str, float]] = field(default_factory=dict)  # query -> {relevant doc: gain above 0}
    source: str = ""


def load_beir(folder: Path, instruction: Optional[str], split: str = beir.DEFAULT_SPLIT) -> RetrievalSet:
    """Every query with a relevant document against the whole corpus.

    Documents judged at 0 stay in the pool as documents that are not relevant, as trec_eval and BEIR
    count them (nDCG, MRR and recall give a judged-irrelevant document what they give an unjudged
    one); a query judged only at 0 has nothing to find and is left out.
    """
    data = RetrievalSet(source=f"BEIR folder {folder} ({split})")
    data.qrels = beir.relevance(beir.read_qrels(beir.qrels_file(folder, split)))
    for doc in beir.corpus(folder):
        data.doc_ids.append(doc.id)
        data.documents.append(doc.text)
    for query in beir.queries(folder):
        if data.qrels.get(query.id):
            data.query_ids.append(query.id)
            data.queries.append(query.text)
            data.instructions.append(query.fields.get("instruction") or instruction)
            data.groups.append("all")
    if not data.query_ids:
        raise BadInput(f"{folder}: no query has a relevant document in qrels/{split}.tsv")
    return data


def load_examples(paths: list[Path], instruction: Optional[str],
                  corpus: Optional[Path] = None) -> tuple[RetrievalSet, ReadCounts]:
    """Each example's query against the pool of every positive and negative (one document per
    distinct text), and with a corpus folder every passage of it too: the held-out examples of a
    user's own documents then search the whole corpus, as they will in use."""
    data = RetrievalSet(source="synthgen examples " + ", ".join(map(str, paths)) +
                        (f" against the passages of {corpus}" if corpus is not None else ""))
    counts = ReadCounts()
    pool: dict[str, str] = {}

    def doc_id(text: str) -> str:
        if text not in pool:
            # Zero-padded: the evaluator breaks a tie by document id, and then the earlier document wins.
            pool[text] = f"d{len(pool):09d}"
            data.doc_ids.append(pool[text])
            data.documents.append(text)
        return pool[text]

    for number, example in enumerate(read_examples(example_files(paths), counts)):
        query_id = example.id or f"q{number}"
        if query_id in data.qrels:
            query_id = f"{query_id}#{number}"
        data.query_ids.append(query_id)
        data.queries.append(example.query)
        data.instructions.append(example.task or instruction)
        data.groups.append(example.kind)
        data.qrels[query_id] = {doc_id(example.positive): 1}
        if example.negative is not None:
            doc_id(example.negative)
    if not data.query_ids:
        raise BadInput("no synthgen example in " + ", ".join(map(str, paths)))
    for passage in CorpusFolder(corpus) if corpus is not None else ():
        doc_id(passage.text)
    return data, counts


# Reported per group: the evaluator's (metric, k) under synthgen's names.
METRICS = {"ndcg@10": ("ndcg@k", 10), "mrr@10": ("mrr@k", 10), "recall@1": ("recall@k", 1),
           "recall@10": ("recall@k", 10), "map@100": ("map@k", 100), "recall@100": ("recall@k", 100)}


class PrecomputedModel:
    """What InformationRetrievalEvaluator asks of a model, answered from vectors already computed by a
    synthgen Embedder (a local model or an endpoint alike), so each text is embedded once whatever
    the number of groups evaluated."""

    similarity_fn_name = "cosine"

    def __init__(self, texts: list[str], vectors: Any):
        import torch

        self.vectors = torch.as_tensor(vectors)
        self.rows = {text: i for i, text in enumerate(texts)}

    def encode_query(self, sentences: list[str], **_: Any) -> Any:
        return self.vectors[[self.rows[text] for text in sentences]]

    encode_document = encode_query


def evaluate_retrieval(data: RetrievalSet, embedder: Embedder, template: str, show_progress: bool = True) -> dict:
    """Each query against the whole pool, by sentence-transformers' InformationRetrievalEvaluator,
    overall and per group. Relevance is binary there: a document judged above 0 is relevant."""
    try:
        from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
        from sentence_transformers.util import cos_sim
    except ImportError:
        raise BadInput(f"synthgen eval retrieval needs the train extra: {INSTALL_HINT}") from None
    started = time.monotonic()
    texts = [query_text(template, inst, q) for inst, q in zip(data.instructions, data.queries)]
    vectors = stack([embed_all(embedder, data.documents, "documents", show_progress),
                     embed_all(embedder, texts, "queries", show_progress)])
    model: Any = PrecomputedModel(data.documents + texts, vectors)
    corpus: dict[str, Any] = dict(zip(data.doc_ids, data.documents))
    corpus_vectors = model.encode_document(data.documents)
    relevant = {query_id: set(docs) for query_id, docs in data.qrels.items()}
    groups = {}
    for name in ["all", *sorted(set(data.groups) - {"all"})]:
        queries: dict[str, Any] = {query_id: text for query_id, text, group in zip(data.query_ids, texts, data.groups)
                                   if name in ("all", group)}
        evaluator = InformationRetrievalEvaluator(
            queries, corpus, relevant, mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1], precision_recall_at_k=[1, 10, 100],
            map_at_k=[100], name=name, write_csv=False, score_functions={"cosine": cos_sim})
        scores: Any = evaluator.compute_all_metrics(model, corpus_embeddings=corpus_vectors)["cosine"]
        groups[name] = {"queries": len(evaluator.queries_ids),
                        **{metric: float(scores[kind][k]) for metric, (kind, k) in METRICS.items()}}
    return {"benchmark": "retrieval", "source": data.source, **embedder.describe(), "query_template": template,
            "evaluator": "sentence-transformers InformationRetrievalEvaluator", "queries": len(data.queries),
            "documents": len(data.documents), "groups": groups, "seconds": round(time.monotonic() - started, 1)}


# -- output ------------------------------------------------------------------------------------------


def passkey_table(result: dict) -> str:
    unit = result.get("unit") or "length"
    rows = [[r["length"], r["queries"], f"{r['accuracy']:.3f}"] for r in result["lengths"]]
    head = f"passkey retrieval, {result['model']}: top-1 accuracy among {result.get('candidates')} candidates"
    return table(head, [f"length ({unit})", "queries", "accuracy"], rows)


def retrieval_table(result: dict) -> str:
    rows = [[name, g["queries"], *(f"{g[m]:.3f}" for m in METRICS)] for name, g in result["groups"].items()]
    head = f"retrieval, {result['model']}: {result['queries']} queries, {result['documents']} documents"
    return table(head, ["group", "queries", *METRICS], rows)


def default_plot_path(folder: Path, model: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-.") or "model"
    return folder / f"accuracy-{slug}.png"


def plot_passkey(results: list[dict], path: Path) -> Optional[Path]:
    """Accuracy against length, one line per result; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for result in results:
        lengths = [r["length"] for r in result["lengths"]]
        ax.plot(lengths, [r["accuracy"] for r in result["lengths"]], marker="o", label=result.get("label") or result["model"])
    ticks = sorted({r["length"] for result in results for r in result["lengths"]})
    ax.set_xscale("log", base=2)
    ax.minorticks_off()
    ax.set_xticks(ticks, [str(n) for n in ticks], rotation=45)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"document length ({results[0].get('unit') or 'length'})")
    ax.set_ylabel("top-1 accuracy")
    ax.set_title("Personalized passkey retrieval")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
