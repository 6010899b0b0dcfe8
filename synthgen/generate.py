"""Stage 2: plan, run concurrently, validate, write, resume.

Example i of a run is planned from (seed, i) alone. Indices are sent in order; an index whose answer
is rejected stays in the rejects file and the next unused index replaces it, so the same seed and
config always give the same prompts, and a rerun skips every index already answered.
"""

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from synthgen import __version__
from synthgen.answering import Recorder, RequestRenderer, usage_of
from synthgen.backends import Backend, choose, open_backend
from synthgen.brainstorm import BrainstormResult, brainstorm
from synthgen.budget import CostMeter, MeteredClient, open_meter
from synthgen.config import Config, digest
from synthgen.console import say
from synthgen.dispatch import Dispatcher, FailureWindow, request_cap
from synthgen.errors import BadInput, BudgetReached, Interrupted, RunStopped
from synthgen.kinds import KINDS
from synthgen.ledger import Ledger, ManifestWriter
from synthgen.llm import RequestFailed, StopRun
from synthgen.progress import Progress
from synthgen.prompts import Templates
from synthgen.rounds import (
    BatchOptions,
    NoEndpoint,
    check_tasks_without_endpoint,
    files_backend,
    refuse_batches_at_provider,
)
from synthgen.sampling import (
    GROUNDED_PLAN_SETTINGS,
    GROUNDED_PLAN_VERSION,
    PLAN_VERSION,
    GroundedPlanner,
    Planner,
)
from synthgen.shards import NOT_WITH_ROUNDS, Shard, check_same_shard, check_shard_tasks
from synthgen.store import (
    CorpusFolder,
    Manifest,
    PassageIndex,
    RunFolder,
    RunState,
    ShardOf,
    Usage,
    task_file,
    tasks_folder,
)
from synthgen.tasks import diversity, needed_tasks

if TYPE_CHECKING:
    from synthgen.batch_api import BatchApiSession
    from synthgen.results_files import ResultsFileSession

    Session = Union["Generation", BatchApiSession, ResultsFileSession]


def fingerprint_parts(config: Config, templates: Templates, tasks: dict[str, list[str]],
                      corpus: Optional[PassageIndex] = None) -> dict[str, str]:
    """Digests of everything that decides a run's prompts and answers, named for the user."""
    settings = config.fingerprint_data()
    parts = {name: digest(value) for name, value in settings.items()}
    parts["templates"] = digest(templates.texts())
    parts["tasks"] = digest(tasks)
    parts["plan"] = PLAN_VERSION
    if corpus is not None:  # only then: runs made without a corpus keep their fingerprints
        parts["corpus"] = corpus.digest
        parts["corpus_settings"] = digest(config.generate.corpus.model_dump(mode="json", include=GROUNDED_PLAN_SETTINGS))
        parts["grounded_plan"] = GROUNDED_PLAN_VERSION
    return parts


def check_same_run(state: RunState, parts: dict[str, str], out: Path) -> None:
    """Refuse to resume a run made with other settings: its examples would not match its plan."""
    before = state.manifest.fingerprint_parts if state.manifest else {}
    if not before and state.empty:
        return
    if not before:
        raise BadInput(f"{out} holds examples without a manifest: use another --out, or --overwrite to start over")
    differs = sorted(name for name in set(before) | set(parts) if before.get(name) != parts.get(name))
    if differs:
        raise BadInput(
            f"{out} holds a run with other settings ({', '.join(differs)} differ): "
            "use another --out, or --overwrite to start over"
        )


