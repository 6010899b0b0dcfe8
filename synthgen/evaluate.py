"""Evaluation: the passkey benchmark (top-1 accuracy per length) and retrieval (nDCG@10, MRR@10,
recall@1 and recall@10) on held-out synthgen examples or on a BEIR folder.

Queries are embedded with their instruction through the query template (the paper's
`Instruct: {task}\\nQuery: {query}` by default), documents as they are.
"""

import collections
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from tqdm import tqdm

from synthgen.embedders import Embedder, similarities, stack, top_k
from synthgen.errors import BadInput
from synthgen.records import ReadCounts, example_files, read_examples

CHUNK = 256  # texts handed to the embedder at once (the progress bar moves per chunk)
CUTOFF = 10


def query_text(template: str, instruction: Optional[str], query: str) -> str:
    """The query as the model sees it: the template with the instruction, or the bare query when there is none."""
    if not instruction:
        return query
    return template.format(task=instruction, query=query)


def check_template(template: str) -> str:
    try:
        template.format(task="t", query="q")
    except (KeyError, IndexError, ValueError) as exc:
        raise BadInput(f"--query-template {template!r}: only {{task}} and {{query}} may be named ({exc})") from None
    if "{query}" not in template:
        raise BadInput(f"--query-template {template!r} must contain {{query}}")
    return template


def embed_all(embedder: Embedder, texts: list[str], desc: str, show_progress: bool) -> Any:
    parts = []
    with tqdm(total=len(texts), desc=desc, unit="text", disable=None if show_progress else True) as bar:
        for start in range(0, len(texts), CHUNK):
            chunk = texts[start:start + CHUNK]
            parts.append(embedder.embed(chunk))
            bar.update(len(chunk))
    return stack(parts)


def read_jsonl(path: Path) -> Iterator[dict]:
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    raise BadInput(f"{path}:{number} is not JSON") from None
                if not isinstance(record, dict):
                    raise BadInput(f"{path}:{number} is not a JSON object")
                yield record
    except FileNotFoundError:
        raise BadInput(f"no such file: {path}") from None


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR qrels: query-id, corpus-id, score (tab-separated, an optional header line)."""
    qrels: dict[str, dict[str, int]] = collections.defaultdict(dict)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BadInput(f"no such file: {path}") from None
    for number, line in enumerate(lines, 1):
        parts = line.strip().split("\t")
        if not line.strip() or (number == 1 and parts[0] == "query-id"):
            continue
        try:
            query_id, doc_id, score = parts[0], parts[1], int(float(parts[2]))
        except (IndexError, ValueError):
            raise BadInput(f"{path}:{number}: expected query-id, corpus-id and score separated by tabs") from None
        qrels[query_id][doc_id] = score
    return dict(qrels)


# -- passkey -----------------------------------------------------------------------------------------


def passkey_folders(folder: Path) -> list[tuple[int, Path]]:
    """(length, folder) for a benchmark folder written by `synthgen passkey`, or for one of its lengths."""
    summary = folder / "passkey.json"
    if summary.is_file():
        data = json.loads(summary.read_text(encoding="utf-8"))
        return sorted((int(length), folder / sub) for length, sub in data["folders"].items())
    meta = folder / "metadata.json"
    if meta.is_file() and (folder / "corpus.jsonl").is_file():
        return [(int(json.loads(meta.read_text(encoding="utf-8"))["length"]), folder)]
    raise BadInput(f"{folder} is not a passkey benchmark: no passkey.json (run `synthgen passkey --out {folder}`)")


def evaluate_passkey(folder: Path, embedder: Embedder, template: str, show_progress: bool = True) -> dict:
    """Top-1 accuracy per length: the right document must score above every other candidate."""
    rows = []
    meta: dict = {}
    for length, sub in passkey_folders(folder):
        started = time.monotonic()
        meta = json.loads((sub / "metadata.json").read_text(encoding="utf-8"))
        queries = list(read_jsonl(sub / "queries.jsonl"))
        gold = {q: next(iter(docs)) for q, docs in read_qrels(sub / "qrels" / "test.tsv").items()}
        # Streamed a chunk at a time: a long length's corpus is hundreds of megabytes.
        ids, parts, texts = [], [], []
        with tqdm(total=meta.get("documents"), desc=f"passkey {length}", unit="doc",
                  disable=None if show_progress else True) as bar:
            for doc in read_jsonl(sub / "corpus.jsonl"):
                ids.append(doc["_id"])
                texts.append(doc["text"])
                if len(texts) == CHUNK:
                    parts.append(embedder.embed(texts))
                    bar.update(len(texts))
                    texts = []
            if texts:
                parts.append(embedder.embed(texts))
                bar.update(len(texts))
        vectors = stack(parts)
        index = {doc_id: i for i, doc_id in enumerate(ids)}
        query_vectors = embedder.embed([query_text(template, q.get("instruction"), q["text"]) for q in queries])
        correct = 0
        for query, query_vector in zip(queries, query_vectors):
            candidates = query.get("candidates") or ids
            scores = similarities(query_vector, [vectors[index[c]] for c in candidates])
            right = candidates.index(gold[query["_id"]])
            if all(scores[right] > s for i, s in enumerate(scores) if i != right):
                correct += 1
        rows.append({"length": length, "queries": len(queries), "correct": correct,
                     "accuracy": correct / len(queries), "seconds": round(time.monotonic() - started, 1)})
    return {"benchmark": "passkey", "folder": str(folder), **embedder.describe(), "query_template": template,
            "unit": meta.get("unit"), "tokenizer": meta.get("tokenizer"), "candidates": meta.get("candidates"),
            "lengths": rows}


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
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    source: str = ""


def is_beir_folder(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file()


def load_beir(folder: Path, instruction: Optional[str], split: str = "test") -> RetrievalSet:
    data = RetrievalSet(source=f"BEIR folder {folder} ({split})")
    data.qrels = {q: {d: s for d, s in docs.items() if s > 0}
                  for q, docs in read_qrels(folder / "qrels" / f"{split}.tsv").items()}
    for doc in read_jsonl(folder / "corpus.jsonl"):
        title, text = doc.get("title") or "", doc.get("text") or ""
        data.doc_ids.append(str(doc["_id"]))
        data.documents.append(f"{title} {text}".strip() if title else text)
    for query in read_jsonl(folder / "queries.jsonl"):
        query_id = str(query["_id"])
        if data.qrels.get(query_id):
            data.query_ids.append(query_id)
            data.queries.append(query["text"])
            data.instructions.append(query.get("instruction") or instruction)
            data.groups.append("all")
    if not data.query_ids:
        raise BadInput(f"{folder}: no query has a relevant document in qrels/{split}.tsv")
    return data


def load_examples(paths: list[Path], instruction: Optional[str]) -> tuple[RetrievalSet, ReadCounts]:
    """Each example's query against the pool of every positive and negative (one document per distinct text)."""
    data = RetrievalSet(source="synthgen examples " + ", ".join(map(str, paths)))
    counts = ReadCounts()
    pool: dict[str, str] = {}

    def doc_id(text: str) -> str:
        if text not in pool:
            pool[text] = f"d{len(pool)}"
            data.doc_ids.append(pool[text])
            data.documents.append(text)
        return pool[text]

    for number, example in enumerate(read_examples(example_files(paths), counts)):
        query_id = str(example.get("id") or f"q{number}")
        if query_id in data.qrels:
            query_id = f"{query_id}#{number}"
        data.query_ids.append(query_id)
        data.queries.append(example["query"])
        data.instructions.append(example.get("task") or instruction)
        data.groups.append(example["kind"])
        data.qrels[query_id] = {doc_id(example["positive"]): 1}
        if example.get("negative") is not None:
            doc_id(example["negative"])
    if not data.query_ids:
        raise BadInput("no synthgen example in " + ", ".join(map(str, paths)))
    return data, counts


