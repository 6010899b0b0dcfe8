"""Text -> unit vectors: a sentence-transformers model in this process, or an OpenAI-compatible
`/v1/embeddings` endpoint.

Vectors come back L2-normalised, so a dot product is the cosine similarity. numpy is used when it
is installed (it comes with the train extra); without it the endpoint path still works, on lists.
A text given twice in one call is embedded once. A local model reads at most max_seq_length tokens:
a longer text is cut to that window before it is tokenised (`model_inputs`), so a 32k-token document
costs what its first 256 tokens cost, and texts that differ only past the window are one input.
"""

import math
import os
import re
from pathlib import Path
from typing import Any, Optional, Sequence

import msgspec

from synthgen.errors import UNDECODABLE, BadInput, RunStopped
from synthgen.models import DEFAULT_EMBEDDING_MODEL, INSTALL_HINT, default_embedding_model_path

try:
    import numpy as np
except ImportError:  # the core install: the endpoint path works on plain lists
    np = None  # type: ignore[assignment]

PLACEHOLDER_KEY = "unused"  # what a local server gets when no key is given


class Embedder:
    name: str = ""

    def embed(self, texts: list[str]) -> Any:
        """One unit vector per text, in order: a float32 matrix with numpy, else a list of lists.

        Each distinct model input is embedded once and its vector given to every text that has it."""
        inputs = self.model_inputs(texts)
        distinct = list(dict.fromkeys(inputs))
        if len(distinct) == len(inputs):
            return self.encode(distinct)
        vectors = self.encode(distinct)
        row = {text: i for i, text in enumerate(distinct)}
        order = [row[text] for text in inputs]
        if np is not None:
            return np.asarray(vectors)[order]
        return [vectors[i] for i in order]

    def encode(self, texts: list[str]) -> Any:
        """One unit vector per text, the texts as given (embed() is the entry point)."""
        raise NotImplementedError

    def model_inputs(self, texts: list[str]) -> list[str]:
        """What of each text decides its vector: the whole text, unless the model reads less of it."""
        return list(texts)

    def describe(self) -> dict:
        return {"model": self.name}

    def identity(self) -> dict:
        """What decides the vectors: two embedders with the same identity give the same vector for a
        text (the embedding cache's key)."""
        return self.describe()


