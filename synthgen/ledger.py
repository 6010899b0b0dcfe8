"""A run's counters and its manifest: what was made, what was rejected and why, what it cost.

The totals start from what the run folder already holds (counted from its records, so a `kill -9`
loses no answered request) and grow with each record written. The manifest is a snapshot of them,
written during the run at most every few seconds (off the event loop) and once at the end.
"""

import asyncio
import collections
import dataclasses
import threading
import time
from typing import Any, Callable, Mapping, Optional

import msgspec

from synthgen.llm import EndpointCounts
from synthgen.llm import Usage as ClientUsage
from synthgen.prices import Price
from synthgen.store import Example, Manifest, Reject, RunFolder, RunState, Usage, add_usage
from synthgen.tasks import TaskUses

MANIFEST_EVERY = 2.0  # seconds between manifest updates during a run


class Ledger:
    def __init__(self, state: RunState, header: Manifest):
        """`header` holds the run's fixed fields (settings, fingerprint, endpoint); the ledger the rest."""
        self.header = header
        self.before = state.manifest or Manifest()
        self.valid = len(state.valid)
        self.per_kind = collections.Counter(state.per_kind)
        self.reasons = collections.Counter(state.reasons)
        self.usage = msgspec.structs.replace(state.usage)
        self.via = {way: msgspec.structs.replace(usage) for way, usage in state.via.items()}
        self.task_uses = TaskUses(state.task_uses)
        self.started = time.monotonic()

    @property
    def rejected_total(self) -> int:
        return sum(self.reasons.values())

    def add_example(self, example: Example) -> None:
        self.valid += 1
        self.per_kind[example.kind] += 1
        self.task_uses.add(example.kind, example.task)
        if example.usage is not None:
            add_usage(self.usage, self.via, example.usage)

    def add_reject(self, reject: Reject) -> None:
        self.reasons[reject.reason] += 1
        if reject.usage is not None:
            add_usage(self.usage, self.via, reject.usage)

    def manifest(self, status: str, stop_reason: Optional[str], client: ClientUsage) -> Manifest:
        before = self.before
        return msgspec.structs.replace(
            self.header,
            status=status,
            stop_reason=stop_reason,
            **counted(self.valid, self.reasons, self.per_kind, self.usage, self.via, self.task_uses,
                      self.header.tasks),
            batch=self.header.batch or before.batch,
            cooldown_seconds=round(before.cooldown_seconds + client.cooldown_seconds, 3),
            wall_seconds=round(before.wall_seconds + time.monotonic() - self.started, 3),
            sessions=before.sessions + 1,
            structured_output=dict(client.structured_output),
            endpoints=endpoint_report(before.endpoints, client.endpoints),
            brainstorm=self.header.brainstorm or before.brainstorm,
            cost=self.cost(),
        )

    def cost(self) -> Optional[dict[str, Any]]:
        """The header's price and budget with what the run spent at that price, all sessions: the
        generation's tokens from its records, the brainstorm's from its record in the manifest."""
        return run_cost(self.header.cost, self.usage, self.via, self.header.brainstorm or self.before.brainstorm)


def run_cost(cost: Optional[dict[str, Any]], usage: Usage, via: Mapping[str, Usage],
             brainstorm: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The manifest's `cost`: its price and budget (`cost`, the run header's) with what the run spent
    at that price: the generation's tokens (`usage`, the Batch API's share at its price) and the
    brainstorm's (its record in the manifest)."""
    if cost is None:
        return None
    price = Price.from_record(cost["price"])
    brainstorm = brainstorm or {}
    brainstorming = price.of(brainstorm.get("prompt_tokens", 0), brainstorm.get("completion_tokens", 0))
    generation = price.of_run(usage.prompt_tokens, usage.completion_tokens, via.get("batch"))
    return {**cost, "usd": round(brainstorming + generation, 6), "brainstorm_usd": round(brainstorming, 6),
            "generation_usd": round(generation, 6)}


def counted(valid: int, reasons: Mapping[str, int], per_kind: Mapping[str, int], usage: Usage,
            via: Mapping[str, Usage], task_uses: TaskUses, tasks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The manifest's fields counted from a run's records: requests, examples, rejects by reason,
    tokens (and the share of them that came another way than live, by way: Usage.via), and the
    examples per task of each brainstormed kind (`tasks`: the header's figures)."""
    rejected = sum(reasons.values())
    return {
        "requests": valid + rejected,
        "valid": valid,
        "rejected_total": rejected,
        "rejected": dict(sorted(reasons.items())),
        "per_kind": dict(sorted(per_kind.items())),
        "http_requests": usage.http_requests,
        "retries": usage.retries,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "via": {way: msgspec.structs.replace(spent) for way, spent in sorted(via.items())},  # a snapshot
        "tasks": {kind: {**figures, "examples_per_task": task_uses.summary(kind)} for kind, figures in tasks.items()},
    }


def endpoint_report(before: dict[str, dict[str, int]], now: dict[str, EndpointCounts]) -> dict[str, dict[str, int]]:
    """Each endpoint's counts over the sessions: a resumed run may use other endpoints than before."""
    report = {name: dict(counts) for name, counts in before.items()}
    for name, counts in now.items():
        summed = report.setdefault(name, {})
        for field, value in dataclasses.asdict(counts).items():
            summed[field] = summed.get(field, 0) + value
    return report


class ManifestWriter:
    """Writes manifests of one run in order; once a final one (status not "running") is written,
    no "running" one replaces it, even one whose write was already under way in a thread."""

    def __init__(self, folder: RunFolder):
        self.folder = folder
        self._lock = threading.Lock()
        self._final = False

    def write(self, manifest: Manifest) -> None:
        with self._lock:
            if not self._final:
                self._final = manifest.status != "running"
                self.folder.write_manifest(manifest)

    async def write_often(self, snapshot: Callable[[], Manifest]) -> None:
        while True:
            await asyncio.sleep(MANIFEST_EVERY)
            # The snapshot is taken here; the write and its fsync, which a busy disk can stretch to
            # seconds, run in a thread so that requests keep flowing meanwhile.
            await asyncio.to_thread(self.write, snapshot())