def query_metrics(ranked: list[str], relevant: dict[str, int]) -> dict[str, float]:
    """nDCG@10 (linear gains, as trec_eval and BEIR), MRR@10, recall@1 and recall@10 of one query."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:CUTOFF]))
    ideal = sorted(relevant.values(), reverse=True)[:CUTOFF]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    first = next((i for i, d in enumerate(ranked[:CUTOFF]) if d in relevant), None)
    return {
        "ndcg@10": dcg / idcg if idcg else 0.0,
        "mrr@10": 1.0 / (first + 1) if first is not None else 0.0,
        "recall@1": len(set(ranked[:1]) & set(relevant)) / len(relevant),
        "recall@10": len(set(ranked[:CUTOFF]) & set(relevant)) / len(relevant),
    }


METRICS = ("ndcg@10", "mrr@10", "recall@1", "recall@10")


def evaluate_retrieval(data: RetrievalSet, embedder: Embedder, template: str, show_progress: bool = True) -> dict:
    started = time.monotonic()
    doc_vectors = embed_all(embedder, data.documents, "documents", show_progress)
    texts = [query_text(template, inst, q) for inst, q in zip(data.instructions, data.queries)]
    query_vectors = embed_all(embedder, texts, "queries", show_progress)
    ranked = top_k(query_vectors, doc_vectors, CUTOFF)
    sums: dict[str, dict[str, float]] = collections.defaultdict(lambda: dict.fromkeys(METRICS, 0.0))
    counts: collections.Counter = collections.Counter()
    for query_id, group, order in zip(data.query_ids, data.groups, ranked):
        scores = query_metrics([data.doc_ids[i] for i in order], data.qrels[query_id])
        for name in {"all", group}:
            counts[name] += 1
            for metric, value in scores.items():
                sums[name][metric] += value
    groups = {name: {"queries": counts[name], **{m: sums[name][m] / counts[name] for m in METRICS}}
              for name in ["all", *sorted(set(counts) - {"all"})]}
    return {"benchmark": "retrieval", "source": data.source, **embedder.describe(), "query_template": template,
            "queries": len(data.queries), "documents": len(data.documents), "groups": groups,
            "seconds": round(time.monotonic() - started, 1)}


# -- output ------------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def passkey_table(result: dict) -> str:
    unit = result.get("unit") or "length"
    rows = [[str(r["length"]), str(r["queries"]), f"{r['accuracy']:.3f}"] for r in result["lengths"]]
    head = f"passkey retrieval, {result['model']}: top-1 accuracy among {result.get('candidates')} candidates"
    return head + "\n" + table([f"length ({unit})", "queries", "accuracy"], rows)


def retrieval_table(result: dict) -> str:
    rows = [[name, str(g["queries"]), *(f"{g[m]:.3f}" for m in METRICS)] for name, g in result["groups"].items()]
    head = f"retrieval, {result['model']}: {result['queries']} queries, {result['documents']} documents"
    return head + "\n" + table(["group", "queries", *METRICS], rows)


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
