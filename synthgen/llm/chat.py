"""The chat-completions request body synthgen sends and the answer it reads back, in one place.

The live client posts these bodies one at a time; a batch file (the OpenAI Batch API, `vllm
run-batch`) holds the same bodies a line each, and its results hold the same chat.completion
objects. One builder and one reader, so the two paths cannot drift apart.
"""

from typing import Any, Optional

from synthgen.llm.base import Completion

MODES = ("json_schema", "json_object", "none")  # structured-output modes, strictest first


def chat_request(model: str, prompt: str, max_tokens: int, sampling: dict[str, float],
                 schema: Optional[dict[str, Any]], schema_name: str, mode: str) -> dict[str, Any]:
    """The body of one chat completion of a single user message, in structured-output `mode`."""
    request: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        **sampling,
    }
    if schema is not None and mode == "json_schema":
        request["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": schema, "strict": True},
        }
    elif schema is not None and mode == "json_object":
        request["response_format"] = {"type": "json_object"}
    return request


def read_completion(response: Any) -> Completion:
    """The first choice of a chat.completion object, read leniently: servers differ."""
    response = response if isinstance(response, dict) else {}
    choices = response.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    usage = response.get("usage") or {}
    return Completion(
        text=message.get("content") or "",
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens") or 0,
        completion_tokens=usage.get("completion_tokens") or 0,
        refusal=message.get("refusal"),
    )
