"""Any OpenAI-compatible chat-completions endpoint, through the openai package.

Retries are tenacity's (the openai client's own are off, so the two do not multiply): exponential
backoff with full jitter on 408, 409, 429, 5xx, timeouts and dropped connections, never less than
the server's Retry-After, which also pauses every other request of this client (a shared cool-down).
401, 403, 404, other 4xx and a 429 for a spent quota raise StopRun at once.
"""

import asyncio
import dataclasses
import email.utils
import random
import re
import time
from typing import Any, Optional

import openai
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from synthgen.llm.base import Completion, RequestFailed, StopRun, Usage
from synthgen.llm.chat import MODES, chat_request, read_completion
from synthgen.llm.http import ChatTransport
from synthgen.llm.limits import RateLimits, estimate_tokens, exhausted_for

BACKOFF_BASE = 0.5  # seconds: the first retry waits up to this, each next one up to twice as long
BACKOFF_MAX = 30.0
_TRY_AGAIN = re.compile(r"try again in\s*(\d+(?:\.\d+)?)\s*(ms|s)", re.IGNORECASE)
_ABOUT_SCHEMA = re.compile(r"response_format|json_schema|json_object|schema|grammar", re.IGNORECASE)


class _StructuredOutputRejected(Exception):
    """The server refused the response_format we sent; the next mode is tried."""


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # timeouts are a subclass
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


def _quota_spent(exc: openai.APIStatusError) -> bool:
    body = exc.body if isinstance(exc.body, dict) else {}
    return "insufficient_quota" in (exc.code, body.get("type"), getattr(exc, "type", None))


def retry_after(exc: BaseException) -> Optional[float]:
    """Seconds the server asked us to wait, from its headers or its message."""
    response = getattr(exc, "response", None)
    if response is not None:
        headers = response.headers
        if "retry-after-ms" in headers:
            try:
                return float(headers["retry-after-ms"]) / 1000
            except ValueError:
                pass
        if "retry-after" in headers:
            value = headers["retry-after"]
            try:
                return max(0.0, float(value))
            except ValueError:
                when = email.utils.parsedate_to_datetime(value) if value else None
                if when is not None:
                    return max(0.0, when.timestamp() - time.time())
    match = _TRY_AGAIN.search(str(getattr(exc, "message", "") or exc))
    if match:
        return float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
    return None


