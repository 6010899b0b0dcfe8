"""A real OpenAI-compatible /v1/embeddings server on 127.0.0.1 with deterministic vectors.

The vector of a text is chosen by a function of the text (`vectorize`), so a test knows exactly
which document each query should rank first. Two are provided:

- `bag_of_words(vocabulary)`: counts of each vocabulary word (lower case, punctuation stripped);
- `passkey_reader(window)`: reads only the first `window` words, as a model with a short context
  would, and returns a one-hot vector for the person named in "passkey of <First Last>" there
  (the zero vector when no one is named within the window).
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

Vectorize = Callable[[str], list[float]]


def bag_of_words(vocabulary: list[str]) -> Vectorize:
    def vectorize(text: str) -> list[float]:
        words = re.findall(r"[a-z]+", text.lower())
        return [float(words.count(v)) for v in vocabulary]

    return vectorize


def passkey_reader(window: int, dimensions: int = 4096) -> Vectorize:
    people: dict[str, int] = {}
    lock = threading.Lock()

    def vectorize(text: str) -> list[float]:
        seen = " ".join(text.split()[:window])
        vector = [0.0] * dimensions
        match = re.search(r"passkey of ([A-Z][a-z]+ [A-Z][a-z]+)", seen)
        if match:
            with lock:
                index = people.setdefault(match.group(1), len(people))
            assert index < dimensions, "more people than dimensions"
            vector[index] = 1.0
        return vector

    return vectorize


class FakeEmbeddings:
    def __init__(self, vectorize: Vectorize, model: str = "fake-embed"):
        self.vectorize = vectorize
        self.model = model
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self._server: Optional[ThreadingHTTPServer] = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def handle(self, path: str, body: dict) -> tuple[int, dict]:
        if not path.endswith("/embeddings"):
            return 404, {"error": {"message": f"no route {path}", "type": "not_found"}}
        if body.get("model") != self.model:
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist", "type": "not_found"}}
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": self.vectorize(t)} for i, t in enumerate(texts)]
        data.reverse()  # the client must order by index, not by position
        tokens = sum(len(t.split()) for t in texts)
        return 200, {"object": "list", "data": data, "model": self.model,
                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def start(self) -> "FakeEmbeddings":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                status, reply = fake.handle(self.path, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
