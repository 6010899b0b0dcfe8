"""generate --ray: the M shards of a run as Ray tasks on a Ray cluster, merged into the run folder.

Ray schedules the shards (spread over the nodes, one CPU each) and reports their ends; everything
else is the shard's own: each task runs `generate --shard K/M` into OUT-shards/K-of-M against the
endpoint(s) given (a 127.0.0.1 URL is each node's own server), with its lock, resume and manifest.
The tasks are brainstormed here first, once, so that every shard plans with the same ones; when the
shards end, they are merged into OUT (synthgen.merge).

Paths are sent as absolute paths: on a cluster of several machines, OUT and the task files must be
on storage every node sees. The API key is never sent through Ray (its task arguments are kept in
its object store and logs): each node's synthgen reads OPENAI_API_KEY from its own environment, and
a local Ray instance inherits this process's.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from synthgen.backends import choose, open_backend
from synthgen.config import Config
from synthgen.console import say
from synthgen.dispatch import GRACE_SECONDS
from synthgen.errors import BadInput, Interrupted, RunStopped
from synthgen.generate import Generation, generate, load_all_tasks, ready_tasks
from synthgen.llm import StopRun
from synthgen.merge import MergeResult, check_merge_target, merge
from synthgen.prompts import Templates
from synthgen.shards import Shard
from synthgen.store import RunFolder

RAY_HINT = "--ray needs Ray: pip install 'synthgen[ray]'"
LOCAL = "local"  # --ray local: a Ray instance of this machine alone, started for the run


@dataclass(frozen=True)
class ShardJob:
    """What a Ray task needs to run one shard: plain values, the config without its key."""

    settings: dict[str, Any]
    n: int
    out: str
    overwrite: bool
    max_requests: Optional[int]
    corpus: Optional[str]
    corpus_tasks: bool


@dataclass
class RayRun:
    merged: MergeResult
    stopped: list[str]  # "shard K/M: why" for each shard the endpoint stopped


def run_shard(job: ShardJob, index: int, count: int) -> dict[str, Any]:
    """One shard, in a Ray worker: its outcome, never an exception (the driver says what went wrong)."""
    from pydantic import SecretStr

    config = Config.model_validate(job.settings)
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        config.llm.api_key = SecretStr(key)
    shard = Shard(index, count)
    folder = RunFolder(Path(job.out)).shard_folder(index, count)
    outcome: dict[str, Any] = {"index": index, "host": socket.gethostname(), "folder": str(folder), "message": ""}
    try:
        run = asyncio.run(generate(config, job.n, folder, job.overwrite, show_progress=False,
                                   max_requests=job.max_requests, corpus=Path(job.corpus) if job.corpus else None,
                                   corpus_tasks=job.corpus_tasks, shard=shard))
        assert isinstance(run, Generation)  # a shard runs live
        outcome["status"] = run.dispatcher.outcome
    except BadInput as exc:
        outcome.update(status="bad_input", message=str(exc))
    except (RunStopped, StopRun) as exc:
        outcome.update(status="stopped", message=str(exc))
    except (Interrupted, KeyboardInterrupt):
        outcome["status"] = "interrupted"
    return outcome


def run_on_ray(config: Config, n: int, out: Path, address: str, shards: Optional[int], overwrite: bool = False,
               max_requests: Optional[int] = None, corpus: Optional[Path] = None, corpus_tasks: bool = False,
               show_progress: bool = True) -> RayRun:
    """Brainstorm what the run lacks, run the shards on Ray, wait for them, merge them into `out`."""
    try:
        import ray
    except ImportError:
        raise BadInput(RAY_HINT) from None
    out = out.resolve()
    check_merge_target(out)  # before anything is paid for: the merge at the end must be possible
    run = RunFolder(out)
    brainstormed = None
    if corpus is None:
        resuming = run.shards.is_dir() and not overwrite  # shards already started keep their tasks
        brainstormed = asyncio.run(_brainstorm_first(config, n, resuming, show_progress))
    job = ShardJob(_portable(config), n, str(out), overwrite, max_requests,
                   str(corpus.resolve()) if corpus else None, corpus_tasks)
    with _connected(ray, address) as where:
        count = shards or sum(1 for node in ray.nodes() if node.get("Alive"))
        folders = [run.shard_folder(index, count) for index in range(count)]
        say(f"{count} shards as Ray tasks on {where}: {run.shards}/K-of-{count}, merged into {out}")
        task = ray.remote(run_shard).options(num_cpus=1, scheduling_strategy="SPREAD", max_retries=0)
        pending = {task.remote(job, index, count): index for index in range(count)}
        outcomes = _wait(ray, pending, folders, n, show_progress)
    made, stopped = _gathered(outcomes, folders, count)
    return RayRun(merge(made, out, brainstormed), stopped)


def _gathered(outcomes: list[dict[str, Any]], folders: list[Path], count: int) -> tuple[list[Path], list[str]]:
    """The shard folders to merge, and why shards stopped; BadInput when a shard refused its input or
    wrote where this machine cannot see."""
    def said(outcome: dict[str, Any]) -> str:
        return f"shard {Shard(outcome['index'], count)}: {outcome['message']}"

    refused = [said(o) for o in outcomes if o["status"] == "bad_input"]
    if refused:
        raise BadInput("; ".join(refused))
    made = [folder for folder in folders if RunFolder(folder).manifest.exists()]
    for outcome in outcomes:
        if outcome["status"] != "failed" and Path(outcome["folder"]) not in made:
            raise BadInput(f"shard {Shard(outcome['index'], count)} ran on {outcome['host']} and wrote "
                           f"{outcome['folder']}, which this machine does not see: --out must be on storage that "
                           "every node shares")
    stopped = [said(o) for o in outcomes if o["status"] in ("stopped", "failed")]
    if not made:
        raise RunStopped("; ".join(stopped))
    return made, stopped


async def _brainstorm_first(config: Config, n: int, resuming: bool, show_progress: bool) -> Optional[dict[str, Any]]:
    """The tasks the run needs, brainstormed here, once (the shards only read them); what it cost."""
    tasks = load_all_tasks(config)
    backend = open_backend(config)
    try:
        templates = Templates(Path(config.prompts) if config.prompts else None)
        _, subtypes = await ready_tasks(config, backend, templates, tasks, n, resuming, show_progress)
        spent = backend.client.usage.take_counts()
    finally:
        await backend.client.aclose()
    return {**spent, "subtypes": subtypes} if spent["http_requests"] else None


def _portable(config: Config) -> dict[str, Any]:
    """The config as the shards get it: paths absolute (a worker's folder is not ours), the backend
    decided here (a node without the key must not fall back to the embedded model), no key."""
    settings = config.model_dump(mode="json", exclude={"llm": {"api_key"}})
    settings["llm"]["backend"] = choose(config)
    for section, key in (("generate", "out"), ("generate", "tasks"), ("llm", "model_path")):
        if settings[section][key]:
            settings[section][key] = str(Path(settings[section][key]).resolve())
    if settings["prompts"]:
        settings["prompts"] = str(Path(settings["prompts"]).resolve())
    return settings


@contextlib.contextmanager
def _connected(ray: Any, address: str) -> Iterator[str]:
    """Ray started (local) or joined (auto, or the head's address) for the block; says which."""
    if address == LOCAL:  # an instance synthgen starts sends no usage report unless the user asks for one
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        context = ray.init(address=address, include_dashboard=False if address == LOCAL else None,
                           log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise BadInput(f"--ray {address}: {' '.join(str(exc).split())}") from None
    try:
        info = getattr(context, "address_info", {}) or {}
        yield "a local Ray instance" if address == LOCAL else f"the Ray cluster at {info.get('gcs_address', address)}"
    finally:
        ray.shutdown()


def _wait(ray: Any, pending: dict[Any, int], folders: list[Path], n: int, show_progress: bool) -> list[dict[str, Any]]:
    """Each shard's outcome, in shard order, with a bar of the examples made (read from the shards'
    manifests). Ctrl+C stops the shards as Ctrl+C stops a run, and raises Interrupted."""
    from tqdm import tqdm

    outcomes: dict[int, dict[str, Any]] = {}
    with tqdm(total=n, desc=f"generate ({len(folders)} shards)", unit="ex", disable=None if show_progress else True,
              dynamic_ncols=True) as bar:
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=1.0)
                for ref in done:
                    index = pending.pop(ref)
                    outcomes[index] = _outcome(ray, ref, index, folders[index])
                bar.n = min(n, sum(_valid(folder) for folder in folders))
                bar.refresh()
        except KeyboardInterrupt:
            say(f"\ninterrupted: stopping {len(pending)} shards (each gives its requests in flight up to "
                f"{GRACE_SECONDS:g} s)")
            for ref in pending:
                ray.cancel(ref)
            deadline = time.monotonic() + GRACE_SECONDS + 5
            while pending and time.monotonic() < deadline:
                done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=1.0)
                for ref in done:
                    pending.pop(ref)
            raise Interrupted() from None
    return [outcomes[index] for index in sorted(outcomes)]


def _outcome(ray: Any, ref: Any, index: int, folder: Path) -> dict[str, Any]:
    """What run_shard returned, or what Ray says became of it (synthgen missing on the node, a
    worker killed, a node lost)."""
    try:
        return dict(ray.get(ref))
    except ray.exceptions.RayError as exc:
        cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return {"index": index, "status": "failed", "folder": str(folder), "host": "?",
                "message": f"its Ray task failed ({cause})"}


def _valid(folder: Path) -> int:
    """A shard's valid examples so far, from its manifest (rewritten every few seconds); 0 before it has one."""
    try:
        manifest = RunFolder(folder).read_manifest()
    except BadInput:  # read between a write and its rename on a store without atomic rename
        return 0
    return manifest.valid if manifest else 0