class OpenAICompatibleClient:
    def __init__(
        self,
        *,
        model: str,
        base_url: str = "",
        api_key: str = "",
        temperature: float = 1.0,
        top_p: float = 1.0,
        timeout: float = 120.0,
        max_attempts: int = 6,
        retry_budget: float = 600.0,
        structured_output: str = "json_schema",
        rpm: float = 0,
        tpm: float = 0,
    ):
        self.model = model
        self.usage = Usage()
        self._secret = api_key
        # A local server needs no key, but the openai package insists on one.
        self._client = openai.AsyncOpenAI(
            base_url=base_url or None, api_key=api_key or "sk-no-key", timeout=timeout, max_retries=0
        )
        self.base_url = str(self._client.base_url).rstrip("/")
        self._transport = ChatTransport(self._client, api_key, timeout)
        self._sampling = {"temperature": temperature, "top_p": top_p}
        self._max_attempts = max_attempts
        self._retry_budget = retry_budget
        self._modes = MODES[MODES.index(structured_output) :]
        self._cooldown_until = 0.0
        self._limits = RateLimits(rpm, tpm)

    async def complete(
        self, prompt: str, *, max_tokens: int, schema: Optional[dict[str, Any]], schema_name: str
    ) -> Completion:
        sent = [0, 0]  # HTTP requests and retries this answer took, kept with its record
        while True:
            mode = self.usage.structured_output.setdefault(schema_name, self._modes[0]) if schema else "none"
            try:
                completion = await self._send_with_retries(prompt, max_tokens, schema, schema_name, mode, sent)
            except _StructuredOutputRejected:
                # Requests in flight may all be refused; only the first moves the mode on.
                if self.usage.structured_output[schema_name] == mode:
                    self.usage.structured_output[schema_name] = MODES[MODES.index(mode) + 1]
                continue
            return dataclasses.replace(completion, http_requests=sent[0], retries=sent[1])

    async def aclose(self) -> None:
        await self._transport.aclose()
        await self._client.close()

    async def _send_with_retries(
        self, prompt: str, max_tokens: int, schema: Optional[dict[str, Any]], schema_name: str, mode: str,
        sent: list[int],
    ) -> Completion:
        try:  # the first attempt outside tenacity: most requests need no retry, and this is the hot path
            return await self._send(prompt, max_tokens, schema, schema_name, mode, sent)
        except openai.APIError as exc:
            if not _is_transient(exc):
                raise
            if self._max_attempts == 1:
                raise self._failed(exc, sent) from None
            await asyncio.sleep(self._delay(exc, 1))
        # The retries: tenacity's attempt k is the request's attempt k + 1.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts - 1) | stop_after_delay(self._retry_budget),
            wait=self._wait,
            retry=retry_if_exception(_is_transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    self.usage.retries += 1
                    sent[1] += 1
                    return await self._send(prompt, max_tokens, schema, schema_name, mode, sent)
        except openai.APIError as exc:
            raise self._failed(exc, sent) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _send(
        self, prompt: str, max_tokens: int, schema: Optional[dict[str, Any]], schema_name: str, mode: str,
        sent: list[int],
    ) -> Completion:
        estimate = estimate_tokens(prompt, max_tokens)
        await self._admit(estimate)
        request = chat_request(self.model, prompt, max_tokens, self._sampling, schema, schema_name, mode)
        self.usage.http_requests += 1
        sent[0] += 1
        try:
            response, headers = await self._transport.post(request)
        except openai.APIStatusError as exc:
            self._classify(exc, mode)
            raise
        completion = self._completion(response)
        self._limits.settle(estimate, completion.prompt_tokens + completion.completion_tokens)
        pause = exhausted_for(headers)
        if pause:
            self._pause_all(pause)
        return completion

    def _completion(self, response: dict[str, Any]) -> Completion:
        completion = read_completion(response)
        self.usage.add(completion)
        return completion

    def _classify(self, exc: openai.APIStatusError, mode: str) -> None:
        """Raise what a status that no retry mends means; return for transient ones."""
        status = exc.status_code
        if status == 429 and _quota_spent(exc):
            raise StopRun(f"quota spent: {self._describe(exc)}")
        if status in (401, 403):
            raise StopRun(f"the endpoint refused the API key ({status}): {self._describe(exc)}")
        if status == 404:
            raise StopRun(f"not found (404), check --model and --base-url: {self._describe(exc)}")
        if mode != "none" and (status in (400, 422) or (status == 500 and _ABOUT_SCHEMA.search(str(exc.body)))):
            raise _StructuredOutputRejected()
        if not _is_transient(exc):
            raise StopRun(f"the endpoint rejected the request ({status}): {self._describe(exc)}")
        if status == 429:
            pause = retry_after(exc) or exhausted_for(exc.response.headers)
            if pause:
                self._pause_all(pause)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return self._delay(exc, state.attempt_number + 1)

    def _delay(self, exc: Optional[BaseException], failures: int) -> float:
        """Full-jitter exponential backoff after `failures` failed attempts, at least Retry-After."""
        backoff = random.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (failures - 1)))
        asked = retry_after(exc) if exc is not None else None
        return max(backoff, asked) if asked is not None else backoff

    def _pause_all(self, seconds: float) -> None:
        """A shared cool-down: no request of this client starts before it ends."""
        now = asyncio.get_running_loop().time()
        until = now + seconds
        if until > self._cooldown_until:
            self.usage.cooldown_seconds += until - max(now, self._cooldown_until)
            self._cooldown_until = until

    async def _admit(self, estimated_tokens: int) -> None:
        """Wait for this request's slot in the rate limits and for any cool-down to end."""
        loop = asyncio.get_running_loop()
        start = self._limits.reserve(loop.time(), estimated_tokens)
        while (delay := max(start, self._cooldown_until) - loop.time()) > 0:
            await asyncio.sleep(delay)

    def _failed(self, exc: BaseException, sent: list[int]) -> RequestFailed:
        connection = isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError)
        return RequestFailed(self._describe(exc), http_requests=sent[0], connection=connection, retries=sent[1])

    def _describe(self, exc: BaseException) -> str:
        """The error in one short line, with the key blanked out wherever the server echoed it."""
        text = " ".join(str(getattr(exc, "message", None) or exc or type(exc).__name__).split())
        if self._secret:
            text = text.replace(self._secret, "***")
        return text[:300]