class SentenceTransformerEmbedder(Embedder):
    def __init__(self, model: Optional[str], batch_size: int = 32, max_seq_length: Optional[int] = None,
                 device: str = "cpu"):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise BadInput(f"embedding with a sentence-transformers model needs the train extra: {INSTALL_HINT} "
                           f"(or give --base-url and --model for an embeddings endpoint)") from None
        if model is None:
            source, self.name = str(default_embedding_model_path()), DEFAULT_EMBEDDING_MODEL
        else:
            source, self.name = model, model
        self.source = source
        try:
            self.model = SentenceTransformer(source, device=device)
        except Exception as exc:  # a wrong name or a broken folder: many exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"cannot load the sentence-transformers model {model}: {first}") from None
        if max_seq_length is not None:
            self.model.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.window = TokenWindow.of(self.model)

    def encode(self, texts: list[str]) -> Any:
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False).astype("float32")

    def model_inputs(self, texts: list[str]) -> list[str]:
        return self.window.cut(texts) if self.window is not None else list(texts)

    def describe(self) -> dict:
        return {"model": self.name, "via": "sentence-transformers", "max_seq_length": self.model.max_seq_length}

    def identity(self) -> dict:
        # A folder's weights can be replaced in place (a model trained again into it): its files'
        # sizes and times are part of the identity. A hub name is its own identity.
        folder = Path(self.source)
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        stamp = [[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
        return {**self.describe(), "source": str(folder.resolve()) if files else self.source, "files": stamp}


class EndpointEmbedder(Embedder):
    """POST /v1/embeddings through the openai client, a batch of texts per request."""

    def __init__(self, base_url: str, model: str, api_key: Optional[str] = None, batch_size: int = 32,
                 timeout: float = 120.0):
        import openai

        if not base_url.startswith(("http://", "https://")):
            raise BadInput(f"--base-url {base_url!r} is not an http(s) URL")
        key = api_key or os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_KEY
        self.client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=3)
        self.name, self.base_url, self.batch_size = model, base_url, batch_size

    def encode(self, texts: list[str]) -> Any:
        import openai

        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            try:
                # The raw body, decoded here: the client's own parsing builds an object per number
                # (three quarters of curate's time against a fast endpoint, bench/curate_scale.py).
                raw = self.client.embeddings.with_raw_response.create(model=self.name, input=batch,
                                                                      encoding_format="float")
                data = sorted(msgspec.json.decode(raw.content, type=_EmbeddingsBody).data, key=lambda item: item.index)
            except UNDECODABLE as exc:  # not JSON, or not the shape of embeddings
                raise RunStopped(f"the embeddings endpoint {self.base_url} answered something else than "
                                 f"embeddings: {exc}") from None
            except openai.APIStatusError as exc:
                raise RunStopped(f"the embeddings endpoint {self.base_url} answered {exc.status_code}: "
                                 f"{_error_message(exc)}") from None
            except openai.APIConnectionError as exc:
                raise RunStopped(f"cannot reach the embeddings endpoint {self.base_url}: {exc}") from None
            if len(data) != len(batch):
                raise RunStopped(f"the embeddings endpoint returned {len(data)} vectors for {len(batch)} texts")
            rows.extend(item.embedding for item in data)
        if rows and len({len(r) for r in rows}) != 1:
            raise RunStopped("the embeddings endpoint returned vectors of different sizes")
        return normalise(rows)

    def describe(self) -> dict:
        return {"model": self.name, "via": "embeddings endpoint", "base_url": self.base_url}


class TokenWindow:
    """The first `tokens` tokens of a text, as a shorter text: what the model's own truncation keeps.

    A text is cut at the first white space after its `tokens`-th token (offsets of a fast tokenizer
    over a prefix of the text, grown until that white space is inside it). Tokenizers split words at
    white space, so the cut text's tokens begin with the whole text's first `tokens` tokens, and the
    model's truncation, which keeps the first max_seq_length, gives it the same input. A text with no
    white space after its window is kept whole: never cutting is always right, only slower.
    """

    def __init__(self, tokenizer: Any, tokens: int):
        self.tokenizer, self.tokens = tokenizer, tokens

    @classmethod
    def of(cls, model: Any) -> Optional["TokenWindow"]:
        """The window of a sentence-transformers model, or None when its text cannot be cut safely
        (no fast tokenizer with offsets, truncation from the left, no length limit)."""
        tokenizer = getattr(model, "tokenizer", None)
        limit = getattr(model, "max_seq_length", None)
        if (tokenizer is None or not getattr(tokenizer, "is_fast", False) or not limit
                or getattr(tokenizer, "truncation_side", "right") != "right"):
            return None
        try:
            tokens = limit - tokenizer.num_special_tokens_to_add(pair=False)
        except (AttributeError, TypeError, ValueError):
            return None
        return cls(tokenizer, tokens) if tokens > 0 else None

    def cut(self, texts: list[str]) -> list[str]:
        result = list(texts)
        # A token is rarely longer than 8 characters: most texts need one pass over a prefix.
        pending = [i for i, text in enumerate(texts) if len(text) > self.tokens]
        size = self.tokens * 8 + 64
        while pending:
            prefixes = [texts[i][:size] for i in pending]
            offsets = self.tokenizer(prefixes, add_special_tokens=False, return_offsets_mapping=True,
                                     verbose=False)["offset_mapping"]
            again = []
            for i, prefix, spans in zip(pending, prefixes, offsets):
                # White space inside the prefix after the last token kept: every word before it is
                # whole there, so it was tokenised as in the whole text.
                end = _WHITE_SPACE.search(prefix, spans[self.tokens - 1][1]) if len(spans) >= self.tokens else None
                if end:
                    result[i] = prefix[:end.start()]
                elif len(prefix) < len(texts[i]):
                    again.append(i)  # too few tokens, or the last one kept is in a word the prefix cuts
            pending, size = again, size * 4
        return result


_WHITE_SPACE = re.compile(r"\s")


class _Embedding(msgspec.Struct):
    index: int
    embedding: list[float]


class _EmbeddingsBody(msgspec.Struct):
    """What synthgen reads of a /v1/embeddings answer."""

    data: list[_Embedding]


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(exc)


def open_embedder(model: Optional[str], base_url: Optional[str], api_key: Optional[str], batch_size: int,
                  max_seq_length: Optional[int]) -> Embedder:
    """An endpoint when --base-url is given (then --model names the served model), else a local model."""
    if base_url:
        if not model:
            raise BadInput("--base-url needs --model: the name of the embedding model the endpoint serves")
        return EndpointEmbedder(base_url, model, api_key, batch_size)
    if api_key:
        raise BadInput("--api-key is for an embeddings endpoint: give --base-url too")
    if model is not None and Path(model).exists() and not Path(model).is_dir():
        raise BadInput(f"--model {model} is a file: give a sentence-transformers folder or model name")
    return SentenceTransformerEmbedder(model, batch_size, max_seq_length)


# -- similarity --------------------------------------------------------------------------------------


def normalise(rows: Sequence[Sequence[float]]) -> Any:
    if np is not None:
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.maximum(norms, 1e-12)
    result = []
    for row in rows:
        norm = math.sqrt(sum(x * x for x in row)) or 1e-12
        result.append([x / norm for x in row])
    return result


def stack(parts: list[Any]) -> Any:
    """Join matrices returned by embed() in order."""
    if np is not None:
        parts = [np.asarray(p, dtype=np.float32) for p in parts if len(p)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
    return [row for part in parts for row in part]


def similarities(query: Any, documents: Any) -> list[float]:
    """Dot products of one unit vector with each row of documents."""
    if np is not None:
        return (np.asarray(documents) @ np.asarray(query)).tolist()
    return [sum(a * b for a, b in zip(query, row)) for row in documents]
