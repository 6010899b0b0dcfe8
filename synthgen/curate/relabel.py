"""Relabelling (FRet step 2, Gecko; RLHN): the LLM judges an example's retrieved documents, and a
document it grades above the generated positive takes the positive's place, or drops the example.

Each example comes as a Candidate: its query and task, and the top documents retrieval found for it
among those of its kind, its own positive always among them. The LLM sees them numbered in an order
drawn from the example id (so the positive's place gives nothing away) and grades each from 0 to 3.
The best document is the top-graded one: the positive when it shares the top grade (it is replaced
only by a strictly better one), else the first of them in retrieval order. Grades alone, with no
"best" of the LLM's own: a small model names a best that contradicts its grades (the embedded model
did, most of the time), and the grades say all the verdict needs. The requests run on the dispatcher that generate and brainstorm use (concurrency,
request cap, failure breaker, Ctrl+C, progress bar), through the client the config opens.

Every judgement is appended to the output folder's ledger as soon as it comes, keyed by example id
and a digest of what was judged: a rerun asks only for the candidates that are not there, or that
changed. An answer that is no valid judgement is asked again (the documents reordered) up to
[curate.relabel] attempts; then the example is left unjudged: kept as it is, counted, and asked
again by the next run.
"""

import asyncio
import collections
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional, Sequence, TypeVar

import msgspec
from pydantic import Field

from synthgen.answers import REQUEST_FAILED, SCHEMA, Verdict, validate_answer
from synthgen.backends import Backend, open_backend
from synthgen.config import Config, digest
from synthgen.console import say
from synthgen.dispatch import Dispatcher, FailureWindow, request_cap
from synthgen.errors import Interrupted, RunStopped
from synthgen.llm import Completion, LLMClient, RequestFailed, StopRun
from synthgen.progress import Progress
from synthgen.prompts import Template, load_template
from synthgen.resources import resource_dir
from synthgen.schemas import Answer
from synthgen.store import Example, Judgement, Usage, judgement_writer, read_judgements

KEPT, RELABELLED, DROPPED, UNJUDGED = "kept", "relabelled", "dropped", "unjudged"
RELABELLED_OUT = "relabelled-out"  # the reason a dropped example is written with (action "drop")
MAX_GRADE = 3
SCHEMA_NAME = "relabel"
PLACEHOLDERS = ("task", "query", "count", "documents")
# Reasons an example is left unjudged without an answer of its own.
ALONE = "no other document"
CAPPED = "request cap reached"
COUNTERS = ("http_requests", "retries", "prompt_tokens", "completion_tokens")

T = TypeVar("T")


@dataclass
class Candidate:
    """An example as relabelling sees it: its number among those the caller holds, its texts, and the
    documents retrieved for its query (best first, distinct, its own positive among them)."""

    row: int
    id: str
    task: str
    query: str  # as written, not through the query template
    positive: str
    documents: list[str]


def candidate_documents(positive: T, ranked: Sequence[T], top_m: int) -> list[T]:
    """The top_m distinct documents of `ranked` (best first) with the positive among them: in its own
    place if it ranks there, else instead of the last one. (Documents as texts or as their digests.)"""
    documents = list(dict.fromkeys(ranked))[:top_m]
    if positive not in documents:
        documents = documents[:top_m - 1] + [positive]
    return documents


def candidate_digest(candidate: Candidate) -> str:
    """What a judgement depends on: the task, the query and the documents in the caller's order."""
    return digest([candidate.task, candidate.query, candidate.documents])


def shown_order(example_id: str, count: int, attempt: int = 0) -> list[int]:
    """The documents' order in the prompt (indices into the candidate's list): drawn from the example
    id, so it is the same on every run; another attempt draws another."""
    order = list(range(count))
    random.Random(f"synthgen:relabel:{example_id}:{attempt}").shuffle(order)
    return order


class RelabelAnswer(Answer):
    """The LLM's answer: a grade per document, in the order shown. How many documents there were is
    checked by grades_of(), which knows."""

    grades: list[Annotated[int, Field(ge=0, le=MAX_GRADE)]]


