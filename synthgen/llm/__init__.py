"""LLM clients behind one async interface. Knows nothing of kinds or prompts."""

from synthgen.llm.base import Completion, EndpointCounts, LLMClient, RequestFailed, StopRun, Usage

__all__ = ["Completion", "EndpointCounts", "LLMClient", "RequestFailed", "StopRun", "Usage"]
