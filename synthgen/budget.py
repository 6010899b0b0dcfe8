"""A run's spend at its price, and the budget it must not pass (generate --budget).

The meter prices each answer's reported usage as it comes back, on top of what the run's earlier
sessions spent (counted from their records). With a budget, a request is admitted only when it
fits: what was spent, plus every request in flight at its cap (its prompt's tokens and its
max_tokens of completion), plus this one at its cap, stays within the budget. A request that does
not fit waits for those in flight to settle (they usually cost less than their cap); once none is
in flight and it still does not fit, the budget is reached: BudgetReached, and the run stops sending.
So the run never spends more than its budget, as far as the server reports what it spent.

MeteredClient puts the meter in front of any client (one endpoint, several, the embedded model), so
the brainstorm and the generation, on every endpoint, draw on the same budget.
"""

import asyncio
from typing import Any, Optional

from synthgen.config import Config
from synthgen.errors import BadInput, BudgetReached
from synthgen.llm import Completion, LLMClient
from synthgen.prices import Price, dollars, price_for
from synthgen.store import RunState
from synthgen.tokens import ESTIMATE, TokenCounter, counter_for

# A prompt counted by an estimate is reserved with this margin: the estimate may fall short.
ESTIMATE_MARGIN = 1.5


class CostMeter:
    def __init__(self, price: Price, counter: TokenCounter, budget: Optional[float] = None,
                 spent: Optional[dict[str, float]] = None):
        """spent: what earlier sessions spent, by stage ("brainstorm", "generate")."""
        self.price = price
        self.counter = counter
        self.budget = budget
        self.spent_by_stage: dict[str, float] = dict(spent or {})
        self.stage = "generate"  # the stage this session's answers are counted under (brainstorm.py sets its own)
        self.reserved = 0.0  # the requests in flight, at their caps
        self.in_flight = 0
        self.reached: Optional[str] = None  # why the budget stopped the run
        self.refused = 0.0  # the cap of the request it refused
        self._settled = asyncio.Event()

    @property
    def spent(self) -> float:
        return sum(self.spent_by_stage.values())

    def cap(self, prompt: str, max_tokens: int) -> float:
        """The most one request can cost: its prompt, and max_tokens of completion."""
        tokens = self.counter.prompt(prompt)
        if not self.counter.exact:
            tokens = int(tokens * ESTIMATE_MARGIN) + 1
        return self.price.of(tokens, max_tokens)

    async def admit(self, cost: float) -> None:
        """Reserve `cost` for a request, waiting for those in flight if it does not fit yet; raises
        BudgetReached when it cannot fit."""
        while self.budget is not None and self.spent + self.reserved + cost > self.budget:
            if self.reached is None and not self.in_flight:
                self.refused = cost
                self.reached = (f"the budget of {dollars(self.budget)} is reached: {dollars(self.spent)} spent, and "
                                f"the next request may cost up to {dollars(cost)}")
            if self.reached is not None:
                raise BudgetReached(self.reached)
            await self._settled.wait()
        self.reserved += cost
        self.in_flight += 1

    def settle(self, cost: float, completion: Optional[Completion]) -> None:
        """A request admitted at `cost` ended: its answer's reported usage is spent (all of `cost`
        when it reported none), nothing when it failed."""
        self.reserved = max(0.0, self.reserved - cost)
        self.in_flight -= 1
        if completion is not None:
            reported = completion.prompt_tokens or completion.completion_tokens
            used = self.price.of(completion.prompt_tokens, completion.completion_tokens) if reported else cost
            self.spent_by_stage[self.stage] = self.spent_by_stage.get(self.stage, 0.0) + used
        self._settled.set()  # a pulse: every waiter wakes, then it re-arms
        self._settled.clear()

    def projected(self, valid: int, n: int) -> Optional[float]:
        """The whole run's cost if the examples still to come cost what the ones so far did."""
        if not valid:
            return None
        generation = self.spent_by_stage.get("generate", 0.0)
        return self.spent - generation + generation * max(n, valid) / valid

    def enough(self, valid: int, n: int) -> float:
        """A budget that lets the run finish, as far as can be told: its projected cost, and room for
        the last request at its cap (twice the budget when nothing can be told yet)."""
        projected = self.projected(valid, n)
        if projected is None:
            return 2 * (self.budget or self.refused)
        return projected + self.refused

    def status(self, valid: int, n: int) -> str:
        """The progress bar's cost fields."""
        text = f"spent=${self.spent:,.2f}"
        if self.budget is not None:
            text += f"/${self.budget:,.2f}"
        projected = self.projected(valid, n)
        return text + (f" projected=${projected:,.2f}" if projected is not None else "")


class MeteredClient:
    """An LLMClient whose requests are admitted, and whose answers are priced, by a CostMeter."""

    def __init__(self, client: LLMClient, meter: CostMeter):
        self.client = client
        self.meter = meter
        self.model = client.model
        self.usage = client.usage

    async def complete(
        self, prompt: str, *, max_tokens: int, schema: Optional[dict[str, Any]], schema_name: str
    ) -> Completion:
        cost = self.meter.cap(prompt, max_tokens)
        await self.meter.admit(cost)
        completion = None
        try:
            completion = await self.client.complete(prompt, max_tokens=max_tokens, schema=schema,
                                                    schema_name=schema_name)
        finally:
            self.meter.settle(cost, completion)
        return completion

    async def aclose(self) -> None:
        await self.client.aclose()


def open_meter(config: Config, backend: str, state: RunState) -> Optional[CostMeter]:
    """The meter of a run when its price is known (None otherwise), starting from what the run's
    records say its earlier sessions spent; backend: "openai" or "local" (backends.choose)."""
    model, budget = config.llm.model, config.cost.budget
    price = price_for(model, config.cost.price_in, config.cost.price_out, local=backend == "local")
    if price is None:
        if budget is not None:
            whose = "the embedded model" if backend == "local" else model
            raise BadInput(f"--budget needs a price, and synthgen's table has none for {whose}: "
                           "give --price-in and --price-out (US dollars per million tokens)")
        return None
    # Only a budget needs each prompt counted (a request's cap); loading a tokenizer is not free.
    counter = counter_for(backend, model, config.llm.model_path) if budget is not None else ESTIMATE
    brainstorm = (state.manifest.brainstorm if state.manifest else None) or {}
    spent = {"brainstorm": price.of(brainstorm.get("prompt_tokens", 0), brainstorm.get("completion_tokens", 0)),
             "generate": price.of_run(state.usage.prompt_tokens, state.usage.completion_tokens, state.via.get("batch"))}
    return CostMeter(price, counter, budget, spent)