def relabel_schema(count: int) -> dict[str, Any]:
    """The JSON schema sent as response_format: exactly `count` grades of 0 to 3. (The embedded
    model's grammar holds it to this; an endpoint may take only the shape.)"""
    return {
        "type": "object",
        "properties": {
            "grades": {"type": "array", "items": {"type": "integer", "enum": list(range(MAX_GRADE + 1))},
                       "minItems": count, "maxItems": count},
        },
        "required": ["grades"],
        "additionalProperties": False,
    }


def grades_of(completion: Completion, count: int) -> Verdict:
    """The answer's grades in the order shown; or why it is no judgement."""
    verdict = validate_answer(completion, RelabelAnswer)
    if verdict.reason:
        return verdict
    grades = verdict.value["grades"]
    if len(grades) != count:
        return Verdict(reason=SCHEMA, detail=f"grades: {len(grades)} grades for {count} documents")
    return Verdict(value=grades)


def best_of(grades: list[int], positive_index: int) -> int:
    """The top-graded document: the positive if it is one of them, else the first in retrieval order."""
    top = max(grades)
    return positive_index if grades[positive_index] == top else grades.index(top)


def verdict_for(grades: list[int], best: int, positive_index: int, action: str) -> str:
    """Relabelled (or dropped) only when the best document is graded strictly above the positive."""
    if grades[best] > grades[positive_index]:
        return RELABELLED if action == "relabel" else DROPPED
    return KEPT


def relabel_template(config: Config) -> Template:
    """prompts/curate/relabel.txt of the config's prompts folder, or the shipped one when that folder
    has none (a folder made before relabelling existed)."""
    folder = Path(config.prompts) if config.prompts else resource_dir("prompts")
    if not (folder / "curate" / "relabel.txt").exists():
        folder = resource_dir("prompts")
    return load_template(folder, "curate", "relabel", PLACEHOLDERS)


def render_prompt(template: Template, candidate: Candidate, shown: list[int], max_chars: int) -> str:
    documents = "\n\n".join(f"[{number}] {_cut(candidate.documents[index], max_chars)}"
                            for number, index in enumerate(shown, 1))
    return template.render({"task": candidate.task, "query": candidate.query, "count": str(len(shown)),
                            "documents": documents})


def _cut(text: str, max_chars: int) -> str:
    return text if not max_chars or len(text) <= max_chars else text[:max_chars].rstrip() + " …"


def _usage(completion: Completion) -> Usage:
    return Usage(completion.http_requests, completion.retries, completion.prompt_tokens, completion.completion_tokens)


@dataclass
class _Pending:
    """A candidate still to be judged, and what asking for it has taken so far."""

    candidate: Candidate
    digest: str
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)


@dataclass
class RelabelResult:
    """One Judgement per candidate, by row, and the figures for the report."""

    judgements: dict[int, Judgement] = field(default_factory=dict)
    reused: int = 0  # judgements read from the ledger
    asked: int = 0  # answers asked for in this run (retries of a bad answer included)
    rejected: collections.Counter = field(default_factory=collections.Counter)  # bad answers by reason
    model: str = ""
    backend: Optional[str] = None  # the backend's one-line description, when relabel_candidates opened it
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))  # what this run spent
    stop_reason: Optional[str] = None

    def counts(self) -> dict[str, int]:
        verdicts = collections.Counter(j.verdict for j in self.judgements.values())
        return {name: verdicts[name] for name in (KEPT, RELABELLED, DROPPED, UNJUDGED)}

    def summary(self) -> dict[str, Any]:
        """What curate's report says of relabelling."""
        unjudged = collections.Counter(j.reason or "" for j in self.judgements.values() if j.verdict == UNJUDGED)
        return {
            "candidates": len(self.judgements),
            **self.counts(),
            "unjudged_by_reason": dict(sorted(unjudged.items())),
            "judged_before": self.reused,
            "answers_asked": self.asked,
            "answers_rejected": dict(sorted(self.rejected.items())),
            "model": self.model,
            "backend": self.backend,
            **self.usage,
        }


