"""The teacher: any OpenAI-compatible chat endpoint, with a request cache and token accounting.

Retries and timeouts are the ``openai`` client's own (``max_retries``); concurrency is an
``asyncio.Semaphore``. DeepSeek-R1's ``reasoning_content`` field, or a ``<think>`` block in the
content, becomes the reasoning.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class TeacherReply:
    content: str  # the text after the reasoning
    reasoning: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    cached: bool = False


@dataclass
class Usage:
    """Tokens and cost of the calls that reached the server (cache hits cost nothing)."""

    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


def _split_think(content: str) -> tuple[str, str]:
    """(text of the ``<think>`` block, the rest) of ``content``; ("", content) without one."""
    close = content.rfind("</think>")
    if close >= 0:
        return content[:close].replace("<think>", "", 1).strip(), content[close + len("</think>") :].strip()
    opened = content.find("<think>")
    if opened >= 0:  # never closed: all of it is reasoning
        return content[opened + len("<think>") :].strip(), ""
    return "", content.strip()


def split_reasoning(content: str, reasoning: str | None = None) -> tuple[str, str]:
    """(reasoning, rest). A separate ``reasoning_content`` is the reasoning; a ``<think>`` block in
    ``content`` is reasoning too (some R1 servers send both), so it never reaches the ranking."""
    thought, rest = _split_think(content)
    if not reasoning:
        return thought, rest
    reasoning = reasoning.strip()
    if thought and thought != reasoning:
        reasoning = f"{reasoning}\n\n{thought}"
    return reasoning, rest


class RequestCache:
    """Replies keyed by the sha256 of the request, appended to one JSONL file."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] = {}
        if self.path and self.path.exists():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        row = json.loads(line)
                        self._data[row["key"]] = row["reply"]

    @staticmethod
    def key(request: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        return self._data.get(key)

    def put(self, key: str, reply: dict[str, Any]) -> None:
        self._data[key] = reply
        if self.path:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"key": key, "reply": reply}, ensure_ascii=False) + "\n")


class Teacher:
    """Chat completions from ``base_url`` (``model`` names the served model)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "EMPTY",
        concurrency: int = 4,
        max_retries: int = 5,
        timeout: float = 600.0,
        cache: str | Path | None = None,
        price_prompt: float = 0.0,
        price_completion: float = 0.0,
        tokenizer: Any = None,
    ) -> None:
        from openai import AsyncOpenAI

        from reasonrank_plugins.backends.rendering import ChatRenderer, load_tokenizer

        self.client = AsyncOpenAI(
            base_url=base_url, api_key=api_key, max_retries=max_retries, timeout=timeout
        )
        self.model = model
        # renders the prompt of a forced answer (a prefix continued through /v1/completions)
        self.tokenizer = load_tokenizer(tokenizer) if tokenizer is not None else None
        self.renderer = ChatRenderer(self.tokenizer) if self.tokenizer is not None else None
        self.cache = RequestCache(cache)
        self.price = (price_prompt, price_completion)  # USD per million tokens
        self.usage = Usage()
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
        prefix: str = "",
        stop: list[str] | None = None,
    ) -> TeacherReply:
        """A chat completion; with ``prefix``, the assistant turn continues from it (rendered with
        ``tokenizer``'s chat template and sent to ``/v1/completions``) and ``content`` is the
        continuation only."""
        request: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "temperature": temperature}
        if seed is not None:
            request["seed"] = seed
        if stop:
            request["stop"] = stop
        if prefix:
            if self.renderer is None:
                raise ValueError("continuing an assistant prefix renders the prompt locally: pass tokenizer=")
            request["prompt"] = self.renderer.render(messages, prefix)
        else:
            request["messages"] = messages
        key = self.cache.key(request)
        hit = self.cache.get(key)
        if hit is not None:
            self.usage.cached += 1
            return TeacherReply(**{**hit, "cached": True})
        async with self._slots:
            if prefix:
                response = await self.client.completions.create(**request)
            else:
                response = await self.client.chat.completions.create(**request)
        choice = response.choices[0]
        if prefix:
            reasoning, content = "", choice.text or ""
        else:
            raw_reasoning = getattr(choice.message, "reasoning_content", None) or (
                (choice.message.model_extra or {}).get("reasoning_content")
            )
            reasoning, content = split_reasoning(choice.message.content or "", raw_reasoning)
        usage = response.usage
        reply = TeacherReply(
            content=content,
            reasoning=reasoning,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason or "stop",
        )
        self.usage.calls += 1
        self.usage.prompt_tokens += reply.prompt_tokens
        self.usage.completion_tokens += reply.completion_tokens
        self.usage.cost_usd += self.cost(reply)
        self.cache.put(key, {k: v for k, v in asdict(reply).items() if k != "cached"})
        return reply

    def cost(self, reply: TeacherReply) -> float:
        return (reply.prompt_tokens * self.price[0] + reply.completion_tokens * self.price[1]) / 1e6

    async def close(self) -> None:
        await self.client.close()
