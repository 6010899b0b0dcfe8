"""Several endpoints as one client: two vLLM servers on two GPUs, or a pool behind no load balancer.

Each endpoint keeps its own client (its retries, rate limits, cool-downs and structured-output
mode) and its own concurrency. A request goes to the endpoint with the fewest requests in flight
for its concurrency (least connections, weighted), so a fast endpoint, whose requests come back
sooner, gets more of them.

An endpoint whose requests use up their attempts `bench_after` times in a row is benched for
`bench_seconds`: no request goes to it meanwhile, and a request that failed on it is asked of
another endpoint before it counts as failed (a failure on an endpoint not benched counts at once:
it may be the request's fault, not the endpoint's). After the cool-down it is tried again; one
more failure benches it again. When every endpoint is benched, requests go to them all as if none
were, and fail as they would with one endpoint: the caller's failure window decides.
"""

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from synthgen.llm.base import Completion, EndpointCounts, LLMClient, RequestFailed, StopRun, Usage


@dataclass
class Endpoint:
    name: str  # its base URL: how the user and the manifest know it
    client: LLMClient
    concurrency: int
    in_flight: int = 0
    failures_in_a_row: int = 0
    benched_until: float = 0.0  # event-loop time


class EndpointPool:
    """An LLMClient over several endpoints serving the same model."""

    def __init__(self, endpoints: list[Endpoint], bench_after: int, bench_seconds: float):
        if len({e.name for e in endpoints}) != len(endpoints) or not endpoints:
            raise ValueError("an endpoint pool needs distinct endpoints")
        self.endpoints = endpoints
        self.model = endpoints[0].client.model
        self.usage = Usage(endpoints={e.name: EndpointCounts() for e in endpoints})
        self.bench_after = bench_after
        self.bench_seconds = bench_seconds
        self._slot_freed = asyncio.Event()

    async def complete(
        self, prompt: str, *, max_tokens: int, schema: Optional[dict[str, Any]], schema_name: str
    ) -> Completion:
        tried: set[str] = set()
        spent = _Failures()  # on the endpoints that failed this request
        while True:
            endpoint = await self._take(tried)
            if endpoint is None:  # it failed on a benched endpoint, and every other one is benched or tried
                raise spent.failed()
            tried.add(endpoint.name)
            counts = self.usage.endpoints[endpoint.name]
            counts.requests += 1
            try:
                completion = await endpoint.client.complete(
                    prompt, max_tokens=max_tokens, schema=schema, schema_name=schema_name
                )
            except RequestFailed as exc:
                counts.failed += 1
                self._count(counts, exc.http_requests, exc.retries)
                spent.add(endpoint.name, exc)
                if not self._failed(endpoint):  # an endpoint not benched: the request counts as failed
                    raise spent.failed() from None
                continue
            except StopRun as exc:
                raise StopRun(f"{endpoint.name}: {exc}") from None
            finally:
                endpoint.in_flight -= 1
                self._slot_freed.set()  # a pulse: every waiter wakes, then it re-arms
                self._slot_freed.clear()
                self._gather_client_usage()
            endpoint.failures_in_a_row = 0
            endpoint.benched_until = 0.0  # an endpoint that answers is back (tried while every one was benched)
            counts.answered += 1
            self._count(counts, completion.http_requests, completion.retries)
            counts.prompt_tokens += completion.prompt_tokens
            counts.completion_tokens += completion.completion_tokens
            self.usage.add(completion)
            if spent.http_requests:  # the answer also took what was sent to the endpoints that failed it
                completion = dataclasses.replace(completion, http_requests=completion.http_requests + spent.http_requests,
                                                 retries=completion.retries + spent.retries)
            return completion

    async def aclose(self) -> None:
        await asyncio.gather(*(e.client.aclose() for e in self.endpoints))

    async def _take(self, tried: set[str]) -> Optional[Endpoint]:
        """A slot on the endpoint for the next attempt, waiting for one if need be; None when the
        request failed already and every endpoint it was not tried on is benched."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            untried = [e for e in self.endpoints if e.name not in tried]
            ready = [e for e in untried if e.benched_until <= now]
            if not ready:
                if tried:
                    return None
                # Every endpoint is benched: none is preferred, and the caller's failure window decides
                # whether the run goes on, as it does for a run with one endpoint.
                ready = untried
            free = [e for e in ready if e.in_flight < e.concurrency]
            if free:
                chosen = min(free, key=lambda e: e.in_flight / e.concurrency)
                chosen.in_flight += 1
                return chosen
            # Every endpoint up is full (the run's concurrency counts the benched ones' slots too): wait
            # for a slot, or for a benched one's cool-down to end.
            returns = [e.benched_until - now for e in untried if e.benched_until > now]
            try:
                await asyncio.wait_for(self._slot_freed.wait(), timeout=min(returns) if returns else None)
            except asyncio.TimeoutError:
                pass

    def _failed(self, endpoint: Endpoint) -> bool:
        """Note a failed request; whether the endpoint is benched now (by this failure or before)."""
        now = asyncio.get_running_loop().time()
        endpoint.failures_in_a_row += 1
        if endpoint.benched_until > now:
            return True
        if endpoint.failures_in_a_row >= self.bench_after:
            endpoint.benched_until = now + self.bench_seconds
            self.usage.endpoints[endpoint.name].benched += 1
            return True
        return False

    def _count(self, counts: EndpointCounts, http_requests: int, retries: int) -> None:
        counts.http_requests += http_requests
        counts.retries += retries
        self.usage.http_requests += http_requests
        self.usage.retries += retries

    def _gather_client_usage(self) -> None:
        """The cool-downs and structured-output modes the endpoints' own clients keep, as one."""
        self.usage.cooldown_seconds = sum(e.client.usage.cooldown_seconds for e in self.endpoints)
        modes: dict[str, list[str]] = {}
        for e in self.endpoints:
            for name, mode in e.client.usage.structured_output.items():
                if mode not in modes.setdefault(name, []):
                    modes[name].append(mode)
        self.usage.structured_output.update({name: ", ".join(found) for name, found in modes.items()})


@dataclass
class _Failures:
    """What one request cost on the endpoints that failed it, and what they said."""

    http_requests: int = 0
    retries: int = 0
    connection: bool = True  # no endpoint could be reached at all
    errors: list[str] = dataclasses.field(default_factory=list)

    def add(self, endpoint: str, exc: RequestFailed) -> None:
        self.http_requests += exc.http_requests
        self.retries += exc.retries
        self.connection = self.connection and exc.connection
        self.errors.append(f"{endpoint}: {exc}")

    def failed(self) -> RequestFailed:
        return RequestFailed("; ".join(self.errors), http_requests=self.http_requests, connection=self.connection,
                             retries=self.retries)
