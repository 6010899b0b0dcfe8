"""Client-side rate limits: requests and tokens per minute, and the server's own rate-limit headers.

Requests are paced, not bucketed: each one reserves the next free slot of each schedule (one
request every 60/rpm seconds; estimated tokens x 60/tpm seconds), so the achieved rate over any
window stays at the limit instead of bursting to it and stalling.
"""

import re
from typing import Mapping, Optional

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> Optional[float]:
    """OpenAI's reset durations ("1s", "6m0s", "20ms", "0.5s") or plain seconds, in seconds."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


class Pacer:
    """One schedule: `per_minute` units a minute, spread evenly."""

    def __init__(self, per_minute: float):
        self.seconds_per_unit = 60.0 / per_minute
        self.next_free = 0.0

    def reserve(self, now: float, units: float = 1.0) -> float:
        """The time this reservation may start at; the schedule moves past it."""
        start = max(now, self.next_free)
        self.next_free = start + units * self.seconds_per_unit
        return start

    def correct(self, units: float) -> None:
        """Give back (negative) or take (positive) units once the real count is known."""
        self.next_free += units * self.seconds_per_unit


class RateLimits:
    def __init__(self, rpm: float = 0, tpm: float = 0):
        self.requests = Pacer(rpm) if rpm > 0 else None
        self.tokens = Pacer(tpm) if tpm > 0 else None

    def reserve(self, now: float, estimated_tokens: int) -> float:
        start = now
        if self.requests is not None:
            start = max(start, self.requests.reserve(now))
        if self.tokens is not None:
            start = max(start, self.tokens.reserve(now, estimated_tokens))
        return start

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        if self.tokens is not None and actual_tokens:
            self.tokens.correct(actual_tokens - estimated_tokens)


def exhausted_for(headers: Mapping[str, str]) -> Optional[float]:
    """Seconds to pause when the server says a rate-limit budget is spent, else None."""
    pause = None
    for budget in ("requests", "tokens"):
        remaining = headers.get(f"x-ratelimit-remaining-{budget}")
        reset = headers.get(f"x-ratelimit-reset-{budget}")
        if remaining is None or reset is None:
            continue
        try:
            spent = float(remaining) <= 0
        except ValueError:
            continue
        seconds = parse_duration(reset)
        if spent and seconds:
            pause = max(pause or 0.0, seconds)
    return pause


def estimate_tokens(prompt: str, max_tokens: int) -> int:
    """What a request may cost before it is sent: about four characters a token, plus max_tokens."""
    return len(prompt) // 4 + max_tokens