class Generation:
    """One session of a run: asks for each planned index, turns answers into records, keeps the books."""

    def __init__(self, config: Config, backend: Backend, templates: Templates, planner: Union[Planner, GroundedPlanner],
                 folder: RunFolder, state: RunState, header: Manifest, show_progress: bool = True,
                 passages: Optional[PassageIndex] = None, meter: Optional[CostMeter] = None):
        self.config = config
        self.client = backend.client
        self.planner = planner
        self.folder = folder
        self.ledger = Ledger(state, header)
        self.requests = RequestRenderer(config, templates, planner, passages)
        self.recorder = Recorder(self.ledger, state.keys, self.client.model, planner.seed)
        self.failures = FailureWindow()
        self.progress = Progress("generate", header.n, "ex", show_progress, initial=min(self.ledger.valid, header.n),
                                 usage=self.client.usage,
                                 status=(lambda: meter.status(self.ledger.valid, header.n)) if meter else None)
        stride = {"first": header.shard.index, "step": header.shard.count} if header.shard else {}
        self.dispatcher = Dispatcher(header.n, header.request_cap, config.generate.concurrency,
                                     finished=state.valid | state.rejected, succeeded=self.ledger.valid,
                                     tracker=self.progress, **stride)

    @property
    def stop_reason(self) -> Optional[str]:
        return self.dispatcher.stop_reason

    def manifest(self, status: str) -> Manifest:
        return self.ledger.manifest(status, self.dispatcher.stop_reason, self.client.usage)

    async def run(self) -> str:
        """Until N valid examples, the cap, a stop or an interrupt; returns the dispatcher's outcome."""
        writer = ManifestWriter(self.folder)
        writer.write(self.manifest("running"))  # before the first request: examples never lack their fingerprint
        restore = self.dispatcher.catch_interrupts()
        ticker = asyncio.create_task(writer.write_often(lambda: self.manifest("running")))
        self.recorder.open(self.folder)
        try:
            async with self.progress:
                await self.dispatcher.run(self._request)
        except StopRun as exc:
            self.dispatcher.stop(str(exc))
        finally:
            restore()
            ticker.cancel()
            self.recorder.close()
            outcome = self.dispatcher.outcome
            writer.write(self.manifest("stopped" if outcome == "capped" else outcome))  # capped: stopped short of N
        return self.dispatcher.outcome

    async def _request(self, index: int) -> Optional[bool]:
        request = self.requests.render(index)
        try:
            completion = await self.client.complete(
                request.prompt,
                max_tokens=request.max_tokens,
                schema=request.schema,
                schema_name=request.item.kind,
            )
        except BudgetReached as exc:  # not sent: the index stays for a later session
            self.dispatcher.stop(str(exc))
            return None
        except RequestFailed as exc:
            self.recorder.failure(request.item, str(exc), Usage(http_requests=exc.http_requests))
            stop = self.failures.record(True, str(exc))
            if stop:
                self.dispatcher.stop(stop)
            return False
        self.failures.record(False)
        return self.recorder.answer(request, completion, usage_of(completion))


def load_all_tasks(config: Config) -> dict[str, list[str]]:
    """The tasks of every brainstormed kind in the mix ([] where there are none yet)."""
    tasks_dir = tasks_folder(Path(config.generate.tasks))
    tasks = {}
    for name in config.active_kinds():
        if KINDS[name].brainstormed:
            file = task_file(tasks_dir, name)
            tasks[name] = file.read()
            if file.skipped:
                say(f"{file.path}: {file.skipped} lines are not {name} tasks and were passed over")
    return tasks


def load_grounded_tasks(config: Config) -> dict[str, list[str]]:
    """generate --corpus --tasks: the task set of each kind in [generate.corpus] kinds, which must
    have one (a corpus run brainstorms nothing)."""
    tasks_dir = tasks_folder(Path(config.generate.tasks))
    tasks = {}
    for name, weight in config.generate.corpus.kinds.items():
        if weight > 0:
            file = task_file(tasks_dir, name)
            tasks[name] = file.read()
            if not tasks[name]:
                raise BadInput(f"--tasks {tasks_dir}: no {name} tasks in {file.path} (brainstorm them with "
                               f"`synthgen brainstorm --subtype {name} --tasks {tasks_dir}`, or leave --tasks out "
                               "for the LLM to write each task from its passage)")
    return tasks


async def brainstorm_shortfall(config: Config, backend: Backend, templates: Templates, tasks: dict[str, list[str]],
                               needed: dict[str, int], resuming: bool, show_progress: bool) -> dict[str, dict]:
    """Brainstorm each kind's task file up to the tasks `needed` for the run; returns what each
    brainstorm did, for the manifest.

    A run being resumed keeps the tasks it was planned with, unless it has none. When brainstorming
    reaches the floor, the run goes on with the tasks there are, and says so.
    """
    tasks_dir = Path(config.generate.tasks)
    records = {}
    for name, known in tasks.items():
        wanted = needed[name]
        if len(known) >= wanted:
            continue
        if resuming and known:
            say(f"{name}: the run was planned with {len(known)} tasks, fewer than the {wanted} this n needs; "
                "it keeps them (a new --out brainstorms more)")
            continue
        file = task_file(tasks_dir, name)
        say(f"{name}: {len(known)} tasks in {file.path}, {wanted} needed "
            f"({config.brainstorm.examples_per_task:g} examples per task): brainstorming {wanted - len(known)} more")
        result = await brainstorm(backend.client, config, templates, file, show_progress=show_progress, wanted=wanted)
        tasks[name] = file.read()
        records[name] = result.record()
        if not tasks[name]:
            why = result.stop_reason or "; ".join(result.failures[:3])
            raise RunStopped(f"the brainstorm for {name} gave no usable task ({why})")
        if len(tasks[name]) < wanted:
            say(_short_of_tasks(name, result, len(tasks[name]), wanted))
            if result.stop_reason and not result.exhausted:  # the endpoint fails: generating would too
                raise RunStopped(f"brainstorming {name} stopped: {result.stop_reason}")
    return records


