"""LLM clients behind one async interface. Knows nothing of kinds or prompts."""

from synthgen.llm.base import Completion, LLMClient, RequestFailed, StopRun, Usage

__all__ = ["Completion", "LLMClient", "RequestFailed", "StopRun", "Usage"]
