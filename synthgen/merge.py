"""Joining the shards of one plan (generate --shard K/M) into one run folder: synthgen merge.

The shards must be of one plan: the same fingerprint (seed, config, tasks, templates), the same M
and n, each K once. Their examples and rejects are streamed into the merged folder (memory: one
16-byte digest an example, and the indices), an example already given by an earlier shard is moved
to the rejects as a duplicate (as a single run rejects one), and the manifest sums the shards' counts
and says which shards are missing and which plan indices below n no shard has asked for yet.

The merged folder is a run like any other: dedup, curate and export read it, and `generate` with
the same config resumes it (it skips every index a shard answered).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import msgspec

from synthgen import __version__
from synthgen.answers import DUPLICATE
from synthgen.errors import BadInput
from synthgen.ledger import counted, run_cost
from synthgen.shards import Shard, shard_of
from synthgen.store import (
    KeptAndDropped,
    Manifest,
    MergeReport,
    Reject,
    RunFolder,
    RunState,
    ShardReport,
    decode_example,
    decode_key,
    example_digest,
    folder_lock,
)
from synthgen.tasks import TaskUses

SHOWN_INDICES = 5  # unasked plan indices named in a line; the count says how many there are


@dataclass
class ShardFolder:
    shard: Shard
    run: RunFolder
    manifest: Manifest


@dataclass
class MergeResult:
    out: RunFolder
    manifest: Manifest
    state: RunState
    shards: list[ShardFolder] = field(default_factory=list)
    unasked: dict[int, list[int]] = field(default_factory=dict)  # shard -> its plan indices below n not asked yet

    @property
    def complete(self) -> bool:
        report = self.manifest.shards
        return report is not None and not report.missing and all(s.valid >= s.target for s in report.merged)


def find_shards(paths: Iterable[Path]) -> list[ShardFolder]:
    """The shard folders named, or found one level below the folders named (OUT-shards/K-of-M)."""
    found = []
    for path in paths:
        if not path.is_dir():
            raise BadInput(f"no such folder: {path}" if not path.exists() else f"{path} is a file: give shard folders")
        run = RunFolder(path)
        candidates = [run] if run.manifest.exists() else [RunFolder(p) for p in sorted(path.iterdir())
                                                         if p.is_dir() and RunFolder(p).manifest.exists()]
        if not candidates:
            raise BadInput(f"{path} holds no shard (no run folder with a manifest, nor any below it)")
        for candidate in candidates:
            manifest = candidate.read_manifest()
            assert manifest is not None
            shard = shard_of(manifest)
            if shard is None:
                raise BadInput(f"{candidate.path} is not a shard (a run made without --shard): merge joins the "
                               "folders of generate --shard K/M")
            found.append(ShardFolder(shard, candidate, manifest))
    return check_one_plan(found)


def check_one_plan(shards: list[ShardFolder]) -> list[ShardFolder]:
    """The shards in K order, refused unless they are parts of one plan: one fingerprint, one M and
    n, each K once."""
    first = shards[0]
    for other in shards[1:]:
        if other.manifest.fingerprint != first.manifest.fingerprint:
            before, after = first.manifest.fingerprint_parts, other.manifest.fingerprint_parts
            differs = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
            raise BadInput(f"{first.run.path} and {other.run.path} are shards of different plans "
                           f"({', '.join(differs) or 'fingerprint'} differ): every shard needs the same seed, "
                           "config and task files")
        if other.shard.count != first.shard.count:
            raise BadInput(f"{first.run.path} is shard {first.shard} and {other.run.path} shard {other.shard}: "
                           "shards of one plan share their M")
        if _plan_n(other) != _plan_n(first):
            raise BadInput(f"{first.run.path} is a shard of --n {_plan_n(first)} and {other.run.path} of --n "
                           f"{_plan_n(other)}: every shard needs the same --n")
    by_index: dict[int, ShardFolder] = {}
    for folder in shards:
        if folder.shard.index in by_index:
            raise BadInput(f"shard {folder.shard} is given twice: {by_index[folder.shard.index].run.path} and "
                           f"{folder.run.path}")
        by_index[folder.shard.index] = folder
    return [by_index[index] for index in sorted(by_index)]


def _plan_n(folder: ShardFolder) -> int:
    assert folder.manifest.shard is not None  # find_shards keeps shards only
    return folder.manifest.shard.plan_n


def merge(paths: Iterable[Path], out: Path, brainstorm: Optional[dict[str, Any]] = None) -> MergeResult:
    """Join the shards found in `paths` into the run folder `out` (replacing an earlier merge there).

    brainstorm: what brainstorming the tasks cost, for the manifest (generate --ray brainstorms
    before its shards start)."""
    paths = list(paths)
    shards = find_shards(paths)
    target = RunFolder(out)
    for given in [*paths, *(s.run.path for s in shards)]:  # nested, a walk of one would read examples twice
        where, into = given.resolve(), out.resolve()
        if where == into or where in into.parents or into in where.parents:
            raise BadInput(f"--out {out} and {given} are one inside the other: merge into a folder beside the "
                           "shards (e.g. OUT for OUT-shards)")
    locks = [folder_lock(s.run.path) for s in shards]
    try:
        for lock in locks:  # a shard still being written cannot be merged yet
            lock.acquire("merge")
        with target.merged_output() as output:
            before = check_merge_target(out)
            state = RunState()
            made: dict[int, int] = {}
            duplicates = 0
            unasked: dict[int, list[int]] = {}
            for folder in shards:
                made[folder.shard.index], moved = _merge_shard(folder, state, output)
                duplicates += moved
                unasked[folder.shard.index] = _unasked(folder, state)
            report = _report(shards, made, unasked, duplicates)
            manifest = merged_manifest(shards, state, report, brainstorm or (before.brainstorm if before else None))
            output.commit(manifest)
    finally:
        for lock in locks:
            lock.release()
    return MergeResult(target, manifest, state, shards, unasked)


def check_merge_target(out: Path) -> Optional[Manifest]:
    """Refuse an --out that holds a run other than a merge (a merge replaces an earlier one); returns
    the earlier merge's manifest, if any."""
    target = RunFolder(out)
    before = target.read_manifest()
    if (before is None or before.shards is None) and (target.examples.exists() or target.rejects.exists()):
        raise BadInput(f"{out} holds a run that is not a merge of shards: merge into another folder")
    return before


