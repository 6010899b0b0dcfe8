"""A real OpenAI-compatible Batch API on 127.0.0.1: /v1/files (upload, content) and /v1/batches
(create, retrieve, list, cancel), over the chat answers of fake_llm.

A batch moves validating -> in_progress -> completed as it is polled, running `lines_per_poll` of its
requests at each poll (all of them by default), and writes an output file (answers, 200) and an
error file (failed requests, and those it never ran). Scripted batches play faults, one plan per
batch created, in order: a batch that expires part way, one whose creation drops the connection
after the batch is made, one failed at validation, some requests failed or answered badly.

It checks what the real API checks: purpose "batch", one line per request with a unique custom_id,
method POST, the endpoint's url, and at most `max_file_requests` lines and `max_file_bytes` bytes a
file (a batch over them fails, as the API's does). `executed` counts the requests it ran (what a
provider bills); a request it never ran is not in it.

    python tests/fake_batch.py [--port 0] [--lines-per-poll N]     # prints "port N" when it listens
"""

import argparse
import collections
import email.parser
import email.policy
import itertools
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_llm import FakeLLM, Reply, chat_body, error_body  # noqa: E402

CHAT = "/v1/chat/completions"


class FakeBatchAPI(FakeLLM):
    def __init__(self, lines_per_poll: Optional[int] = None, max_file_requests: int = 50_000,
                 max_file_bytes: int = 200_000_000):
        super().__init__()
        self.lines_per_poll = lines_per_poll
        self.max_file_requests = max_file_requests
        self.max_file_bytes = max_file_bytes
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.plans: collections.deque = collections.deque()  # one dict of faults per batch created
        self.executed = 0  # requests run, answered or failed: what the provider bills
        self.ran: collections.Counter = collections.Counter()  # custom_id -> times it was run
        self.cancels: list[str] = []
        self.hold_after: Optional[int] = None  # while set, a batch in progress runs no more requests than this
        self.api_headers: list[dict[str, str]] = []  # of every request to the files and batches API
        self.polls = 0
        self._ids = itertools.count(1)
        self._numbers = itertools.count()

    # -- control -------------------------------------------------------------------------------

    def plan(self, *plans: dict) -> "FakeBatchAPI":
        """Faults of the next batches created, one dict each: expire_after (share of requests run
        before it expires), drop_create (the creation's connection drops once the batch is made),
        fail_validation (an error message: the batch fails without running anything), line (a
        function of the request's number in the batch giving "ok", "bad_json" or "fail")."""
        self.plans.extend(plans)
        return self

    def uploaded_lines(self) -> list[dict]:
        return [json.loads(line) for f in self.files.values() if f["purpose"] == "batch" for line in f["lines"]]

    # -- routes --------------------------------------------------------------------------------

    def handle(self, path: str, body: Any, headers: dict[str, str]) -> Reply:
        route = urlparse(path).path
        self.api_headers.append(headers)
        if route == "/v1/files":
            return self._upload(body, headers)
        if route == "/v1/batches":
            return self._create(body)
        if route.startswith("/v1/batches/") and route.endswith("/cancel"):
            return self._cancel(route.split("/")[3])
        return super().handle(path, body, headers)

    def handle_get(self, path: str, headers: dict[str, str]) -> Reply:
        url = urlparse(path)
        self.api_headers.append(headers)
        parts = url.path.strip("/").split("/")
        with self._lock:
            if parts[:2] == ["v1", "files"] and len(parts) == 4 and parts[3] == "content":
                found = self.files.get(parts[2])
                if found is None:
                    return 404, {}, error_body(f"no file {parts[2]}")
                return 200, {"content-type": "application/octet-stream"}, found["content"]
            if parts == ["stats"]:  # for the benchmark: when each batch was made and when it ended
                return 200, {}, {b["id"]: {"created": b["made"], "finished": b.get("finished")}
                                 for b in self.batches.values()}
            if parts == ["v1", "batches"]:
                limit = int(parse_qs(url.query).get("limit", ["20"])[0])
                listed = [self._public(b) for b in reversed(list(self.batches.values()))][:limit]
                return 200, {}, {"object": "list", "data": listed, "has_more": False,
                                 "first_id": listed[0]["id"] if listed else None,
                                 "last_id": listed[-1]["id"] if listed else None}
            if parts[:2] == ["v1", "batches"] and len(parts) == 3:
                batch = self.batches.get(parts[2])
                if batch is None:
                    return 404, {}, error_body(f"no batch {parts[2]}")
                self.polls += 1
                self._advance(batch)
                return 200, {}, self._public(batch)
        return super().handle_get(path, headers)

    def _upload(self, body: Any, headers: dict[str, str]) -> Reply:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + headers.get("content-type", "").encode() + b"\r\n\r\n" + body)
        fields: dict[str, Any] = {}
        filename = "upload.jsonl"
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = part.get_payload(decode=True)
            if name == "file":
                filename = part.get_filename() or filename
        if fields.get("purpose") != b"batch" or "file" not in fields:
            return 400, {}, error_body("an upload needs purpose=batch and a file")
        content = fields["file"]
        with self._lock:
            file_id = f"file-{next(self._ids)}"
            self.files[file_id] = {"content": content, "lines": content.splitlines(), "purpose": "batch",
                                   "filename": filename}
        return 200, {}, {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                         "filename": filename, "purpose": "batch", "status": "processed"}

    def _create(self, body: dict) -> Reply:
        with self._lock:
            source = self.files.get(body.get("input_file_id", ""))
            if source is None:
                return 400, {}, error_body("no such input file")
            if body.get("endpoint") != CHAT or body.get("completion_window") != "24h":
                return 400, {}, error_body("unsupported endpoint or completion window")
            plan = self.plans.popleft() if self.plans else {}
            batch_id = f"batch_{next(self._ids)}"
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": CHAT, "input_file_id": body["input_file_id"],
                "completion_window": "24h", "created_at": int(time.time()), "status": "validating",
                "metadata": body.get("metadata"), "plan": plan, "lines": source["lines"], "done": 0,
                "output": [], "errors": [], "completed": 0, "failed": 0, "problems": self._problems(source),
                "made": time.time(),
            }
            public = self._public(self.batches[batch_id])
        if plan.get("drop_create"):
            return 0, {}, b""  # the batch exists, but the client never hears of it
        return 200, {}, public

    def _cancel(self, batch_id: str) -> Reply:
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return 404, {}, error_body(f"no batch {batch_id}")
            self.cancels.append(batch_id)
            if batch["status"] in ("validating", "in_progress", "finalizing"):
                batch["status"] = "cancelling"
            return 200, {}, self._public(batch)

    # -- running a batch -----------------------------------------------------------------------

    def _problems(self, source: dict) -> list[str]:
        """What the API's validation refuses in an input file."""
        lines = source["lines"]
        problems = []
        if len(lines) > self.max_file_requests:
            problems.append(f"too many requests in the file: {len(lines)} > {self.max_file_requests}")
        if len(source["content"]) > self.max_file_bytes:
            problems.append(f"file too large: {len(source['content'])} > {self.max_file_bytes} bytes")
        ids = set()
        for number, line in enumerate(lines):
            request = json.loads(line)
            if request.get("method") != "POST" or request.get("url") != CHAT or "body" not in request:
                problems.append(f"line {number + 1}: not a POST to {CHAT}")
            if request.get("custom_id") in ids:
                problems.append(f"line {number + 1}: custom_id {request.get('custom_id')} repeated")
            ids.add(request.get("custom_id"))
        return problems

    def _advance(self, batch: dict) -> None:
        """One poll's worth of progress (under the lock)."""
        status, plan, lines = batch["status"], batch["plan"], batch["lines"]
        if status == "validating":
            problem = plan.get("fail_validation") or (batch["problems"][0] if batch["problems"] else None)
            if problem:
                batch["status"] = "failed"
                batch["errors_list"] = [{"code": "invalid_batch", "message": problem, "line": None, "param": None}]
            else:
                batch["status"] = "in_progress"
            return
        if status == "cancelling":
            self._finish(batch, "cancelled", "batch_cancelled", "This request was cancelled before it ran.")
            return
        if status == "finalizing":
            self._finish(batch, "completed", None, "")
            return
        if status != "in_progress":
            return
        expire_at = int(len(lines) * plan["expire_after"]) if "expire_after" in plan else len(lines)
        limit = min(expire_at, batch["done"] + (self.lines_per_poll or len(lines)))
        if self.hold_after is not None:
            limit = min(limit, self.hold_after)
        for number in range(batch["done"], limit):
            self._run_line(batch, number)
            batch["done"] = number + 1
        if self.hold_after is not None and batch["done"] >= self.hold_after:
            return  # held: part done, part not, as a batch that runs for hours
        if batch["done"] >= expire_at and expire_at < len(lines):
            self._finish(batch, "expired", "batch_expired",
                         "This request could not be executed before the completion window expired.")
        elif batch["done"] >= len(lines):
            batch["status"] = "finalizing"

    def _run_line(self, batch: dict, number: int) -> None:
        request = json.loads(batch["lines"][number])
        action: Callable[[int], str] = batch["plan"].get("line", lambda n: "ok")
        what = action(number)
        self.executed += 1
        self.ran[request["custom_id"]] += 1
        if what == "fail":
            batch["failed"] += 1
            batch["errors"].append({"id": f"batch_req_{number}", "custom_id": request["custom_id"],
                                    "response": {"status_code": 500, "request_id": f"req_{number}",
                                                 "body": error_body("The server had an error", type_="server_error")},
                                    "error": None})
            return
        text = self.answer(request["body"], next(self._numbers))
        if what == "bad_json":
            text = text[: len(text) // 2]
        batch["completed"] += 1
        batch["output"].append({"id": f"batch_req_{number}", "custom_id": request["custom_id"],
                                "response": {"status_code": 200, "request_id": f"req_{number}",
                                             "body": chat_body(text, prompt_tokens=len(str(request["body"])) // 4)},
                                "error": None})

    def _finish(self, batch: dict, status: str, code: Optional[str], message: str) -> None:
        if code is not None:  # the requests it never ran go to the error file, as the API writes them
            for number in range(batch["done"], len(batch["lines"])):
                request = json.loads(batch["lines"][number])
                batch["errors"].append({"id": f"batch_req_{number}", "custom_id": request["custom_id"],
                                        "response": None, "error": {"code": code, "message": message}})
        for which in ("output", "errors"):
            if batch[which]:
                file_id = f"file-{next(self._ids)}"
                content = b"".join(json.dumps(line).encode() + b"\n" for line in batch[which])
                self.files[file_id] = {"content": content, "lines": content.splitlines(), "purpose": "batch_output",
                                       "filename": f"{batch['id']}_{which}.jsonl"}
                batch["output_file_id" if which == "output" else "error_file_id"] = file_id
        batch["status"] = status
        batch["finished"] = time.time()

    @staticmethod
    def _public(batch: dict) -> dict:
        public = {key: batch[key] for key in ("id", "object", "endpoint", "input_file_id", "completion_window",
                                              "created_at", "status", "metadata")}
        public["request_counts"] = {"total": len(batch["lines"]), "completed": batch["completed"],
                                    "failed": batch["failed"]}
        public["output_file_id"] = batch.get("output_file_id")
        public["error_file_id"] = batch.get("error_file_id")
        if batch.get("errors_list"):
            public["errors"] = {"object": "list", "data": batch["errors_list"]}
        return public


def main() -> None:
    parser = argparse.ArgumentParser(description="A loopback OpenAI Batch API for tests and benchmarks.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lines-per-poll", type=int, default=None)
    args = parser.parse_args()
    server = FakeBatchAPI(lines_per_poll=args.lines_per_poll).start(port=args.port)
    host, port = server._server.server_address[:2]
    print(f"port {port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
