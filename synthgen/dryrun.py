"""generate --dry-run: what a run would send and what it would cost, from its plan, sending nothing.

It builds the plan generate would build (seed, config, tasks, corpus, and the run already in --out),
takes the indices a run would send next (a resumed run: only those not answered yet, and the
replacements its measured reject share predicts, within the request cap), renders their prompts
and counts their tokens (synthgen.tokens: the model's own tokenizer where synthgen knows it, else an
estimate, said so). A large plan is counted on an even sample of its prompts, scaled up kind by kind
(the kinds of every index are counted exactly). Completion tokens are each kind's max_tokens, an
upper bound, until the run in --out has answers of the kind to measure; then their mean. The
brainstorm rounds still needed are counted the same way, and a task not brainstormed yet is
counted as a typical task sentence (STAND_IN_TASK).

Nothing is written and nothing is locked: a dry run may look at a folder a run is writing.
"""

import collections
import collections.abc
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from synthgen.answering import RequestRenderer
from synthgen.backends import choose
from synthgen.brainstorm import round_prompt
from synthgen.config import Config
from synthgen.dispatch import request_cap
from synthgen.generate import check_same_run, fingerprint_parts, plan_inputs
from synthgen.kinds import KINDS
from synthgen.prices import Price, dollars, price_for
from synthgen.prompts import Templates
from synthgen.sampling import GroundedPlanner, Planner, Weighted
from synthgen.store import CorpusFolder, PassageIndex, RunFolder, RunState
from synthgen.tables import table
from synthgen.tasks import needed_tasks
from synthgen.tokens import TokenCounter, counter_for

SAMPLE = 20_000  # prompts counted one by one; a larger plan is counted on an even sample of this many
# What a brainstormed task looks like (about 20 words), for the tasks a run has yet to brainstorm.
STAND_IN_TASK = ("Given a question about a medical condition, retrieve passages from health websites that explain "
                 "its symptoms, causes and treatments.")
BRAINSTORM = "brainstorm"


@dataclass
class Line:
    """One row of the estimate: the brainstorm, or one kind's generation requests."""

    what: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    completion_from: str  # "cap" (max_tokens: an upper bound) or "measured" (the mean of earlier answers)
    completion_per_request: float


