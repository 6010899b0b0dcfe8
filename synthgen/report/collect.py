"""One streaming pass over each PATH of `synthgen report`: what `stats` counts (its own Collector,
so the two never disagree), the lengths behind its summaries, a seeded sample of the examples for
the browser, and what the folders beside the examples hold (a run's manifest and rejects, curate's
report and dropped examples), each read through the store's own definitions.

Memory is bounded by the sample and by the distinct values counted (lengths, tasks, languages),
never by the number or length of the examples.
"""

import collections
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from synthgen.report.sample import Reservoir
from synthgen.stats import Collector, figures, run_folders
from synthgen.store import (
    TEXT_FIELDS,
    CuratedFolder,
    Dropped,
    Example,
    Manifest,
    ReadCounts,
    Reject,
    example_files,
    read_examples,
    read_rejects,
    run_files_beside,
    source_of,
)

SAMPLE = 2_000  # examples in the browser, per PATH
FEW = 20  # rejects and drops kept per reason
TEXT_CAP = 2_000  # characters of one text in the browser; what is cut is said
NEGATIVES_CAP = 5  # negatives shown of an example that has more (mined)


def clip(text: Optional[str]) -> Optional[str]:
    if text is None or len(text) <= TEXT_CAP:
        return text
    return f"{text[:TEXT_CAP]}… [{len(text) - TEXT_CAP:,} more characters]"


def as_text(value: Any) -> str:
    """A record's raw answer or evidence as indented JSON, clipped."""
    return clip(json.dumps(value, ensure_ascii=False, indent=1)) or ""


def _placeholders(example: Example) -> dict[str, str]:
    return {name: str(value) for name, value in example.placeholders.items() if name != "task"}


def example_row(dataset: int, example: Example) -> dict[str, Any]:
    negatives = example.all_negatives()
    more = len(negatives) - NEGATIVES_CAP
    return {
        "ds": dataset, "type": "example", "id": example.id, "kind": example.kind, "language": example.language,
        "task": clip(example.task), "source": source_of(example),
        **{name: clip(getattr(example, name)) for name in TEXT_FIELDS if name != "negative"},  # the store's names
        "negatives": [clip(n) for n in negatives[:NEGATIVES_CAP]] + ([f"[{more} more negatives]"] if more > 0 else []),
        "placeholders": _placeholders(example),
    }


def dropped_row(dataset: int, record: Dropped) -> dict[str, Any]:
    return {**example_row(dataset, record), "type": "dropped", "reason": record.reason,
            "evidence": as_text(record.evidence), "raw": as_text(record.raw)}


def reject_row(dataset: int, record: Reject) -> dict[str, Any]:
    return {"ds": dataset, "type": "reject", "id": f"plan index {record.index}", "kind": record.kind,
            "reason": record.reason, "detail": clip(record.detail), "raw": clip(record.text),
            "finish_reason": record.finish_reason, "model": record.model}


def manifest_figures(folder: Path, manifest: Manifest) -> dict[str, Any]:
    """What the report shows of a run's manifest. Fields a later version adds (cost) are read if there."""
    brainstorm = manifest.brainstorm or {}
    cost = getattr(manifest, "cost", None)
    return {
        "folder": str(folder), "model": manifest.model, "backend": manifest.backend, "status": manifest.status,
        "stop_reason": manifest.stop_reason, "n": manifest.n, "requests": manifest.requests, "valid": manifest.valid,
        "rejected": manifest.rejected_total, "http_requests": manifest.http_requests, "retries": manifest.retries,
        "prompt_tokens": manifest.prompt_tokens, "completion_tokens": manifest.completion_tokens,
        "brainstorm_tokens": (brainstorm.get("prompt_tokens") or 0) + (brainstorm.get("completion_tokens") or 0),
        "wall_seconds": manifest.wall_seconds, "sessions": manifest.sessions,
        "cost_usd": cost.get("usd") if isinstance(cost, dict) else None,
        "tasks": {kind: {"available": t.get("available"), "needed": t.get("needed")}
                  for kind, t in manifest.tasks.items()},
        "new_by_round": {subtype: list(record.get("new_by_round") or [])
                         for subtype, record in (brainstorm.get("subtypes") or {}).items()},
    }


def curate_figures(report: dict[str, Any]) -> dict[str, Any]:
    counts = report.get("check_counts") or {}
    return {
        "examples": report.get("examples"), "kept": report.get("kept"), "dropped": report.get("dropped") or {},
        "checks": report.get("checks") or [],
        "positive_rank": (counts.get("consistency") or {}).get("positive rank") or {},
        "margin": (counts.get("false-negative") or {}).get("margin") or {},
    }


@dataclass
class Dataset:
    """What one PATH holds, as the report shows it."""

    label: str
    stats: dict[str, Any]  # what `synthgen stats --json` says of it
    lengths: dict[tuple[str, str], collections.Counter]  # (kind, field) -> words -> examples
    asked: dict[str, dict[str, collections.Counter]]  # length check -> phrase asked -> words -> examples
    tasks: dict[str, collections.Counter]  # kind -> task -> examples
    manifests: list[dict[str, Any]] = field(default_factory=list)
    curated: list[dict[str, Any]] = field(default_factory=list)
    drops: collections.Counter = field(default_factory=collections.Counter)  # by reason, counted from dropped.jsonl
    rows: list[dict[str, Any]] = field(default_factory=list)  # the browser's sample


def collect(index: int, path: Path, sample: int = SAMPLE, seed: int = 0, show_progress: bool = False) -> Dataset:
    """Read one PATH (a run folder, a curated folder, a file or a folder of files) in one pass."""
    files = example_files([path])
    read = ReadCounts()
    collector = Collector()
    examples: Reservoir[dict[str, Any]] = Reservoir(sample, f"{seed}:{index}:examples")
    for example in read_examples(files, read, f"report {path}", show_progress):
        collector.add(example)
        slot = examples.offer()
        if slot is not None:
            examples.put(slot, example_row(index, example))
    read.require_examples([path])
    dataset = Dataset(str(path), figures(collector, read, files), dict(collector.lengths),
                      {name: dict(by_value) for name, by_value in collector.asked.items()}, dict(collector.tasks))
    dataset.rows = list(examples)
    for folder in run_folders(files):
        _beside(dataset, index, folder, seed)
    return dataset


def _beside(dataset: Dataset, index: int, folder: Path, seed: int) -> None:
    """The run's manifest and rejects, and curate's report and drops, in the folder of some input files."""
    manifest, rejects = run_files_beside(folder)
    if manifest is not None:
        dataset.manifests.append(manifest_figures(folder, manifest))
    if rejects is not None:
        few = _few(f"{seed}:{index}:{folder}:rejects")
        for reject in read_rejects(rejects):
            few[reject.reason].add(reject)
        dataset.rows += [reject_row(index, r) for reservoir in few.values() for r in reservoir]
    curated = CuratedFolder(folder)
    report = curated.read_report()
    if report is not None:
        dataset.curated.append(curate_figures(report))
    few = _few(f"{seed}:{index}:{folder}:dropped")
    for record in curated.dropped_examples():
        dataset.drops[record.reason] += 1
        few[record.reason].add(record)
    dataset.rows += [dropped_row(index, d) for reservoir in few.values() for d in reservoir]


def _few(seed: str) -> collections.defaultdict:
    """A reservoir of FEW records per reason, made as reasons are met."""
    return collections.defaultdict(lambda: Reservoir(FEW, seed))