class Relabelling:
    """One relabelling session: what the ledger holds already, and the requests for the rest."""

    def __init__(self, candidates: list[Candidate], config: Config, ledger_path: Path):
        self.config = config
        self.settings = config.curate.relabel
        self.ledger_path = ledger_path
        self.template = relabel_template(config)
        self.result = RelabelResult()
        self.todo: collections.deque[_Pending] = collections.deque()
        known = read_judgements(ledger_path)
        for candidate in candidates:
            if candidate.positive not in candidate.documents:
                raise ValueError(f"candidate {candidate.id}: its positive is not among its documents")
            key = candidate_digest(candidate)
            before = known.get((candidate.id, key))
            if before is not None and _fits(before, candidate):
                # The verdict follows today's action; the grades are what was paid for.
                verdict = verdict_for(before.grades, before.best, before.positive_index, self.settings.action)
                self.result.judgements[candidate.row] = msgspec.structs.replace(before, verdict=verdict)
                self.result.reused += 1
            elif len(candidate.documents) < 2:
                self._unjudged(_Pending(candidate, key), ALONE, "nothing to compare the positive with")
            else:
                self.todo.append(_Pending(candidate, key))

    async def run(self, client: LLMClient, show_progress: bool = True) -> RelabelResult:
        """Ask for every candidate not judged yet; raises RunStopped or Interrupted (after keeping
        every judgement in the ledger) when the endpoint fails or the user interrupts."""
        self.client = client
        self.result.model = client.model
        if not self.todo:
            return self.result
        wanted = len(self.todo)
        self.failures = FailureWindow()
        self.progress = Progress("relabel", wanted, "ex", show_progress, usage=client.usage)
        self.dispatcher = Dispatcher(wanted, request_cap(wanted, self.config.generate.request_cap_factor),
                                     self.config.generate.concurrency, tracker=self.progress)
        spent_before = {name: getattr(client.usage, name) for name in COUNTERS}
        restore = self.dispatcher.catch_interrupts()
        self.writer = judgement_writer(self.ledger_path)
        try:
            async with self.progress:
                await self.dispatcher.run(self._ask)
        except StopRun as exc:
            self.dispatcher.stop(str(exc))
        finally:
            restore()
            self.writer.close()
            self.result.usage = {name: getattr(client.usage, name) - spent_before[name] for name in COUNTERS}
        reason = CAPPED if self.dispatcher.outcome == "capped" else self.dispatcher.stop_reason or "stopped"
        while self.todo:  # never sent, or waiting for another attempt
            self._unjudged(self.todo.popleft(), reason, "")
        self.result.stop_reason = self.dispatcher.stop_reason
        judged = sum(1 for j in self.result.judgements.values() if j.verdict != UNJUDGED)
        kept = f"the {judged} judgements so far are kept in {self.ledger_path}; a rerun goes on from them"
        if self.dispatcher.outcome == "stopped":
            raise RunStopped(f"relabelling stopped: {self.dispatcher.stop_reason} ({kept})")
        if self.dispatcher.outcome == "interrupted":
            raise Interrupted()
        return self.result

    async def _ask(self, index: int) -> bool:
        """One answer for the next candidate waiting; True when that candidate is done with."""
        pending = self.todo.popleft()  # there is one: the dispatcher sends no more than are waiting
        candidate, count = pending.candidate, len(pending.candidate.documents)
        shown = shown_order(candidate.id, count, pending.attempts)
        pending.attempts += 1
        self.result.asked += 1
        try:
            completion = await self.client.complete(
                render_prompt(self.template, candidate, shown, self.settings.max_document_chars),
                max_tokens=self.settings.max_tokens,
                schema=relabel_schema(count),
                schema_name=SCHEMA_NAME,
            )
        except RequestFailed as exc:
            pending.usage.add(Usage(http_requests=exc.http_requests))
            stop = self.failures.record(True, str(exc))
            if stop:
                self.dispatcher.stop(stop)
            return self._again_or_unjudged(pending, Verdict(reason=REQUEST_FAILED, detail=str(exc)))
        self.failures.record(False)
        pending.usage.add(_usage(completion))
        verdict = grades_of(completion, count)
        if verdict.reason:
            self.result.rejected[verdict.reason] += 1
            return self._again_or_unjudged(pending, verdict)
        grades = [0] * count
        for place, document in enumerate(shown):
            grades[document] = verdict.value[place]
        positive_index = candidate.documents.index(candidate.positive)
        best = best_of(grades, positive_index)
        judgement = Judgement(
            id=candidate.id, digest=pending.digest, grades=grades, best=best, positive_index=positive_index,
            verdict=verdict_for(grades, best, positive_index, self.settings.action), shown=shown,
            model=self.client.model, usage=pending.usage,
        )
        self.writer.write(judgement)
        self.result.judgements[candidate.row] = judgement
        return True

    def _again_or_unjudged(self, pending: _Pending, verdict: Verdict) -> bool:
        if pending.attempts < self.settings.attempts and self.dispatcher.stop_reason is None:
            self.todo.append(pending)  # asked again after those waiting, the documents reordered
            return False
        self._unjudged(pending, verdict.reason or "", verdict.detail)
        return True

    def _unjudged(self, pending: _Pending, reason: str, detail: str) -> None:
        candidate = pending.candidate
        self.result.judgements[candidate.row] = Judgement(
            id=candidate.id, digest=pending.digest, positive_index=candidate.documents.index(candidate.positive),
            verdict=UNJUDGED, reason=reason, detail=detail[:300], model=self.result.model,
            usage=pending.usage if pending.attempts else None,
        )


