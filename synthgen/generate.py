"""Stage 2: plan, run concurrently, validate, write, resume.

Example i of a run is planned from (seed, i) alone. Indices are sent in order; an index whose answer
is rejected stays in the rejects file and the next unused index replaces it, so the same seed and
config always give the same prompts, and a rerun skips every index already answered.
"""

import asyncio
from pathlib import Path
from typing import Optional, Union

from synthgen import __version__
from synthgen.answers import DUPLICATE, REQUEST_FAILED, Verdict, validate_answer
from synthgen.backends import Backend, choose, open_backend
from synthgen.brainstorm import BrainstormResult, brainstorm
from synthgen.budget import CostMeter, MeteredClient, open_meter
from synthgen.config import Config, digest
from synthgen.console import say
from synthgen.dispatch import Dispatcher, FailureWindow, request_cap
from synthgen.errors import BadInput, BudgetReached, Interrupted, RunStopped
from synthgen.grounded import GROUNDED, PASSAGE
from synthgen.kinds import KINDS
from synthgen.ledger import Ledger, ManifestWriter
from synthgen.llm import Completion, RequestFailed, StopRun
from synthgen.progress import Progress
from synthgen.prompts import Templates
from synthgen.sampling import (
    GROUNDED_PLAN_SETTINGS,
    GROUNDED_PLAN_VERSION,
    PLAN_VERSION,
    GroundedPlanner,
    PlanItem,
    Planner,
)
from synthgen.schemas import answer_schema
from synthgen.store import (
    CorpusFolder,
    Example,
    Manifest,
    Passage,
    PassageIndex,
    Reject,
    RunFolder,
    RunState,
    Usage,
    example_digest,
    task_file,
    tasks_folder,
)
from synthgen.tasks import diversity, needed_tasks


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


def usage_of(completion: Completion) -> Usage:
    return Usage(completion.http_requests, completion.retries, completion.prompt_tokens, completion.completion_tokens)


def to_example(item: PlanItem, answer: dict, run_id: str, model: str, seed: int, usage: Usage) -> Example:
    """A validated answer as the stored example of plan item `item`."""
    query, positive, negative = KINDS[item.kind].normalise(answer)
    return Example(
        id=f"{run_id}-{item.index}",
        index=item.index,
        kind=item.kind,
        task=item.task,
        language=item.language,
        query=query,
        positive=positive,
        negative=negative,
        placeholders=item.placeholders,
        raw=answer,
        model=model,
        seed=seed,
        usage=usage,
    )


def grounded_example(item: PlanItem, answer: dict[str, str], passage: Passage, run_id: str, model: str, seed: int,
                     usage: Usage) -> Example:
    """A validated grounded answer as the stored example of plan item `item`, with its provenance."""
    query, positive = GROUNDED[item.kind].sides(answer, passage.text)
    return Example(id=f"{run_id}-{item.index}", index=item.index, kind=item.kind, task=item.task or answer["task"],
                   language=item.language, query=query, positive=positive, negative=None,
                   placeholders=item.placeholders, raw=answer, model=model, seed=seed, usage=usage,
                   passage_id=passage.id, doc_id=passage.doc_id)


def prompt_of(templates: Templates, item: PlanItem, passage: Optional[Passage]) -> str:
    """The prompt of plan item `item` (grounded in `passage` for generate --corpus)."""
    if passage is None:
        return templates.generate[item.kind].render(item.placeholders)
    return templates.corpus[item.kind].render({**item.placeholders, PASSAGE: passage.text})


def to_reject(item: PlanItem, verdict: Verdict, text: str, finish_reason: Optional[str], model: str, seed: int,
              usage: Usage) -> Reject:
    return Reject(index=item.index, kind=item.kind, reason=verdict.reason or "", detail=verdict.detail,
                  finish_reason=finish_reason, text=text, model=model, seed=seed, usage=usage)