def _merge_shard(folder: ShardFolder, state: RunState, output: KeptAndDropped) -> tuple[int, int]:
    """Stream one shard's examples and rejects into the output; returns the examples it made, and
    how many of them were moved to the rejects for repeating an earlier shard's."""
    shard, made, moved = folder.shard, 0, 0
    for line, record in folder.run.example_records():
        _check_residue(folder, record.index)
        if record.index in state.valid or record.index in state.rejected:  # a line written twice
            continue
        made += 1
        if example_digest(decode_key(line)) in state.keys:
            example = decode_example(line)
            reject = Reject(index=record.index, kind=example.kind, reason=DUPLICATE,
                            detail=f"the same example is in an earlier shard than {shard}",
                            text=msgspec.json.encode(example.raw).decode(), model=example.model, seed=example.seed,
                            usage=example.usage)
            if state.add_reject(reject):
                output.drop(reject)
                moved += 1
            continue
        state.add_example(line, record)
        output.keep_line(line if line.endswith(b"\n") else line + b"\n")
    for line, record in folder.run.reject_records():
        _check_residue(folder, record.index)
        if state.add_reject(record):
            output.drop_line(line if line.endswith(b"\n") else line + b"\n")
    return made, moved


def _check_residue(folder: ShardFolder, index: int) -> None:
    if index % folder.shard.count != folder.shard.index:
        raise BadInput(f"{folder.run.path} holds plan index {index}, which is not of shard {folder.shard}: "
                       "it was changed by hand or is another run's")


def _unasked(folder: ShardFolder, state: RunState) -> list[int]:
    """The shard's plan indices below n that it has sent no request for."""
    plan_n = _plan_n(folder)
    return [i for i in range(folder.shard.index, plan_n, folder.shard.count)
            if i not in state.valid and i not in state.rejected]


def _report(shards: list[ShardFolder], made: dict[int, int], unasked: dict[int, list[int]],
            duplicates: int) -> MergeReport:
    count = shards[0].shard.count
    plan_n = _plan_n(shards[0])
    merged = [ShardReport(index=s.shard.index, folder=str(s.run.path), status=s.manifest.status,
                          valid=made[s.shard.index], target=s.shard.target(plan_n),
                          unasked=len(unasked[s.shard.index])) for s in shards]
    present = {s.shard.index for s in shards}
    return MergeReport(count=count, merged=merged, missing=[k for k in range(count) if k not in present],
                       duplicates=duplicates)


