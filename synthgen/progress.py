"""A tqdm bar for a stage, with sent / in flight / rejected / tokens refreshed twice a second.

The counters are plain attributes bumped on the hot path; only the ticker formats and draws, so the
bar moves while requests are out even when no answer has come back yet.
"""

import asyncio
import contextlib
import sys
from typing import Callable, Optional

from tqdm import tqdm

from synthgen.llm import Usage


class Progress:
    def __init__(self, desc: str, total: int, unit: str, enabled: bool = True, initial: int = 0,
                 usage: Optional[Usage] = None, per_request: bool = True,
                 status: Optional[Callable[[], str]] = None):
        """per_request: the bar moves by one for each request that gave a result; else by advance().
        status: more fields to show (what the run spent)."""
        self.bar = tqdm(
            total=total, initial=initial, desc=desc, unit=unit, disable=None if enabled else True,
            dynamic_ncols=True, file=sys.stderr,
        )
        self.usage = usage
        self.status = status
        self.per_request = per_request
        self.sent_count = 0
        self.in_flight = 0
        self.rejected = 0
        self._ticker: Optional[asyncio.Task] = None

    def sent(self) -> None:
        self.sent_count += 1
        self.in_flight += 1

    def done(self, ok: Optional[bool]) -> None:
        self.in_flight -= 1
        if ok is None:  # not sent after all
            self.sent_count -= 1
        elif not ok:
            self.rejected += 1
        elif self.per_request:
            self.bar.update(1)

    def advance(self, count: int) -> None:
        self.bar.update(count)

    def refresh(self) -> None:
        fields = f"sent={self.sent_count} in_flight={self.in_flight} rejected={self.rejected}"
        if self.usage is not None:
            fields += f" tokens={self.usage.prompt_tokens + self.usage.completion_tokens}"
        if self.status is not None:
            fields += " " + self.status()
        self.bar.set_postfix_str(fields, refresh=True)

    async def _tick(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(0.5)

    async def __aenter__(self) -> "Progress":
        if not self.bar.disable:
            self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if not self.bar.disable:
            self.refresh()
        self.bar.close()
