"""Choosing and opening the LLM client a run uses."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from synthgen.config import Config, LLMConfig
from synthgen.errors import BadInput
from synthgen.llm import LLMClient

if TYPE_CHECKING:
    from synthgen.llm.openai_client import OpenAICompatibleClient

# The brainstorm's schema name (brainstorm.py); the local caps are keyed by kind or "brainstorm".
BRAINSTORM_SCHEMA = "task_list"


@dataclass
class Backend:
    name: str  # "openai" or "local"
    client: LLMClient
    description: str  # one line for the user and the manifest; never the key
    endpoint: str  # base URL (several, comma-separated) or model file
    model_digest: Optional[str] = None  # SHA-256 of the local model file; None for an endpoint


def choose(config: Config) -> str:
    """auto: the OpenAI-compatible client when an endpoint or a key is configured, else the local model."""
    llm = config.llm
    if llm.backend != "auto":
        return llm.backend
    return "openai" if (llm.base_url or llm.endpoints or llm.api_key) else "local"


def open_backend(config: Config) -> Backend:
    llm = config.llm
    if choose(config) != "openai":
        return open_local(config)
    if len(llm.endpoints) > 1:
        return open_pool(config)
    client = _endpoint_client(llm, llm.endpoints[0].base_url if llm.endpoints else llm.base_url)
    return Backend("openai", client, f"OpenAI-compatible endpoint {client.base_url}, model {llm.model}", client.base_url)


def open_pool(config: Config) -> Backend:
    """Several endpoints as one client (synthgen.llm.pool)."""
    from synthgen.llm.pool import Endpoint, EndpointPool

    llm = config.llm
    endpoints = [Endpoint(e.base_url, _endpoint_client(llm, e.base_url), e.concurrency or config.generate.concurrency)
                 for e in llm.endpoints]
    pool = EndpointPool(endpoints, llm.bench_after, llm.bench_seconds)
    each = ", ".join(f"{e.name} ({e.concurrency} at once)" for e in endpoints)
    description = f"{len(endpoints)} OpenAI-compatible endpoints: {each}; model {llm.model}"
    return Backend("openai", pool, description, ", ".join(e.name for e in endpoints))


def _endpoint_client(llm: LLMConfig, base_url: str) -> "OpenAICompatibleClient":
    # Imported here: the openai package takes most of a second to import.
    from synthgen.llm.openai_client import OpenAICompatibleClient

    return OpenAICompatibleClient(
        model=llm.model,
        base_url=base_url,
        api_key=llm.api_key.get_secret_value() if llm.api_key else "",
        temperature=llm.temperature,
        top_p=llm.top_p,
        timeout=llm.timeout,
        max_attempts=llm.max_attempts,
        retry_budget=llm.retry_budget,
        structured_output=llm.structured_output,
        rpm=llm.rpm,
        tpm=llm.tpm,
    )


def open_local(config: Config) -> Backend:
    """The embedded model: llama.cpp in this process (the `local` extra), loaded on the first request."""
    # Imported here: the local extra is optional, and the OpenAI path must not need it.
    from synthgen.llm.local import LLAMA_HINT, LocalLlamaClient, LocalSettings, llama_cpp_available
    from synthgen.llm.model_file import resolve_model

    if not llama_cpp_available():
        raise BadInput(
            f"no endpoint configured (--base-url/OPENAI_BASE_URL or OPENAI_API_KEY), and {LLAMA_HINT}"
        )
    model_file = resolve_model(config.llm.model_path)
    caps = {(BRAINSTORM_SCHEMA if name == "brainstorm" else name): cap for name, cap in config.local.max_tokens.items()}
    settings = LocalSettings(
        **config.local.model_dump(exclude={"max_tokens"}),  # [local] and LocalSettings share their names
        # A list answer is a brainstorm: the grammar closes it after the num_tasks asked for.
        max_list_items=config.brainstorm.num_tasks,
        max_tokens=caps,
    )
    client = LocalLlamaClient(
        model_file, settings, temperature=config.llm.temperature, top_p=config.llm.top_p, seed=config.generate.seed
    )
    origin = "built-in" if model_file.builtin else "--model-path"
    description = (
        f"embedded model {model_file.name} ({origin}, local, CPU, {settings.threads} threads, "
        f"{settings.parallel} sequences at once)"
    )
    return Backend("local", client, description, str(model_file.path), model_file.sha256)