def _fits(judgement: Judgement, candidate: Candidate) -> bool:
    """Whether a ledger's judgement is one of these documents (a line edited by hand may not be)."""
    count = len(candidate.documents)
    return (len(judgement.grades) == count and 0 <= judgement.best < count
            and judgement.positive_index == candidate.documents.index(candidate.positive))


async def relabel(candidates: list[Candidate], config: Config, client: LLMClient, ledger_path: Path,
                  show_progress: bool = True) -> RelabelResult:
    """Judge every candidate not in the ledger at `ledger_path` with `client`; one Judgement per
    candidate comes back, by row (those of the ledger included, their verdict by today's action)."""
    return await Relabelling(candidates, config, ledger_path).run(client, show_progress)


def open_judge(config: Config) -> Backend:
    """The backend generate would open ([llm]: an endpoint, or the embedded model), sampling at
    [curate.relabel] temperature."""
    llm = config.llm.model_copy(update={"temperature": config.curate.relabel.temperature})
    return open_backend(config.model_copy(update={"llm": llm}))


def relabel_candidates(candidates: list[Candidate], config: Config, ledger_path: Path,
                       show_progress: bool = True) -> RelabelResult:
    """relabel() for a caller that is not async: opens the backend (only when some candidate is not in
    the ledger yet, so a rerun needs no endpoint and loads no model), runs, closes it."""
    session = Relabelling(candidates, config, ledger_path)
    if not session.todo:
        return session.result

    async def run() -> RelabelResult:
        backend = open_judge(config)
        session.result.backend = backend.description
        try:
            say(f"relabel: {len(session.todo)} examples to judge ({session.result.reused} judged before), "
                f"{backend.description}")
            return await session.run(backend.client, show_progress)
        finally:
            await backend.client.aclose()

    return asyncio.run(run())


# -- what the caller makes of a judgement --------------------------------------------------------


def evidence(judgement: Judgement, candidate: Candidate) -> dict[str, Any]:
    """The judgement as curation keeps it: in the example's curation, or as a dropped one's evidence."""
    found: dict[str, Any] = {"verdict": judgement.verdict, "grades": judgement.grades,
                             "positive_index": judgement.positive_index, "model": judgement.model}
    if judgement.verdict == UNJUDGED:
        return {**found, "reason": judgement.reason}
    found["best"] = judgement.best
    if judgement.best != judgement.positive_index:
        found["best_document"] = candidate.documents[judgement.best]
    return found


def judged_example(example: Example, candidate: Candidate, judgement: Judgement) -> Example:
    """The example with its judgement in its curation; relabelled, the best document is its positive,
    the old positive its negative, and its old negative the first of its other negatives."""
    curation = {**(example.curation or {}), "relabel": evidence(judgement, candidate)}
    if judgement.verdict != RELABELLED:
        return msgspec.structs.replace(example, curation=curation)
    new = candidate.documents[judgement.best]
    others = [text for text in example.all_negatives() if text not in (new, example.positive)]
    return msgspec.structs.replace(example, positive=new, negative=example.positive, negatives=others or None,
                                   curation=curation)
