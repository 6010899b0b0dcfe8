"""Folders on disk as MTEB retrieval tasks, so that mteb runs and reports them like its own.

- The passkey benchmark `synthgen passkey` writes: task SynthgenPasskeyRetrieval, one subset per
  document length, each query ranking its own candidates (MTEB's top_ranked, as its reranking tasks
  do), main score recall@1 (the paper's top-1 accuracy: one right document per query). MTEB breaks
  a tie by document id, where `eval passkey` counts a tie as a miss, so a model that cannot tell the
  candidates apart may score a little above `eval passkey` here.
- Any BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv): task BEIR-<folder name>, each
  query against the whole corpus, main score nDCG@10, graded by the qrels' scores (pytrec_eval).

The data is read from the folder (synthgen.beir), never from the Hugging Face Hub. Imports mteb:
only `synthgen eval mteb` loads this module.
"""

import hashlib
from pathlib import Path
from typing import Any, Optional

from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.task_metadata import TaskMetadata

from synthgen import beir
from synthgen.errors import BadInput
from synthgen.evaluate import passkey_folders

PASSKEY_TASK = "SynthgenPasskeyRetrieval"
SPLIT = beir.DEFAULT_SPLIT
LANGUAGE = ["eng-Latn"]  # the passkey benchmark is English; a BEIR folder's language is not known: MTEB needs one


class FolderRetrievalTask(AbsTaskRetrieval):
    """BEIR folders as the subsets of one MTEB retrieval task."""

    def __init__(self, metadata: TaskMetadata, folders: dict[str, Path], **kwargs: Any):
        self.metadata = metadata  # per instance: each task is its own folder
        self.folders = folders
        super().__init__(**kwargs)

    def load_data(self, num_proc: Optional[int] = None, **kwargs: Any) -> None:
        from datasets import Dataset

        if self.data_loaded:
            return
        self.dataset = {}
        for subset, folder in self.folders.items():
            documents = list(beir.corpus(folder))  # title and text already joined, as BEIR joins them
            queries = list(beir.queries(folder))
            relevant = beir.relevance(beir.read_qrels(beir.qrels_file(folder, SPLIT)))
            candidates = {q.id: [str(c) for c in q.fields["candidates"]] for q in queries if q.fields.get("candidates")}
            self.dataset[subset] = {SPLIT: {
                "corpus": Dataset.from_dict({"id": [d.id for d in documents], "text": [d.text for d in documents]}),
                "queries": Dataset.from_dict({"id": [q.id for q in queries], "text": [q.text for q in queries]}),
                # pytrec_eval takes whole gains: a fractional one is rounded, and never below 1.
                "relevant_docs": {q: {d: max(1, round(g)) for d, g in docs.items()} for q, docs in relevant.items()},
                "top_ranked": candidates or None,
            }}
        self.data_loaded = True


def folder_task(folder: Path) -> FolderRetrievalTask:
    """The task a folder holds: the passkey benchmark, or any BEIR folder; BadInput for anything else."""
    if (folder / "passkey.json").is_file() or (folder / "metadata.json").is_file():
        return passkey_task(folder)
    if beir.is_folder(folder):
        return beir_task(folder)
    raise BadInput(f"{folder} is neither a passkey benchmark (synthgen passkey) nor a BEIR folder "
                   f"({beir.CORPUS}, {beir.QUERIES}, {beir.QRELS}/{SPLIT}.tsv)")


def passkey_task(folder: Path) -> FolderRetrievalTask:
    lengths = passkey_folders(folder)
    subsets = {str(length): sub for length, sub in lengths}
    instruction = next(beir.queries(lengths[0][1])).fields.get("instruction")
    metadata = TaskMetadata(
        name=PASSKEY_TASK,
        description="Personalized passkey retrieval (Wang et al., 2024): each document is filler text with one "
                    "person's passkey in it; each query asks for one person's passkey and must rank the document "
                    "that holds it first among its own candidates. One subset per document length.",
        reference="https://arxiv.org/abs/2401.00368",
        dataset={"path": str(folder.resolve()), "revision": _revision([sub for _, sub in lengths])},
        type="Retrieval", category="t2t", modalities=["text"], eval_splits=[SPLIT],
        eval_langs={subset: LANGUAGE for subset in subsets}, main_score="recall_at_1",
        prompt=_query_prompt(instruction),
        annotations_creators="derived", sample_creation="created", domains=["Constructed"], bibtex_citation="",
    )
    return FolderRetrievalTask(metadata, subsets)


def beir_task(folder: Path) -> FolderRetrievalTask:
    instructions = {q.fields.get("instruction") for q in beir.queries(folder)}
    instruction = instructions.pop() if len(instructions) == 1 else None  # one for all, or MTEB's default
    metadata = TaskMetadata(
        name=f"BEIR-{folder.resolve().name}",
        description=f"The BEIR folder {folder}: each query against the whole corpus.",
        dataset={"path": str(folder.resolve()), "revision": _revision([folder])},
        type="Retrieval", category="t2t", modalities=["text"], eval_splits=[SPLIT], eval_langs=LANGUAGE,
        main_score="ndcg_at_10", prompt=_query_prompt(instruction), bibtex_citation="",
    )
    return FolderRetrievalTask(metadata, {"default": folder})


def _query_prompt(instruction: Optional[str]) -> Any:
    """The task's own query instruction, when its queries carry one (passkey's do)."""
    return {"query": instruction} if instruction else None


def _revision(folders: list[Path]) -> str:
    """The files' sizes and times: results of another version of the data are filed apart."""
    digest = hashlib.blake2b(digest_size=6)
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(folder)}:{path.stat().st_size}:{path.stat().st_mtime_ns};".encode())
    return digest.hexdigest()
