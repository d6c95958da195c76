"""The interface every backend implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass

#: Greedy decoding with every sampling field pinned, so a server's or model's
#: ``generation_config.json`` defaults (Qwen2.5 sets ``repetition_penalty`` 1.05; llama.cpp servers
#: default ``repeat_penalty`` to 1.1) never change the output. ``top_k`` 0 means "off" here; each
#: backend writes it the way its library spells "off".
GREEDY: dict[str, float | int] = {
    "temperature": 0.0,
    "top_p": 1.0,
    "top_k": 0,
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}


@dataclass
class GenerationRequest:
    """One completion: chat ``messages`` rendered with the generation prompt, then ``prefix``.

    A non-empty ``prefix`` continues the assistant turn (used to force an answer). ``priority``
    orders requests in engines that schedule by priority (vLLM ``scheduling_policy="priority"``):
    lower runs first; the engine gives older queries and forced answers lower values.
    """

    messages: list[dict[str, str]]
    max_tokens: int
    prefix: str = ""
    stop: tuple[str, ...] = ()
    priority: int = 0


@dataclass
class Generation:
    text: str  # the continuation after the prefix (stop strings removed)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "length" when max_tokens ran out
    reasoning: str | None = None  # set when a server returns the reasoning separately


class Backend(abc.ABC):
    """Generates completions; batches concurrent ``generate`` calls when it can.

    ``context_length`` is the most tokens the model attends to (prompt plus generation), ``None``
    when unknown; the engine fits each window into it. ``capacity`` is how many requests the backend
    runs at once (a batch, an engine's sequence slots, a server's concurrency), ``None`` when
    unbounded or unknown; the engine bounds its active queries from it.
    """

    name: str = "backend"
    model_name: str = ""
    context_length: int | None = None
    capacity: int | None = None

    @abc.abstractmethod
    async def generate(self, request: GenerationRequest) -> Generation:
        """Generate one completion. Called concurrently from the engine's event loop."""

    async def prepare(self) -> None:
        """Learn what needs the model or server before the first window (e.g. its context length);
        awaited once per ``rank`` call on the engine loop. Idempotent."""

    def truncate(self, text: str, max_tokens: int) -> str:
        """Cut ``text`` to ``max_tokens`` tokens of this model's tokenizer."""
        return text

    def count_tokens(self, request: GenerationRequest) -> int | None:
        """Tokens of the rendered prompt (chat template, generation prompt and prefix); ``None``
        when this backend cannot count them."""
        return None

    def close(self) -> None:
        """Free the model (GPU memory included). Idempotent."""
