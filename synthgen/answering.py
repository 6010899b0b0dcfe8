"""What a run does with one plan item, whatever carries its request: the request it renders, and the
record its answer becomes.

The live path (generate.py) sends each request as it comes; the batch paths (batch_api.py,
results_files.py) write many to a file and read their answers back later. Both render requests and
record answers here, so an answer is validated, deduplicated, written and counted the same way
whichever way it came.
"""

from dataclasses import dataclass
from typing import Any, Optional, Union

from synthgen.answers import DUPLICATE, REQUEST_FAILED, Verdict, validate_answer
from synthgen.config import Config
from synthgen.grounded import GROUNDED, PASSAGE
from synthgen.kinds import KINDS
from synthgen.ledger import Ledger
from synthgen.llm import Completion
from synthgen.prompts import Templates
from synthgen.sampling import GroundedPlanner, PlanItem, Planner
from synthgen.schemas import answer_schema
from synthgen.store import Example, Passage, PassageIndex, Reject, RunFolder, Usage, example_digest


def usage_of(completion: Completion, via: Optional[str] = None) -> Usage:
    return Usage(completion.http_requests, completion.retries, completion.prompt_tokens, completion.completion_tokens,
                 via)


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


def to_reject(item: PlanItem, verdict: Verdict, text: str, finish_reason: Optional[str], model: str, seed: int,
              usage: Usage) -> Reject:
    return Reject(index=item.index, kind=item.kind, reason=verdict.reason or "", detail=verdict.detail,
                  finish_reason=finish_reason, text=text, model=model, seed=seed, usage=usage)


@dataclass(frozen=True)
class PlannedRequest:
    """A plan item's request: its prompt, the schema its answer must follow, and its cap."""

    item: PlanItem
    prompt: str
    schema: dict[str, Any]
    max_tokens: int
    passage: Optional[Passage] = None  # generate --corpus: the passage the answer is checked against


class RequestRenderer:
    """Plan items as requests: the kind's (or the grounded kind's) template, schema and cap."""

    def __init__(self, config: Config, templates: Templates, planner: Union[Planner, GroundedPlanner],
                 passages: Optional[PassageIndex] = None):
        self.templates = templates
        self.planner = planner
        self.passages = passages
        self.max_tokens = config.llm.max_tokens
        self.schemas = {name: answer_schema(kind.answer) for name, kind in KINDS.items()}
        self.grounded_schemas = {(name, given): answer_schema(kind.given_task_answer if given else kind.answer)
                                 for name, kind in GROUNDED.items() for given in (False, True)}

    def render(self, index: int) -> PlannedRequest:
        item = self.planner.item(index)
        passage = self.passages[item.passage] if self.passages is not None and item.passage is not None else None
        if passage is None:
            prompt, schema = self.templates.generate[item.kind].render(item.placeholders), self.schemas[item.kind]
        else:
            prompt = self.templates.corpus[item.kind].render({**item.placeholders, PASSAGE: passage.text})
            schema = self.grounded_schemas[(item.kind, bool(item.task))]
        return PlannedRequest(item, prompt, schema, self.max_tokens[item.kind], passage)


class Recorder:
    """Turns answers into the run's records: validated, checked against the examples already in the
    run, written (example or reject, one line each, flushed) and counted in the ledger."""

    def __init__(self, ledger: Ledger, keys: set[bytes], model: str, seed: int):
        self.ledger = ledger
        self.keys = keys  # the dedup digests of the run's examples
        self.run_id = ledger.header.fingerprint[:10]
        self.model = model
        self.seed = seed

    def open(self, folder: RunFolder) -> "Recorder":
        self.examples = folder.example_writer()
        self.rejects = folder.reject_writer()
        return self

    def close(self) -> None:
        self.examples.close()
        self.rejects.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def answer(self, request: PlannedRequest, completion: Completion, usage: Usage) -> bool:
        """Record an answer; True when it became an example."""
        item, passage = request.item, request.passage
        if passage is None:
            verdict = validate_answer(completion, KINDS[item.kind].answer)
        else:
            grounded = GROUNDED[item.kind]
            verdict = validate_answer(completion, grounded.given_task_answer if item.task else grounded.answer)
            if verdict.reason is None:
                verdict = grounded.check(verdict.value, passage.text) or verdict
        if verdict.reason:
            self._reject(to_reject(item, verdict, completion.text, completion.finish_reason, self.model, self.seed,
                                   usage))
            return False
        if passage is None:
            example = to_example(item, verdict.value, self.run_id, self.model, self.seed, usage)
        else:
            example = grounded_example(item, verdict.value, passage, self.run_id, self.model, self.seed, usage)
        key = example_digest(example)
        if key in self.keys:  # the same example again: the user asked for N distinct ones
            repeat = Verdict(reason=DUPLICATE, detail="the same example is already in the run")
            self._reject(to_reject(item, repeat, completion.text, completion.finish_reason, self.model, self.seed,
                                   usage))
            return False
        self.keys.add(key)
        self.examples.write(example)
        self.ledger.add_example(example)
        return True

    def failure(self, item: PlanItem, detail: str, usage: Usage) -> None:
        """Record a request that gave no answer (it used up its attempts, or the provider failed it)."""
        self._reject(to_reject(item, Verdict(reason=REQUEST_FAILED, detail=detail), "", None, self.model, self.seed,
                               usage))

    def _reject(self, reject: Reject) -> None:
        self.rejects.write(reject)
        self.ledger.add_reject(reject)
