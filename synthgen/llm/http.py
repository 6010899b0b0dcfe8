"""The hot path's transport: one aiohttp POST per chat completion, errors as the openai package's.

The openai package's own create() spends more CPU per request on request transformation, response
models and httpx's connection pool than the whole rest of the pipeline, enough to leave a fast
endpoint idle on a small machine. This sends the same JSON over aiohttp and raises the same
exception classes (built by the openai client itself), so retries and error handling are unchanged.
"""

import asyncio
import json
from typing import Any, Mapping, Optional

import aiohttp
import openai

try:  # openai 3.x sends over httpx2; its exceptions carry an httpx2 request and response
    import httpx2 as httpx
except ImportError:  # pragma: no cover - openai before 3.x
    import httpx  # type: ignore[no-redef]


class ChatTransport:
    def __init__(self, client: openai.AsyncOpenAI, api_key: str, timeout: float):
        self._client = client  # for its base URL and its error classes
        self.url = str(client.base_url).rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: Optional[aiohttp.ClientSession] = None
        self._request = httpx.Request("POST", self.url)  # what openai's exceptions point at

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No connection limit here: the caller bounds how many requests are in flight.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], Mapping[str, str]]:
        """The decoded JSON answer and the response headers; raises openai.APIError subclasses."""
        session = self._open()
        try:
            async with session.post(self.url, data=json.dumps(body), headers=self._headers) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        except asyncio.TimeoutError:
            raise openai.APITimeoutError(request=self._request) from None
        except aiohttp.ClientError as exc:
            raise openai.APIConnectionError(message=f"Connection error: {exc}", request=self._request) from None
        if status >= 400:
            raise self._status_error(status, headers, raw)
        try:
            decoded = json.loads(raw)
        except ValueError:
            raise openai.APIResponseValidationError(
                self._response(status, headers, raw), body=raw[:200], message="the answer is not JSON"
            ) from None
        return decoded, headers

    def _response(self, status: int, headers: Mapping[str, str], raw: bytes) -> Any:
        return httpx.Response(status, headers=list(headers.items()), content=raw, request=self._request)

    def _status_error(self, status: int, headers: Mapping[str, str], raw: bytes) -> openai.APIStatusError:
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        error = body.get("error", body) if isinstance(body, dict) else body
        message = error.get("message") if isinstance(error, dict) else None
        text = f"Error code: {status} - {message or body}"
        return self._client._make_status_error(text, body=body, response=self._response(status, headers, raw))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
