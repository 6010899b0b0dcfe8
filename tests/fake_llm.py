"""A real OpenAI-compatible HTTP server on 127.0.0.1 for the tests, with switchable faults.

It answers chat completions for every synthgen kind (recognised from the response_format schema or
from the JSON keys the prompt names), brainstorm requests with {"tasks": [...]} objects, and plays scripted
actions first: a status with headers, a bad or fenced answer, a truncation, a delay.
"""

import collections
import itertools
import json
import random
import threading
import time
from typing import Any, Callable, Optional, Union

from loopback import LoopbackServer

KEY_SETS = {
    "hard_negative_document": ("user_query", "positive_document", "hard_negative_document"),
    "misleading_label": ("input_text", "label", "misleading_label"),
    "positive_document": ("input", "positive_document"),
    '"S3"': ("S1", "S2", "S3"),
}

# An action returns (status, headers, body); a string names one of the canned ones below.
Reply = tuple[int, dict[str, str], Any]
Action = Union[str, dict, Callable[[dict], Reply]]


def chat_body(text: Optional[str], finish_reason: str = "stop", prompt_tokens: int = 10, refusal: Optional[str] = None,
              choices: bool = True) -> dict:
    message = {"role": "assistant", "content": text, "refusal": refusal}
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}] if choices else [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len((text or "").split()),
            "total_tokens": prompt_tokens + len((text or "").split()),
        },
    }


def error_body(message: str, code: Optional[str] = None, type_: str = "error") -> dict:
    return {"error": {"message": message, "type": type_, "code": code, "param": None}}


class FakeLLM(LoopbackServer):
    def __init__(self, latency: float = 0.0, first_number: int = 0):
        """first_number: where answers' numbers start (servers of one run must not answer alike)."""
        super().__init__()
        self.latency = latency
        self.requests: list[dict] = []
        self.request_headers: list[dict[str, str]] = []
        self.times: list[float] = []  # time.monotonic() at each request's arrival
        self.script: collections.deque = collections.deque()
        self.default: Action = "ok"
        self.refused_formats: set[str] = set()  # response_format types answered with 400
        self.tasks_per_answer = 20
        # When set, brainstorm answers draw their tasks from this many, each written a little
        # differently each time (case, punctuation, spacing): a model that repeats itself.
        self.task_pool: Optional[int] = None
        # How the server counts a request's prompt tokens (its messages' text): a real server uses
        # its model's tokenizer; unset, every prompt counts 10.
        self.count_prompt: Optional[Callable[[str], int]] = None
        self._lock = threading.Lock()
        self._counter = itertools.count(first_number)
        self._last_answer: Optional[str] = None

    # -- control -------------------------------------------------------------------------------

    def then(self, *actions: Action) -> "FakeLLM":
        """Play these actions, one per request, before the default."""
        self.script.extend(actions)
        return self

    def prompts(self) -> list[str]:
        return [r["messages"][-1]["content"] for r in self.requests]

    # -- answering -----------------------------------------------------------------------------

    def handle(self, path: str, body: dict, headers: dict[str, str]) -> Reply:
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(headers)
            self.times.append(time.monotonic())
            action = self.script.popleft() if self.script else self.default
            number = next(self._counter)
        if self.latency:
            time.sleep(self.latency)
        if not path.endswith("/chat/completions"):
            return 404, {}, error_body(f"no route {path}")
        response_format = (body.get("response_format") or {}).get("type")
        if response_format in self.refused_formats:
            return 400, {}, error_body(f"response_format {response_format} is not supported")
        if callable(action):
            return action(body)
        if isinstance(action, dict):
            if "sleep" in action:
                time.sleep(action["sleep"])
                return 200, {}, chat_body(self.answer(body, number))
            return action.get("status", 200), action.get("headers", {}), action.get("body", {})
        return self.canned(action, body, number)

    def canned(self, name: str, body: dict, number: int) -> Reply:
        reply = self._canned(name, body, number)
        if self.count_prompt is not None and isinstance(reply[2], dict) and "usage" in reply[2]:
            usage = reply[2]["usage"]
            usage["prompt_tokens"] = self.count_prompt(body["messages"][-1]["content"])
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return reply

    def _canned(self, name: str, body: dict, number: int) -> Reply:
        text = self.answer(body, number)
        if name == "duplicate" and self._last_answer is not None:
            text = self._last_answer
        self._last_answer = text
        texts = {
            "ok": text,
            "duplicate": text,
            "bad_json": text[: len(text) // 2],
            "fenced": f"Here is the example:\n```json\n{text}\n```\n",
            "prose": f"Sure, here it is.\n{text}",
            "wrong_schema": json.dumps({"question": "what", "answer": "that"}),
            "empty_field": json.dumps({key: "" for key in json.loads(text)}) if text.startswith("{") else text,
            "empty": "",
        }
        if name == "ok" and len(text.split()) > body.get("max_tokens", len(text)):
            # Cut off at max_tokens (a word is a token here), as a real server would.
            return 200, {}, chat_body(" ".join(text.split()[: body["max_tokens"]]), finish_reason="length")
        if name in texts:
            return 200, {}, chat_body(texts[name])
        if name == "truncated":
            return 200, {}, chat_body(text[:40], finish_reason="length")
        if name == "refusal":
            return 200, {}, chat_body(None, refusal="I cannot help with that.")
        if name == "no_choices":
            return 200, {}, chat_body(None, choices=False)
        if name == "drop":
            return 0, {}, b""
        raise ValueError(f"unknown action {name}")

    def answer(self, body: dict, number: int) -> str:
        """A valid, unique answer for whatever the request asks."""
        prompt = body["messages"][-1]["content"]
        if prompt.startswith("Brainstorm"):
            return json.dumps({"tasks": self.brainstormed(number)})
        if not body.get("response_format") and not any(marker in prompt for marker in KEY_SETS):
            return " ".join(f"free{number}x{i}" for i in range(12))  # a prompt that asks for no JSON
        keys = self.keys(body, prompt)
        words = " ".join(f"word{number}x{i}" for i in range(30))
        return json.dumps({key: f"{key} {number}: {words}" for key in keys}, ensure_ascii=False)

    def brainstormed(self, number: int) -> list[str]:
        if self.task_pool is None:
            return [f"Retrieve documents of kind {number}-{i} for a user's query." for i in range(self.tasks_per_answer)]
        picks = random.Random(number).sample(range(self.task_pool), min(self.tasks_per_answer, self.task_pool))
        variants = ("Retrieve documents about subject {} for a user's query.",
                    "retrieve documents about subject {} for a user's query",
                    "RETRIEVE  documents about subject {}, for a user's query!",
                    "Retrieve documents about subject {} -- for a user's query.")
        return [variants[(number + i) % len(variants)].format(pick) for i, pick in enumerate(picks)]

    @staticmethod
    def keys(body: dict, prompt: str) -> tuple[str, ...]:
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        if schema and schema.get("properties"):
            return tuple(schema["properties"])
        for marker, keys in KEY_SETS.items():
            if marker in prompt:
                return keys
        raise ValueError("cannot tell what the prompt asks for")