async def ready_tasks(config: Config, backend: Backend, templates: Templates, tasks: dict[str, list[str]], n: int,
                      resuming: bool, show_progress: bool, shard: Optional[Shard] = None,
                      meter: Optional[CostMeter] = None) -> tuple[dict[str, int], dict[str, dict]]:
    """The tasks each brainstormed kind needs for n examples, and what brainstorming did (for the
    manifest). A run brainstorms the shortfall; a shard never does: every shard must plan with the
    same task files."""
    needed = needed_tasks(n, config.active_kinds(), config.brainstorm.examples_per_task)
    needed = {name: needed[name] for name in tasks}  # the brainstormed kinds
    if shard is not None:
        short = check_shard_tasks(tasks, needed, Path(config.generate.tasks))
        if short:
            say(short)
        return needed, {}
    if isinstance(backend.client, NoEndpoint):  # requests as files with no endpoint: nothing to brainstorm with
        check_tasks_without_endpoint(tasks, needed)
        return needed, {}
    return needed, await _brainstorm_metered(config, backend, templates, tasks, needed, resuming, show_progress, meter)


async def _brainstorm_metered(config: Config, backend: Backend, templates: Templates, tasks: dict[str, list[str]],
                              needed: dict[str, int], resuming: bool, show_progress: bool,
                              meter: Optional[CostMeter]) -> dict[str, dict]:
    """brainstorm_shortfall, its spend counted as the brainstorm's; a brainstorm the budget stopped
    stops the run as the budget does."""
    if meter is None:
        return await brainstorm_shortfall(config, backend, templates, tasks, needed, resuming, show_progress)
    meter.stage = "brainstorm"
    try:
        return await brainstorm_shortfall(config, backend, templates, tasks, needed, resuming, show_progress)
    except RunStopped:
        if meter.reached:
            raise BudgetReached(meter.reached, meter.enough(0, 0)) from None
        raise
    finally:
        meter.stage = "generate"


def _short_of_tasks(name: str, result: BrainstormResult, have: int, wanted: int) -> str:
    why = result.stop_reason if result.stop_reason else (
        f"{result.rounds_failed} of {result.sent} rounds gave no usable task, up to the request cap")
    return f"{name}: brainstorming stopped at {have} of the {wanted} tasks wanted: {why}; the run goes on with {have}"


def task_report(tasks: dict[str, list[str]], needed: dict[str, int]) -> dict[str, dict]:
    """What the manifest says of each brainstormed kind's task set before the run."""
    return {name: {"available": len(known), "needed": needed[name], **diversity(known)} for name, known in tasks.items()}


def run_header(config: Config, backend: Backend, parts: dict[str, str], n: int, cap: int,
               brainstormed: Optional[dict], tasks: dict[str, dict], corpus: Optional[dict] = None,
               shard: Optional[ShardOf] = None, meter: Optional[CostMeter] = None) -> Manifest:
    return Manifest(
        synthgen_version=__version__,
        fingerprint=digest(parts),
        fingerprint_parts=parts,
        backend=backend.name,
        model=backend.client.model,
        model_digest=backend.model_digest,
        endpoint=backend.endpoint,
        seed=config.generate.seed,
        n=n,
        request_cap=cap,
        brainstorm=brainstormed,
        tasks=tasks,
        corpus=corpus,
        shard=shard,
        cost={"price": meter.price.record(), "budget_usd": meter.budget} if meter else None,
        config=config.model_dump(mode="json", exclude={"llm": {"api_key"}}),
    )


async def generate(
    config: Config, n: int, out: Path, overwrite: bool = False, show_progress: bool = True,
    max_requests: Optional[int] = None, corpus: Optional[Path] = None, corpus_tasks: bool = False,
    shard: Optional[Shard] = None, batch: Optional[BatchOptions] = None,
) -> "Session":
    """corpus: a folder of `synthgen corpus ingest`: every example is grounded in one of its
    passages (no brainstorm: the LLM writes each task from its passage, or with corpus_tasks draws
    it from the task files of [generate] tasks). shard: make only that shard's share of the n
    examples of the plan, in `out` (synthgen.shards). batch: the requests go in rounds, through the
    Batch API or as files for an offline runner, instead of live (not with a shard: the rounds plan
    the whole run's indices)."""
    if shard is not None and batch is not None:
        raise BadInput(NOT_WITH_ROUNDS)
    passages = CorpusFolder(corpus).index() if corpus is not None else None
    try:
        return await _generate(config, n, out, overwrite, show_progress, max_requests, corpus, passages, corpus_tasks,
                               shard, batch)
    finally:
        if passages is not None:
            passages.close()


