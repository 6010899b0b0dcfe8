"""How many CPU threads llama.cpp gets: every core, or one while other processes keep them busy."""

import collections
import os
import statistics
from typing import Optional


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class ThreadTuner:
    """Every core, or one while other processes keep the cores busy, measured as the engine runs.

    llama.cpp's threads wait for each other at every step of the graph: when another process holds
    a core, the thread that lost it stalls the others. So every PROBE_EVERY steps that only decode
    answers, the next PROBE_STEPS run on the other thread count, and it is kept if its time per
    token is below MARGIN times that of the steps just before. On an idle machine that costs little;
    on a busy one it avoids the stall.
    """

    PROBE_EVERY = 160
    PROBE_STEPS = 8
    MARGIN = 0.9

    def __init__(self, most: int, adapt: bool = True):
        self.options = (most, 1) if adapt and most > 1 else (most,)
        self.current = most
        self.probing: Optional[int] = None
        self.recent: collections.deque = collections.deque(maxlen=self.PROBE_STEPS)
        self.probe: list[float] = []
        self.since_probe = 0

    @property
    def threads(self) -> int:
        return self.probing or self.current

    def record(self, seconds: float, tokens: int) -> Optional[int]:
        """Note an answer-only step; the thread count to use from now on when it changes, else None."""
        if len(self.options) == 1:
            return None
        per_token = seconds / max(1, tokens)
        if self.probing is not None:
            self.probe.append(per_token)
            if len(self.probe) < self.PROBE_STEPS:
                return None
            if statistics.median(self.probe) < self.MARGIN * statistics.median(self.recent):
                self.current = self.probing
                self.recent = collections.deque(self.probe, maxlen=self.PROBE_STEPS)
            self.probing, self.probe, self.since_probe = None, [], 0
            return self.current
        self.recent.append(per_token)
        self.since_probe += 1
        if self.since_probe >= self.PROBE_EVERY and len(self.recent) == self.PROBE_STEPS:
            self.probing = next(option for option in self.options if option != self.current)
            return self.probing
        return None
