"""OpenAI-compatible servers (vLLM ``serve``, SGLang, llama.cpp servers, DeepSeek API), one or many."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Literal

from .base import Backend, Generation, GenerationRequest
from .rendering import ChatRenderer, find_tokenizer, load_tokenizer
from .replicas import Replica, ReplicaPool

logger = logging.getLogger(__name__)

ForcedAnswer = Literal["auto", "completions", "chat"]
CHARS_PER_TOKEN = 4  # truncation estimate when no tokenizer loads


class OpenAIBackend(Backend):
    """Windows go to ``/v1/chat/completions`` (greedy), through ``openai.AsyncOpenAI`` and its
    built-in retries with backoff on 429, 5xx and connection errors.

    ``model`` is the name the server serves; ``"auto"`` takes the first id from ``/v1/models``.
    ``base_url`` is one URL or a list: with several, each window goes to the healthy replica with
    the fewest outstanding requests (``max_concurrency`` per replica), and a window whose replica
    dies (connection error, 5xx or 429 left after the client's retries) is marked unhealthy and
    the window is sent again to another replica. Unhealthy replicas are probed on ``/v1/models``
    every ``probe_interval`` s; with no healthy replica, windows wait up to ``failover_timeout`` s
    for one to come back (so a single restarted server also finishes the run). ``replicas`` holds
    each server's health and counters.

    Reasoning a server returns apart (``reasoning_content`` or ``reasoning``, e.g. vLLM with a
    reasoning parser, DeepSeek-R1) goes to ``Generation.reasoning``.

    Forced answers (a request with a ``prefix``) must continue the model's own assistant turn:

    - ``forced_answer="completions"`` renders the prompt here with the tokenizer's chat template
      (generation prompt, then the prefix) and sends it to ``/v1/completions``. This works on every
      server with that endpoint (vLLM, SGLang, llama.cpp); llama-cpp-python's chat endpoint always
      opens a new assistant turn, so it needs this mode.
    - ``forced_answer="chat"`` sends the prefix as a trailing assistant message with
      ``continue_final_message=True, add_generation_prompt=False`` (vLLM, SGLang).
    - ``"auto"`` (default) is ``"completions"`` when a tokenizer is known, else ``"chat"``.

    ``tokenizer`` (a local folder, a hub id or a loaded transformers tokenizer) also gives exact
    passage truncation and prompt token counts. By default it is loaded from ``model`` when that is
    a local folder or a hub id in the local Hugging Face cache (never downloaded). When neither
    gives one, passages are cut at about ``CHARS_PER_TOKEN`` characters per token, on a word
    boundary, with a warning. ``extra_body`` is added to every request (e.g.
    ``{"chat_template_kwargs": {...}}``); ``client_options`` go to ``AsyncOpenAI``. The API key falls back to ``OPENAI_API_KEY``, else the dummy ``"EMPTY"``.
    """

    name = "openai"

    def __init__(
        self,
        model: str = "auto",
        *,
        base_url: str | list[str],
        api_key: str | None = None,
        max_concurrency: int = 16,
        timeout: float = 600.0,
        max_retries: int = 2,
        tokenizer: Any = None,
        forced_answer: ForcedAnswer = "auto",
        extra_body: dict[str, Any] | None = None,
        probe_interval: float = 3.0,
        failover_timeout: float = 120.0,
        **client_options: Any,
    ) -> None:
        try:
            import openai
        except ImportError as exc:
            raise ImportError("the openai backend needs: pip install 'reasonrank-plugins[openai]'") from exc
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
            raise ValueError(f"base_url must be an http(s) URL or a list of them, got {base_url!r}")
        if forced_answer not in ("auto", "completions", "chat"):
            raise ValueError(f"forced_answer must be 'auto', 'completions' or 'chat', got {forced_answer!r}")
        self._warned_estimate = False
        if tokenizer is not None:
            self.tokenizer = load_tokenizer(tokenizer)
        elif model != "auto":
            self.tokenizer, reason = find_tokenizer(model)
            if self.tokenizer is None:
                self._warn_estimate(reason)
        else:
            self.tokenizer = None
        self.renderer = ChatRenderer(self.tokenizer) if self.tokenizer is not None else None
        if forced_answer == "auto":
            forced_answer = "completions" if self.tokenizer is not None else "chat"
        if forced_answer == "completions" and self.tokenizer is None:
            raise ValueError("forced_answer='completions' renders the prompt locally: pass tokenizer=")
        self.forced_answer = forced_answer
        self.model_name = model
        self.extra_body = dict(extra_body or {})
        self._resolving: asyncio.Future[str] | None = None
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"

        def connect(url: str) -> Any:
            return openai.AsyncOpenAI(
                base_url=url.rstrip("/"),
                api_key=key,
                timeout=timeout,
                max_retries=max_retries,
                **client_options,
            )

        self.pool: ReplicaPool[Any] = ReplicaPool(
            urls,
            connect,
            _probe,
            retryable=(openai.APIConnectionError, openai.InternalServerError, openai.RateLimitError),
            max_concurrency=max_concurrency,
            probe_interval=probe_interval,
            failover_timeout=failover_timeout,
        )

    @property
    def replicas(self) -> list[Replica]:
        return self.pool.replicas

    async def generate(self, request: GenerationRequest) -> Generation:
        if self.model_name == "auto":
            if self._resolving is None:  # one /v1/models call, however many windows start at once
                self._resolving = asyncio.ensure_future(self.pool.run(_served_model))
            try:
                self.model_name = await asyncio.shield(self._resolving)
            except Exception:
                self._resolving = None  # let a later window ask again
                raise
        if request.prefix and self.forced_answer == "completions":
            return await self.pool.run(lambda client: self._complete(client, request))
        return await self.pool.run(lambda client: self._chat(client, request))

    async def _chat(self, client: Any, request: GenerationRequest) -> Generation:
        messages: list[dict[str, str]] = list(request.messages)
        body = dict(self.extra_body)
        if request.prefix:
            messages.append({"role": "assistant", "content": request.prefix})
            body.update(continue_final_message=True, add_generation_prompt=False)
        response = await client.chat.completions.create(
            model=self.model_name, messages=messages, **self._sampling(request), extra_body=body or None
        )
        choice = response.choices[0]
        text = choice.message.content or ""
        reasoning = _reasoning(choice.message)
        if request.prefix:  # everything after the prefix is the answer, however a parser split it
            text, reasoning = (reasoning or "") + text, None
        return _generation(text, response.usage, choice.finish_reason, reasoning)

    async def _complete(self, client: Any, request: GenerationRequest) -> Generation:
        response = await client.completions.create(
            model=self.model_name,
            prompt=self.render(request),
            **self._sampling(request),
            extra_body=self.extra_body or None,
        )
        choice = response.choices[0]
        return _generation(choice.text or "", response.usage, choice.finish_reason)

    @staticmethod
    def _sampling(request: GenerationRequest) -> dict[str, Any]:
        """Greedy, bounded by the request's budget, with its stop strings."""
        options: dict[str, Any] = {"max_tokens": request.max_tokens, "temperature": 0.0}
        if request.stop:
            options["stop"] = list(request.stop)
        return options

    def render(self, request: GenerationRequest) -> str:
        """The prompt sent to ``/v1/completions``: without a leading BOS, which the server adds."""
        if self.renderer is None:
            raise ValueError("rendering the prompt locally needs a tokenizer: pass tokenizer=")
        return self.renderer.render(request.messages, request.prefix)

    def count_tokens(self, request: GenerationRequest) -> int | None:
        return self.renderer.count(request) if self.renderer is not None else None

    def _warn_estimate(self, reason: str) -> None:
        if not self._warned_estimate:
            self._warned_estimate = True
            logger.warning(
                "openai backend without tokenizer (%s): truncating passages at ~%d characters per token; "
                "pass tokenizer=",
                reason,
                CHARS_PER_TOKEN,
            )

    def truncate(self, text: str, max_tokens: int) -> str:
        if self.renderer is not None:
            return self.renderer.truncate(text, max_tokens)
        self._warn_estimate(f"none given or found for model {self.model_name!r}")
        limit = max_tokens * CHARS_PER_TOKEN
        if len(text) <= limit:
            return text
        cut = text[:limit]
        space = cut.rfind(" ")
        return cut[:space] if space > limit // 2 else cut

    def close(self) -> None:
        self.pool.close(lambda client: client.close())


async def _probe(client: Any) -> bool:
    """Alive when the server answers ``/models`` or accepts the connection but is busy (llama-cpp-python
    answers only between generations); dead on a refused connection or a 5xx."""
    import openai

    try:
        await client.with_options(max_retries=0, timeout=5.0).models.list()
    except openai.APITimeoutError:
        return True
    except openai.APIStatusError as exc:
        return exc.status_code < 500
    except openai.APIConnectionError:
        return False
    return True


async def _served_model(client: Any) -> str:
    page = await client.models.list()
    if not page.data:
        raise ValueError("the server lists no models: pass model=")
    logger.info("openai backend: the server serves %s", page.data[0].id)
    return page.data[0].id


def _reasoning(message: Any) -> str | None:
    extra = getattr(message, "model_extra", None) or {}
    for field in ("reasoning_content", "reasoning"):
        value = getattr(message, field, None) or extra.get(field)
        if isinstance(value, str) and value:
            return value
    return None


def _generation(text: str, usage: Any, finish_reason: str | None, reasoning: str | None = None) -> Generation:
    return Generation(
        text=text,
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        finish_reason="length" if finish_reason == "length" else "stop",
        reasoning=reasoning,
    )
