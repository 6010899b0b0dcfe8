"""A shard of a run: the plan indices i with i % M == K, for one of M machines (generate --shard K/M).

Example i comes from (seed, i) alone, so M machines with the same seed, config and task files make
disjoint parts of one plan, and their folders join into the run one machine would have made
(synthgen merge). A shard asks for its indices K, K + M, K + 2M, ... in order, and replaces a
rejected one with the next unused index of its own residue: shards never ask for the same index.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from synthgen.errors import BadInput
from synthgen.store import Manifest, RunState, ShardOf

MAX_SHARDS = 100_000
# A round of --batch, --write-requests or --read-results is the lowest unasked indices of the whole
# plan (synthgen.rounds), and its jobs record them as runs of consecutive indices: a shard's residue
# K, K + M, ... is not planned there, so the two are refused together.
NOT_WITH_ROUNDS = ("--batch, --write-requests and --read-results do not go with --shard or --ray (their rounds plan "
                   "the whole run's indices, not a shard's): give one or the other")


@dataclass(frozen=True)
class Shard:
    index: int  # K: 0 <= K < count
    count: int  # M

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """'K/M', K from 0 (as Slurm's and Kubernetes' array indices are); ValueError says what is wrong."""
        parts = text.split("/")
        if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
            raise ValueError(f"{text!r} is not K/M (shard K of M, K from 0 to M-1, e.g. 0/4)")
        index, count = (int(part) for part in parts)
        if not 1 <= count <= MAX_SHARDS:
            raise ValueError(f"{text}: M must be from 1 to {MAX_SHARDS}")
        if index >= count:
            raise ValueError(f"{text}: K must be from 0 to M-1 ({count - 1})")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def target(self, n: int) -> int:
        """The shard's share of n: how many of the plan indices below n are its own."""
        return len(range(self.index, n, self.count))

    def record(self, n: int) -> ShardOf:
        return ShardOf(self.index, self.count, n)


def check_same_shard(state: RunState, shard: Optional[Shard], out: Path) -> None:
    """Refuse to resume a folder that holds another part of the plan (or the whole of it)."""
    manifest = state.manifest
    if manifest is None or state.empty:
        return
    held = shard_of(manifest)
    if held != shard:
        what = f"shard {held}" if held else "a run made without --shard"
        asked = f"--shard {shard}" if shard else "a run without --shard"
        raise BadInput(f"{out} holds {what}, not {asked}: use another --out, or --overwrite to start over")


def check_shard_tasks(tasks: dict[str, list[str]], needed: dict[str, int], tasks_dir: Path) -> Optional[str]:
    """A shard never brainstorms: every shard must plan with the same task files. Refuses a kind
    with none; returns a warning line when some hold fewer than the run needs (None otherwise)."""
    commands = "; ".join(f"synthgen brainstorm --subtype {name} --n-tasks {needed[name]} --tasks {tasks_dir}"
                         for name in tasks if len(tasks[name]) < needed[name])
    if not commands:
        return None
    if not all(tasks.values()):
        empty = ", ".join(name for name, known in tasks.items() if not known)
        raise BadInput(f"--shard: no {empty} tasks in {tasks_dir}, and a shard does not brainstorm (every shard "
                       f"must plan with the same tasks): brainstorm them once ({commands}), then give every "
                       "shard the same task files")
    short = ", ".join(f"{name} {len(known)} of {needed[name]}" for name, known in tasks.items()
                      if len(known) < needed[name])
    return (f"--shard: fewer tasks than this n needs ({short}); the shard goes on with them, each used more "
            f"often (to brainstorm more, once, before every shard: {commands})")


def shard_of(manifest: Manifest) -> Optional[Shard]:
    return Shard(manifest.shard.index, manifest.shard.count) if manifest.shard else None
