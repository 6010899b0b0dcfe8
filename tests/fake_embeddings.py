"""A real OpenAI-compatible /v1/embeddings server on 127.0.0.1 with deterministic vectors.

The vector of a text is chosen by a function of the text (`vectorize`), so a test knows exactly
which document each query should rank first. Two are provided:

- `bag_of_words(vocabulary)`: counts of each vocabulary word (lower case, punctuation stripped);
- `passkey_reader(window)`: reads only the first `window` words, as a model with a short context
  would, and returns a one-hot vector for the person named in "passkey of <First Last>" there
  (the zero vector when no one is named within the window).
"""

import re
import threading
from typing import Callable

import pytest

from loopback import LoopbackServer

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


class FakeEmbeddings(LoopbackServer):
    def __init__(self, vectorize: Vectorize, model: str = "fake-embed"):
        super().__init__()
        self.vectorize = vectorize
        self.model = model
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []

    def handle(self, path: str, body: dict, headers: dict[str, str]) -> tuple[int, dict, dict]:
        self.requests.append(body)
        self.headers.append(headers)
        if not path.endswith("/embeddings"):
            return 404, {}, {"error": {"message": f"no route {path}", "type": "not_found"}}
        if body.get("model") != self.model:
            return 404, {}, {"error": {"message": f"The model `{body.get('model')}` does not exist", "type": "not_found"}}
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": self.vectorize(t)} for i, t in enumerate(texts)]
        data.reverse()  # the client must order by index, not by position
        tokens = sum(len(t.split()) for t in texts)
        return 200, {}, {"object": "list", "data": data, "model": self.model,
                     "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


@pytest.fixture
def serve():
    """start(vectorize) -> a running FakeEmbeddings; every one started is stopped after the test."""
    servers = []

    def start(vectorize: Vectorize) -> FakeEmbeddings:
        server = FakeEmbeddings(vectorize).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