class Generation:
    """One session of a run: asks for each planned index, turns answers into records, keeps the books."""

    def __init__(self, config: Config, backend: Backend, templates: Templates, planner: Union[Planner, GroundedPlanner],
                 folder: RunFolder, state: RunState, header: Manifest, show_progress: bool = True,
                 passages: Optional[PassageIndex] = None, meter: Optional[CostMeter] = None):
        self.config = config
        self.passages = passages
        self.client = backend.client
        self.templates = templates
        self.planner = planner
        self.folder = folder
        self.ledger = Ledger(state, header)
        self.keys = state.keys
        self.run_id = header.fingerprint[:10]
        self.failures = FailureWindow()
        self.final: Optional[Manifest] = None  # the manifest written at the end
        self.schemas = {name: answer_schema(kind.answer) for name, kind in KINDS.items()}
        self.grounded_schemas = {(name, given): answer_schema(kind.given_task_answer if given else kind.answer)
                                 for name, kind in GROUNDED.items() for given in (False, True)}
        self.progress = Progress("generate", header.n, "ex", show_progress, initial=min(self.ledger.valid, header.n),
                                 usage=self.client.usage,
                                 status=(lambda: meter.status(self.ledger.valid, header.n)) if meter else None)
        self.dispatcher = Dispatcher(header.n, header.request_cap, config.generate.concurrency,
                                     finished=state.valid | state.rejected, succeeded=self.ledger.valid,
                                     tracker=self.progress)

    def manifest(self, status: str) -> Manifest:
        return self.ledger.manifest(status, self.dispatcher.stop_reason, self.client.usage)

    async def run(self) -> str:
        """Until N valid examples, the cap, a stop or an interrupt; returns the dispatcher's outcome."""
        writer = ManifestWriter(self.folder)
        writer.write(self.manifest("running"))  # before the first request: examples never lack their fingerprint
        restore = self.dispatcher.catch_interrupts()
        ticker = asyncio.create_task(writer.write_often(lambda: self.manifest("running")))
        self.examples = self.folder.example_writer()
        self.rejects = self.folder.reject_writer()
        try:
            async with self.progress:
                await self.dispatcher.run(self._request)
        except StopRun as exc:
            self.dispatcher.stop(str(exc))
        finally:
            restore()
            ticker.cancel()
            self.examples.close()
            self.rejects.close()
            outcome = self.dispatcher.outcome
            self.final = self.manifest("stopped" if outcome == "capped" else outcome)  # capped: stopped short of N
            writer.write(self.final)
        return self.dispatcher.outcome

    async def _request(self, index: int) -> Optional[bool]:
        item = self.planner.item(index)
        model, seed = self.client.model, self.planner.seed
        passage = self.passages[item.passage] if self.passages is not None and item.passage is not None else None
        prompt = prompt_of(self.templates, item, passage)
        schema = self.schemas[item.kind] if passage is None else self.grounded_schemas[(item.kind, bool(item.task))]
        try:
            completion = await self.client.complete(
                prompt,
                max_tokens=self.config.llm.max_tokens[item.kind],
                schema=schema,
                schema_name=item.kind,
            )
        except BudgetReached as exc:  # not sent: the index stays for a later session
            self.dispatcher.stop(str(exc))
            return None
        except RequestFailed as exc:
            failed = Verdict(reason=REQUEST_FAILED, detail=str(exc))
            self._reject(to_reject(item, failed, "", None, model, seed, Usage(http_requests=exc.http_requests)))
            stop = self.failures.record(True, str(exc))
            if stop:
                self.dispatcher.stop(stop)
            return False
        self.failures.record(False)
        usage = usage_of(completion)
        if passage is None:
            verdict = validate_answer(completion, KINDS[item.kind].answer)
        else:
            grounded = GROUNDED[item.kind]
            verdict = validate_answer(completion, grounded.given_task_answer if item.task else grounded.answer)
            if verdict.reason is None:
                verdict = grounded.check(verdict.value, passage.text) or verdict
        if verdict.reason:
            self._reject(to_reject(item, verdict, completion.text, completion.finish_reason, model, seed, usage))
            return False
        if passage is None:
            example = to_example(item, verdict.value, self.run_id, model, seed, usage)
        else:
            example = grounded_example(item, verdict.value, passage, self.run_id, model, seed, usage)
        key = example_digest(example)
        if key in self.keys:  # the same example again: the user asked for N distinct ones
            repeat = Verdict(reason=DUPLICATE, detail="the same example is already in the run")
            self._reject(to_reject(item, repeat, completion.text, completion.finish_reason, model, seed, usage))
            return False
        self.keys.add(key)
        self.examples.write(example)
        self.ledger.add_example(example)
        return True

    def _reject(self, reject: Reject) -> None:
        self.rejects.write(reject)
        self.ledger.add_reject(reject)


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
               meter: Optional[CostMeter] = None) -> Manifest:
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
        cost={"price": meter.price.record(), "budget_usd": meter.budget} if meter else None,
        config=config.model_dump(mode="json", exclude={"llm": {"api_key"}}),
    )