def merged_manifest(shards: list[ShardFolder], state: RunState, report: MergeReport,
                    brainstorm: Optional[dict[str, Any]]) -> Manifest:
    """The first shard's settings, with the counts of the merged records and the shards' costs summed."""
    manifests = [s.manifest for s in shards]
    first = manifests[0]
    plan_n = _plan_n(shards[0])
    endpoints: list[str] = []
    for manifest in manifests:
        endpoints += [name.strip() for name in manifest.endpoint.split(",") if name.strip() not in endpoints]
    stopped = [f"shard {s.shard}: {s.manifest.stop_reason}" for s in shards if s.manifest.stop_reason]
    return msgspec.structs.replace(
        first,
        synthgen_version=__version__,
        status="complete" if len(state.valid) >= plan_n else "incomplete",
        stop_reason="; ".join(stopped) or None,
        endpoint=", ".join(endpoints),
        endpoints=_summed([m.endpoints for m in manifests]),
        n=plan_n,
        request_cap=sum(m.request_cap for m in manifests),
        **counted(len(state.valid), state.reasons, state.per_kind, state.usage, state.via, TaskUses(state.task_uses),
                  first.tasks),
        cooldown_seconds=round(sum(m.cooldown_seconds for m in manifests), 3),
        wall_seconds=max(m.wall_seconds for m in manifests),  # the shards ran side by side
        sessions=max(m.sessions for m in manifests),
        structured_output={k: v for m in manifests for k, v in m.structured_output.items()},
        brainstorm=brainstorm,
        # What the merged records cost at the first shard's price; a shard's budget was its own.
        cost=run_cost({**first.cost, "budget_usd": None} if first.cost else None, state.usage, state.via, brainstorm),
        shard=None,
        shards=report,
        batch=None,  # a shard's rounds and batches are its own folder's: the merged run has none
    )


def _summed(reports: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """Each endpoint's counts summed over the shards that used it."""
    total: dict[str, dict[str, int]] = {}
    for report in reports:
        for name, counts in report.items():
            summed = total.setdefault(name, {})
            for key, value in counts.items():
                summed[key] = summed.get(key, 0) + value
    return total


def describe(result: MergeResult, again: Optional[str] = None) -> tuple[str, list[str]]:
    """The summary line, and the lines that say what is missing (none when the merge is complete);
    again: what to do about it (default: run the shards that owe examples, then merge again)."""
    manifest, report = result.manifest, result.manifest.shards
    assert report is not None
    rejected = ", ".join(f"{reason} {count}" for reason, count in manifest.rejected.items()) or "none"
    summary = (f"merged {len(report.merged)} of {report.count} shards: {manifest.valid} of {manifest.n} examples in "
               f"{result.out.examples}; rejected: {rejected}")
    if report.duplicates:
        summary += (f"; {report.duplicates} examples repeated an earlier shard's and were moved to the rejects "
                    f"(to make them up: synthgen generate --n {manifest.n} --out {result.out.path}, same config)")
    gaps = []
    for index in report.missing:
        shard = Shard(index, report.count)
        indices = range(index, manifest.n, report.count)
        gaps.append(f"shard {shard} is missing: {len(indices)} examples, plan indices {_some(list(indices))}")
    for entry in report.merged:
        if entry.valid < entry.target:
            shard = Shard(entry.index, report.count)
            unasked = result.unasked.get(entry.index, [])
            left = f", plan indices {_some(unasked)} not asked yet" if unasked else ""
            gaps.append(f"shard {shard} has {entry.valid} of its {entry.target} examples ({entry.status}{left})")
    if gaps:
        gaps.append(again or f"run those shards (synthgen generate --n {manifest.n} --shard K/{report.count}, same "
                             "config and task files; a shard that was started resumes), then merge again")
    return summary, gaps


def _some(indices: list[int]) -> str:
    shown = ", ".join(map(str, indices[:SHOWN_INDICES]))
    return shown + (f", ... ({len(indices)} in all)" if len(indices) > SHOWN_INDICES else "")