def _session(config: Config, backend: Backend, templates: Templates, planner: Union[Planner, GroundedPlanner],
             folder: RunFolder, state: RunState, header: Manifest, show_progress: bool,
             passages: Optional[PassageIndex], batch: Optional[BatchOptions], meter: Optional[CostMeter]) -> "Session":
    """The run's session: live, through the Batch API, or as request and result files."""
    if batch is None:
        return Generation(config, backend, templates, planner, folder, state, header, show_progress, passages, meter)
    if batch.api:
        from synthgen.batch_api import BatchApiSession

        return BatchApiSession(config, templates, planner, folder, state, header, show_progress, passages)
    from synthgen.results_files import ResultsFileSession

    return ResultsFileSession(config, templates, planner, folder, state, header, batch, show_progress, passages)


def plan_inputs(config: Config, passages: Optional[PassageIndex], corpus_tasks: bool
                ) -> tuple[Templates, dict[str, list[str]]]:
    """The templates and the task sets a run's plan is made of (a corpus run: the tasks given, or none)."""
    templates = Templates(Path(config.prompts) if config.prompts else None, corpus=passages is not None,
                          given_tasks=corpus_tasks)
    if passages is None:
        return templates, load_all_tasks(config)
    return templates, load_grounded_tasks(config) if corpus_tasks else {}


async def _generate(config: Config, n: int, out: Path, overwrite: bool, show_progress: bool,
                    max_requests: Optional[int], corpus: Optional[Path], passages: Optional[PassageIndex],
                    corpus_tasks: bool, shard: Optional[Shard], batch: Optional[BatchOptions]) -> "Session":
    templates, tasks = plan_inputs(config, passages, corpus_tasks)
    with RunFolder(out).open("generate") as folder:
        if overwrite:
            refuse_batches_at_provider(folder.read_manifest(), out, "starting over")
            folder.remove_run()
        state = folder.read_state()
        check_same_shard(state, shard, out)
        if batch is None or not batch.api:
            refuse_batches_at_provider(state.manifest, out, "asking for their requests another way")
        if all(tasks.values()):  # refuse a mismatched resume before anything is printed or sent
            check_same_run(state, fingerprint_parts(config, templates, tasks, passages), out)
        meter = open_meter(config, choose(config), state)
        backend = files_backend(config) if batch is not None and not batch.api else open_backend(config)
        # The meter (the progress bar's cost, the budget) watches live requests, every one of the run,
        # brainstorm and generation, on every endpoint. Rounds are priced from their records alone (no
        # budget with them: cli), the Batch API's at its share of the price (Ledger.cost).
        if meter is not None and batch is None:
            backend.client = MeteredClient(backend.client, meter)
        try:
            say(f"synthgen {__version__}: {backend.description}")
            if passages is not None:
                say(f"grounded in {corpus}: {len(passages)} passages of {passages.documents} documents")
            if passages is None:
                needed, subtypes = await ready_tasks(config, backend, templates, tasks, n, not state.empty,
                                                     show_progress, shard, meter)
            else:  # grounded: the tasks given are the set, or the LLM writes them
                needed, subtypes = {name: len(known) for name, known in tasks.items()}, {}
            spent = backend.client.usage.take_counts()  # kept apart: the manifest's counts are generation's
            parts = fingerprint_parts(config, templates, tasks, passages)
            check_same_run(state, parts, out)
            if not state.empty:
                say(f"resuming {out}: {len(state.valid)} valid and {len(state.rejected)} rejected already there")
            target = shard.target(n) if shard else n
            cap = max_requests or request_cap(target, config.generate.request_cap_factor)
            brainstormed = {**spent, "subtypes": subtypes} if spent["http_requests"] else None
            described = {"path": str(corpus), "digest": passages.digest, "passages": len(passages),
                         "documents": passages.documents} if passages is not None else None
            header = run_header(config, backend, parts, target, cap, brainstormed, task_report(tasks, needed),
                                described, shard.record(n) if shard else None, meter)
            planner = (Planner(config, tasks) if passages is None
                       else GroundedPlanner(config, passages, tasks if corpus_tasks else None))
            generation = _session(config, backend, templates, planner, folder, state, header, show_progress, passages,
                                  batch, meter)
            outcome = await generation.run()
        finally:
            await backend.client.aclose()
    if outcome == "stopped":
        if meter is not None and meter.reached:
            raise BudgetReached(meter.reached, meter.enough(generation.ledger.valid, n))
        raise RunStopped(generation.stop_reason or "stopped")
    if outcome == "interrupted":
        raise Interrupted()
    return generation
