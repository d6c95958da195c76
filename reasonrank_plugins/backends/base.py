"""The interface every backend implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass


@dataclass
class GenerationRequest:
    """One completion: chat ``messages`` rendered with the generation prompt, then ``prefix``.

    A non-empty ``prefix`` continues the assistant turn (used to force an answer).
    """

    messages: list[dict[str, str]]
    max_tokens: int
    prefix: str = ""
    stop: tuple[str, ...] = ()


@dataclass
class Generation:
    text: str  # the continuation after the prefix (stop strings removed)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "length" when max_tokens ran out
    reasoning: str | None = None  # set when a server returns the reasoning separately


class Backend(abc.ABC):
    """Generates completions; batches concurrent ``generate`` calls when it can."""

    name: str = "backend"
    model_name: str = ""

    @abc.abstractmethod
    async def generate(self, request: GenerationRequest) -> Generation:
        """Generate one completion. Called concurrently from the engine's event loop."""

    def truncate(self, text: str, max_tokens: int) -> str:
        """Cut ``text`` to ``max_tokens`` tokens of this model's tokenizer."""
        return text

    def close(self) -> None:
        """Free the model (GPU memory included). Idempotent."""
