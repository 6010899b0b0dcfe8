"""Handing plan indices to concurrent workers, and knowing when to stop.

The dispatcher owns the indices (in order, skipping the finished ones), the request cap, how many
requests are in flight, and Ctrl+C. It knows nothing of prompts or files: a stage gives it a
coroutine that handles one index and says whether it gave a result. Generation and brainstorm both
run on it, so both get the same cap, concurrency, interrupts and failure breaker.
"""

import asyncio
import collections
import signal
from typing import Awaitable, Callable, Iterable, Optional, Protocol

from synthgen.console import say

GRACE_SECONDS = 10.0  # how long an interrupted run waits for the requests in flight


def request_cap(n: int, factor: float) -> int:
    """How many requests `n` results may take: `factor` per result, and ten more for a small n."""
    return int(n * factor + 0.999999) + 10


class FailureWindow:
    """Says when requests fail too often for going on to make sense.

    Two rules: the endpoint has never answered and the first `opening` requests all failed
    (a wrong URL, a server that is down: say so at once instead of after the whole cap), or
    `share` of the last `size` requests used up their retries.
    """

    def __init__(self, size: int = 50, share: float = 0.5, minimum: int = 20, opening: int = 3):
        self.recent: collections.deque[bool] = collections.deque(maxlen=size)
        self.share = share
        self.minimum = minimum
        self.opening = opening
        self.answered = False
        self.failed_before_any_answer = 0

    def record(self, failed: bool, message: str = "") -> Optional[str]:
        """Note one request; returns why to stop, or None to go on."""
        self.recent.append(failed)
        if not failed:
            self.answered = True
            return None
        if not self.answered:
            self.failed_before_any_answer += 1
            if self.failed_before_any_answer >= self.opening:
                return f"every request so far failed ({self.failed_before_any_answer} of them); last error: {message}"
        window = self.recent
        if len(window) >= self.minimum and sum(window) >= self.share * len(window):
            return f"most requests fail ({sum(window)} of the last {len(window)} used up their retries); last error: {message}"
        return None


class Tracker(Protocol):
    """What the dispatcher reports to (a progress bar)."""

    def sent(self) -> None: ...

    def done(self, ok: Optional[bool]) -> None: ...  # None: not sent after all


class Dispatcher:
    """Runs `handle(index)` for index 0, 1, 2, ... (or a shard's: first, first + step, ...; skipping
    finished ones) on `concurrency` workers.

    It stops sending when `target` handles succeeded, `cap` indices were sent in all (earlier
    sessions' included), `stop()` was called, or the user interrupted. It never sends more than it
    may still need: with `target - succeeded` requests in flight, workers wait.
    """

    def __init__(
        self,
        target: int,
        cap: int,
        concurrency: int,
        finished: Iterable[int] = (),
        succeeded: int = 0,
        tracker: Optional[Tracker] = None,
        first: int = 0,
        step: int = 1,
    ):
        """first, step: the indices are first, first + step, ... (a shard's residue of the plan)."""
        self.target = target
        self.cap = cap
        self.concurrency = concurrency
        self.finished = set(finished)
        self.succeeded = succeeded
        self.requests = len(self.finished)  # indices sent, this session and before
        self.in_flight = 0
        self.next_index = first
        self.step = step
        self.stop_reason: Optional[str] = None
        self.interrupted = False
        self.tracker = tracker
        self._workers: list[asyncio.Task] = []
        self._slot_freed = asyncio.Event()

    @property
    def outcome(self) -> str:
        """complete, stopped, interrupted or capped (the request cap was reached first)."""
        if self.succeeded >= self.target:
            return "complete"
        if self.stop_reason is not None:
            return "stopped"
        return "interrupted" if self.interrupted else "capped"

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._wake_workers()

    def _done(self) -> bool:
        return (
            self.interrupted
            or self.stop_reason is not None
            or self.succeeded >= self.target
            or self.requests >= self.cap
        )

    def _can_send(self) -> bool:
        return self._done() or self.succeeded + self.in_flight < self.target

    def _take(self) -> int:
        while self.next_index in self.finished:
            self.next_index += self.step
        index = self.next_index
        self.next_index += self.step
        self.requests += 1
        self.in_flight += 1
        return index

    async def run(self, handle: Callable[[int], Awaitable[Optional[bool]]]) -> None:
        """Until done; an exception from `handle` cancels the other workers and is raised.

        `handle` says whether the index gave a result, or None when it sent nothing after all (the
        budget refused it): the index stays unfinished, for a later session."""
        count = min(self.concurrency, max(1, self.target - self.succeeded))
        self._workers = [asyncio.create_task(self._worker(handle)) for _ in range(count)]
        try:
            done, _ = await asyncio.wait(self._workers, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            self._cancel_workers()
            await asyncio.gather(*self._workers, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _worker(self, handle: Callable[[int], Awaitable[Optional[bool]]]) -> None:
        # One event loop, no await between the check and the take: no lock is needed.
        while True:
            while not self._can_send():
                await self._slot_freed.wait()
            if self._done():
                return
            index = self._take()
            if self.tracker:
                self.tracker.sent()
            ok: Optional[bool] = False
            try:
                ok = await handle(index)
            finally:
                self.in_flight -= 1
                if ok is None:
                    self.requests -= 1
                else:
                    self.succeeded += ok
                self._wake_workers()
            if self.tracker:
                self.tracker.done(ok)

    def _wake_workers(self) -> None:
        """Wake the workers waiting for a free slot (a pulse: set wakes every waiter, clear re-arms)."""
        self._slot_freed.set()
        self._slot_freed.clear()

    def _cancel_workers(self) -> None:
        for task in self._workers:
            task.cancel()

    # -- Ctrl+C --------------------------------------------------------------------------------------

    def interrupt(self) -> None:
        """The first interrupt stops sending and gives the requests in flight a grace period to finish;
        a second one cancels them at once. What was written stays either way."""
        if self.interrupted:
            self._cancel_workers()
            return
        self.interrupted = True
        say(f"\ninterrupted: waiting up to {GRACE_SECONDS:g} s for {self.in_flight} requests in flight "
            "(interrupt again to stop at once)")
        asyncio.get_running_loop().call_later(GRACE_SECONDS, self._cancel_workers)
        self._wake_workers()

    def catch_interrupts(self) -> Callable[[], None]:
        """Route SIGINT and SIGTERM to interrupt(); returns the function that restores them."""
        loop = asyncio.get_running_loop()
        caught = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self.interrupt)
                caught.append(signum)
            except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
                pass

        def restore() -> None:
            for signum in caught:
                loop.remove_signal_handler(signum)

        return restore
