"""The interface every client implements, and what it returns and raises."""

from dataclasses import dataclass, field
from typing import Any, Optional, Protocol


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: Optional[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    refusal: Optional[str] = None
    http_requests: int = 1  # what this one answer took: retries and structured-output fallbacks included
    retries: int = 0


@dataclass
class EndpointCounts:
    """What one endpoint of several did (the manifest's per-endpoint report)."""

    requests: int = 0  # answers asked of it; a request that failed on a benched endpoint is asked again elsewhere
    answered: int = 0
    failed: int = 0  # requests that used up their attempts on it
    benched: int = 0  # times it was benched for failing again and again
    http_requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Usage:
    """What a client has spent, summed over every request it sent."""

    http_requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cooldown_seconds: float = 0.0  # time every request was held back because the server asked
    structured_output: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, EndpointCounts] = field(default_factory=dict)  # by base URL; only with several

    def take_counts(self) -> dict[str, int]:
        """The counters so far, zeroed (each endpoint's too): what one stage spent, apart from the next one."""
        counts = {
            "http_requests": self.http_requests,
            "retries": self.retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }
        self.http_requests = self.retries = self.prompt_tokens = self.completion_tokens = 0
        for name in self.endpoints:
            self.endpoints[name] = EndpointCounts()
        return counts

    def add(self, completion: Completion) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens


class StopRun(Exception):
    """The endpoint said something no retry can mend (key refused, quota spent, model not found)."""


class RequestFailed(Exception):
    """One request used up its attempts or its time budget; the caller may plan a replacement."""

    def __init__(self, message: str, http_requests: int = 1, connection: bool = False, retries: int = 0):
        super().__init__(message)
        self.http_requests = http_requests  # how many were sent for it (and may have been paid)
        self.connection = connection  # the endpoint could not be reached at all
        self.retries = retries


class LLMClient(Protocol):
    model: str
    usage: Usage

    async def complete(
        self, prompt: str, *, max_tokens: int, schema: Optional[dict[str, Any]], schema_name: str
    ) -> Completion:
        """One chat completion of a single user message.

        schema, when given, is the JSON schema the answer should follow; schema_name identifies it
        (structured-output support is remembered per name). Raises StopRun or RequestFailed.
        """
        ...

    async def aclose(self) -> None: ...