def dry_run(config: Config, n: int, out: Path, max_requests: Optional[int] = None, corpus: Optional[Path] = None,
            corpus_tasks: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """The estimate of `synthgen generate` with these settings, as one JSON-able report (overwrite:
    the run in `out` would be removed first, so none is counted)."""
    passages = CorpusFolder(corpus).index() if corpus is not None else None
    try:
        return _dry_run(config, n, out, max_requests, passages, corpus_tasks, overwrite)
    finally:
        if passages is not None:
            passages.close()


def _dry_run(config: Config, n: int, out: Path, max_requests: Optional[int], passages: Optional[PassageIndex],
             corpus_tasks: bool, overwrite: bool) -> dict[str, Any]:
    templates, tasks = plan_inputs(config, passages, corpus_tasks)
    state = RunState() if overwrite else RunFolder(out).read_state(readonly=True)
    if all(tasks.values()):  # as generate: a run with other settings in --out is refused
        check_same_run(state, fingerprint_parts(config, templates, tasks, passages), out)
    backend = choose(config)
    counter = counter_for(backend, config.llm.model, config.llm.model_path)
    caps = completion_caps(config, backend)
    lines: list[Line] = []
    subtypes: dict[str, dict[str, int]] = {}
    plan_tasks = tasks
    brainstorm_counted = 0
    if passages is None:
        brainstorm_line, plan_tasks, subtypes, brainstorm_counted = _brainstorm(config, templates, tasks, n, state,
                                                                                counter, caps)
        if brainstorm_line is not None:
            lines.append(brainstorm_line)
    planner = (Planner(config, plan_tasks) if passages is None
               else GroundedPlanner(config, passages, tasks if corpus_tasks else None))
    valid, finished = len(state.valid), state.valid | state.rejected
    remaining = max(0, n - valid)
    cap = max_requests or request_cap(n, config.generate.request_cap_factor)
    reject_share = len(state.rejected) / len(finished) if finished else 0.0
    wanted = math.ceil(remaining / (1 - reject_share)) if reject_share < 1 else cap
    indices = _next_indices(finished, max(0, min(wanted, cap - len(finished))))
    generation, counted = _generation(planner, RequestRenderer(config, templates, planner, passages), indices, state, counter, caps)
    lines += generation
    price = price_for(config.llm.model, config.cost.price_in, config.cost.price_out, local=backend == "local")
    requests = sum(line.requests for line in lines)
    return {
        "dry_run": True,
        "model": config.llm.model if backend != "local" else config.llm.model_path or "the embedded model",
        "backend": backend,
        "out": str(out),
        "n": n,
        "seed": config.generate.seed,
        "valid": valid,
        "rejected": len(state.rejected),
        "remaining": remaining,
        "reject_share": round(reject_share, 4),
        "request_cap": cap,
        "tokens": {**counter.record(), "prompts_counted": counted + brainstorm_counted, "prompts": requests},
        "brainstorm": subtypes,
        "lines": [asdict(line) for line in lines],
        "total": {"requests": requests, "prompt_tokens": sum(line.prompt_tokens for line in lines),
                  "completion_tokens": sum(line.completion_tokens for line in lines)},
        "cost": _cost(price, lines, state, config.cost.budget, remaining) if price is not None else None,
    }


def completion_caps(config: Config, backend: str) -> dict[str, int]:
    """Each kind's max_tokens (and the brainstorm's); the embedded model's [local.max_tokens] are tighter."""
    caps = dict(config.llm.max_tokens)
    if backend == "local":
        for name, cap in config.local.max_tokens.items():
            caps[name] = min(caps[name], cap)
    return caps


def _next_indices(finished: set[int], count: int) -> list[int]:
    """The first `count` plan indices not finished: what a run sends next, in order."""
    indices: list[int] = []
    index = 0
    while len(indices) < count:
        if index not in finished:
            indices.append(index)
        index += 1
    return indices


def _sample(items: Sequence[int]) -> Sequence[int]:
    """All of them, or an even sample of about SAMPLE."""
    return items[::math.ceil(len(items) / SAMPLE)] if len(items) > SAMPLE else items


def _brainstorm(config: Config, templates: Templates, tasks: dict[str, list[str]], n: int, state: RunState,
                counter: TokenCounter, caps: dict[str, int]
                ) -> tuple[Optional[Line], dict[str, list[str]], dict[str, dict[str, int]], int]:
    """The brainstorm rounds the run still needs (at least: as many as if every task came back new),
    the task sets the plan is counted with (stand-ins for those still to brainstorm), per subtype
    the tasks known, needed and the rounds, and the prompts counted. A resumed run keeps the tasks
    it was planned with."""
    settings = config.brainstorm
    needed = needed_tasks(n, config.active_kinds(), settings.examples_per_task)
    topics = Weighted(settings.topics)
    plan_tasks: dict[str, list[str]] = {}
    subtypes: dict[str, dict[str, int]] = {}
    rounds_in_all, prompt_tokens, counted = 0, 0.0, 0
    for name, known in tasks.items():
        short = 0 if (known and not state.empty) else max(0, needed[name] - len(known))
        plan_tasks[name] = known + [STAND_IN_TASK] * short
        rounds = math.ceil(short / settings.num_tasks)
        subtypes[name] = {"tasks_known": len(known), "tasks_needed": needed[name], "rounds": rounds}
        if rounds:
            numbers = _sample(range(rounds))
            sampled = sum(counter.prompt(round_prompt(templates.brainstorm[name], settings, topics,
                                                      config.generate.seed, name, len(known), number,
                                                      _FoundBefore(known, number, settings.num_tasks,
                                                                   config.generate.concurrency))[0])
                          for number in numbers)
            prompt_tokens += sampled * rounds / len(numbers)
            rounds_in_all += rounds
            counted += len(numbers)
    if not rounds_in_all:
        return None, plan_tasks, subtypes, 0
    record = (state.manifest.brainstorm if state.manifest else None) or {}
    if record.get("completion_tokens") and record.get("http_requests"):
        per_round, source = record["completion_tokens"] / record["http_requests"], "measured"
    else:
        per_round, source = float(caps[BRAINSTORM]), "cap"
    line = Line(BRAINSTORM, rounds_in_all, round(prompt_tokens), round(per_round * rounds_in_all), source,
                round(per_round, 1))
    return line, plan_tasks, subtypes, counted


class _FoundBefore(collections.abc.Sequence):
    """The tasks a brainstorm round is shown some of: those known, and a stand-in for each task the
    rounds answered before it found (the first `concurrency` rounds go out before any answer)."""

    def __init__(self, known: list[str], number: int, per_round: int, concurrency: int):
        self.known = known
        self.length = len(known) + max(0, number - concurrency + 1) * per_round

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        if not 0 <= index < self.length:
            raise IndexError(index)
        return self.known[index] if index < len(self.known) else STAND_IN_TASK


def _generation(planner: Union[Planner, GroundedPlanner], renderer: RequestRenderer,
                indices: list[int], state: RunState, counter: TokenCounter, caps: dict[str, int]
                ) -> tuple[list[Line], int]:
    """One line per kind of the indices to send, and how many prompts were counted one by one."""
    kinds = collections.Counter(planner.kind_of(index) for index in indices)
    tokens: collections.Counter = collections.Counter()
    counted: collections.Counter = collections.Counter()
    sample = _sample(indices)
    for index in sample:
        request = renderer.render(index)
        tokens[request.item.kind] += counter.prompt(request.prompt)
        counted[request.item.kind] += 1
    mean = sum(tokens.values()) / max(1, sum(counted.values()))  # for a kind the sample missed
    lines = []
    for kind in KINDS:  # in the order of the kinds, not of the draw
        requests = kinds.get(kind, 0)
        if not requests:
            continue
        per_prompt = tokens[kind] / counted[kind] if counted[kind] else mean
        answers = state.answers.get(kind, 0)
        if answers:
            per_answer, source = state.answer_tokens[kind] / answers, "measured"
        else:
            per_answer, source = float(caps[kind]), "cap"
        lines.append(Line(kind, requests, round(per_prompt * requests), round(per_answer * requests), source,
                          round(per_answer, 1)))
    return lines, len(sample)


def _cost(price: Price, lines: list[Line], state: RunState, budget: Optional[float], remaining: int) -> dict[str, Any]:
    usd = price.of(sum(line.prompt_tokens for line in lines), sum(line.completion_tokens for line in lines))
    brainstormed = (state.manifest.brainstorm if state.manifest else None) or {}
    spent = (price.of(state.usage.prompt_tokens, state.usage.completion_tokens)
             + price.of(brainstormed.get("prompt_tokens", 0), brainstormed.get("completion_tokens", 0)))
    cost: dict[str, Any] = {
        "price": price.record(),
        "usd": round(usd, 4),
        "batch_usd": round(usd * price.batch_share, 4),
        "upper_bound": any(line.completion_from == "cap" for line in lines),
        "spent_usd": round(spent, 4),
        "budget_usd": budget,
    }
    if budget is not None:
        room = max(0.0, budget - spent)
        cost["budget_covers"] = usd <= room
        # At this estimate's cost per example, how many of those left the budget pays for.
        cost["budget_examples"] = remaining if usd <= room else int(remaining * room / usd)
    return cost


def _number(value: float) -> str:
    return f"{value:,.0f}"


def render(report: dict[str, Any]) -> str:
    """The estimate for a person."""
    lines = [f"dry run: nothing sent, nothing written ({report['model']}, seed {report['seed']}, --out {report['out']})"]
    if report["valid"] or report["rejected"]:
        lines.append(f"resuming: {_number(report['valid'])} valid and {_number(report['rejected'])} rejected "
                     f"({report['reject_share']:.1%}) already there; {_number(report['remaining'])} of "
                     f"{_number(report['n'])} examples left")
    for name, subtype in report["brainstorm"].items():
        if subtype["rounds"]:
            lines.append(f"{name}: {_number(subtype['tasks_known'])} of {_number(subtype['tasks_needed'])} tasks "
                         f"there, brainstormed in at least {_number(subtype['rounds'])} rounds")
    tokens = report["tokens"]
    sampled = (f"; {_number(tokens['prompts_counted'])} of {_number(tokens['prompts'])} prompts counted, the rest "
               "scaled kind by kind" if tokens["prompts_counted"] < tokens["prompts"] else "")
    how = f"counted with {tokens['tokenizer']}" if tokens["exact"] else (
        f"estimated with {tokens['tokenizer']}" + (f" ({tokens['note']})" if tokens["note"] else ""))
    lines.append(f"prompt tokens {how}{sampled}")
    rows = [[line["what"], _number(line["requests"]), _number(line["prompt_tokens"]), _number(line["completion_tokens"]),
             f"{line['completion_from']} {line['completion_per_request']:g}"] for line in report["lines"]]
    total = report["total"]
    rows.append(["total", _number(total["requests"]), _number(total["prompt_tokens"]),
                 _number(total["completion_tokens"]), ""])
    lines.append(table("", ["", "requests", "prompt tokens", "completion tokens", "per request"], rows).lstrip("\n"))
    if any(line["completion_from"] == "cap" for line in report["lines"]):
        lines.append("completion tokens at a kind's cap (max_tokens) are an upper bound; a run in --out measures them")
    cost = report["cost"]
    if cost is None:
        lines.append(f"cost: no price known for {report['model']} (give --price-in and --price-out)")
        return "\n".join(lines)
    price = Price.from_record(cost["price"])
    bound = "at most " if cost["upper_bound"] else ""
    lines.append(f"cost: {bound}{dollars(cost['usd'])}, or {bound}{dollars(cost['batch_usd'])} through a batch API "
                 f"({price.batch_share:.0%} of the price), at {price.describe()}")
    if cost["spent_usd"]:
        lines.append(f"spent so far: {dollars(cost['spent_usd'])}")
    if cost["budget_usd"] is not None:
        lines.append(f"budget {dollars(cost['budget_usd'])}: " + (
            "covers the estimate" if cost["budget_covers"]
            else f"enough for about {_number(cost['budget_examples'])} of the {_number(report['remaining'])} "
                 "examples left, at this estimate"))
    return "\n".join(lines)