async def generate(
    config: Config, n: int, out: Path, overwrite: bool = False, show_progress: bool = True,
    max_requests: Optional[int] = None, corpus: Optional[Path] = None, corpus_tasks: bool = False,
) -> Generation:
    """corpus: a folder of `synthgen corpus ingest`: every example is grounded in one of its
    passages (no brainstorm: the LLM writes each task from its passage, or with corpus_tasks draws
    it from the task files of [generate] tasks)."""
    passages = CorpusFolder(corpus).index() if corpus is not None else None
    try:
        return await _generate(config, n, out, overwrite, show_progress, max_requests, corpus, passages, corpus_tasks)
    finally:
        if passages is not None:
            passages.close()


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
                    corpus_tasks: bool) -> Generation:
    templates, tasks = plan_inputs(config, passages, corpus_tasks)
    with RunFolder(out).open("generate") as folder:
        if overwrite:
            folder.remove_run()
        state = folder.read_state()
        if all(tasks.values()):  # refuse a mismatched resume before anything is printed or sent
            check_same_run(state, fingerprint_parts(config, templates, tasks, passages), out)
        meter = open_meter(config, choose(config), state)
        backend = open_backend(config)
        if meter is not None:  # every request of the run, brainstorm and generation, on every endpoint
            backend.client = MeteredClient(backend.client, meter)
        try:
            say(f"synthgen {__version__}: {backend.description}")
            if passages is not None:
                say(f"grounded in {corpus}: {len(passages)} passages of {passages.documents} documents")
            if passages is None:
                needed = needed_tasks(n, config.active_kinds(), config.brainstorm.examples_per_task)
                needed = {name: needed[name] for name in tasks}  # the brainstormed kinds
                subtypes = await _brainstorm_metered(config, backend, templates, tasks, needed, not state.empty,
                                                     show_progress, meter)
            else:  # grounded: the tasks given are the set, or the LLM writes them
                needed, subtypes = {name: len(known) for name, known in tasks.items()}, {}
            spent = backend.client.usage.take_counts()  # kept apart: the manifest's counts are generation's
            parts = fingerprint_parts(config, templates, tasks, passages)
            check_same_run(state, parts, out)
            if not state.empty:
                say(f"resuming {out}: {len(state.valid)} valid and {len(state.rejected)} rejected already there")
            cap = max_requests or request_cap(n, config.generate.request_cap_factor)
            brainstormed = {**spent, "subtypes": subtypes} if spent["http_requests"] else None
            described = {"path": str(corpus), "digest": passages.digest, "passages": len(passages),
                         "documents": passages.documents} if passages is not None else None
            header = run_header(config, backend, parts, n, cap, brainstormed, task_report(tasks, needed), described,
                                meter)
            planner = (Planner(config, tasks) if passages is None
                       else GroundedPlanner(config, passages, tasks if corpus_tasks else None))
            generation = Generation(config, backend, templates, planner, folder, state, header, show_progress, passages,
                                    meter)
            outcome = await generation.run()
        finally:
            await backend.client.aclose()
    if outcome == "stopped":
        if meter is not None and meter.reached:
            raise BudgetReached(meter.reached, meter.enough(generation.ledger.valid, n))
        raise RunStopped(generation.dispatcher.stop_reason or "stopped")
    if outcome == "interrupted":
        raise Interrupted()
    return generation
