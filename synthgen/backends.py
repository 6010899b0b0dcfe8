"""Choosing and opening the LLM client a run uses."""

from dataclasses import dataclass

from synthgen.config import Config
from synthgen.errors import BadInput
from synthgen.llm import LLMClient
from synthgen.llm.openai_client import OpenAICompatibleClient


@dataclass
class Backend:
    name: str  # "openai" or "local"
    client: LLMClient
    description: str  # one line for the user and the manifest; never the key
    endpoint: str  # base URL or model file


def choose(config: Config) -> str:
    """auto: the OpenAI-compatible client when an endpoint or a key is configured, else the local model."""
    llm = config.llm
    if llm.backend != "auto":
        return llm.backend
    return "openai" if (llm.base_url or llm.api_key) else "local"


def open_backend(config: Config) -> Backend:
    llm = config.llm
    if choose(config) == "openai":
        client = OpenAICompatibleClient(
            model=llm.model,
            base_url=llm.base_url,
            api_key=llm.api_key.get_secret_value() if llm.api_key else "",
            temperature=llm.temperature,
            top_p=llm.top_p,
            timeout=llm.timeout,
            max_attempts=llm.max_attempts,
            retry_budget=llm.retry_budget,
            structured_output=llm.structured_output,
        )
        return Backend("openai", client, f"OpenAI-compatible endpoint {client.base_url}, model {llm.model}", client.base_url)
    raise BadInput(
        "no endpoint configured and the embedded model is not available: pass --base-url/--model "
        "or set OPENAI_API_KEY"
    )
