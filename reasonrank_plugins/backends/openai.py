"""OpenAI-compatible servers (vLLM ``serve``, SGLang, llama.cpp servers, DeepSeek API), one or many."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Literal
from urllib.parse import urlsplit

from ..prompt import finalize_messages
from .base import GREEDY, Backend, Generation, GenerationRequest
from .rendering import ChatRenderer, find_tokenizer, load_tokenizer
from .replicas import Replica, ReplicaPool

logger = logging.getLogger(__name__)

ForcedAnswer = Literal["auto", "completions", "chat"]
Server = Literal["auto", "vllm", "sglang", "llamacpp", "openai"]
CHARS_PER_TOKEN = 4  # truncation estimate when no tokenizer loads


class OpenAIBackend(Backend):
    """Windows go to ``/v1/chat/completions`` (greedy), through ``openai.AsyncOpenAI`` and its
    built-in retries with backoff on 429, 5xx and connection errors.

    ``model`` is the name the server serves; ``"auto"`` takes the first id from ``/v1/models``.
    ``max_concurrency`` (default 64) is how many requests each replica gets at once: set it to what
    the server batches (vLLM ``--max-num-seqs``, SGLang ``--max-running-requests``; 1 for a
    one-slot llama.cpp server); ``capacity`` is that times the number of replicas.
    ``base_url`` is one URL or a list: with several, each window goes to the healthy replica with
    the fewest outstanding requests (``max_concurrency`` per replica), and a window whose replica
    dies (connection error, 5xx or 429 left after the client's retries) is marked unhealthy and
    the window is sent again to another replica. Unhealthy replicas are probed on ``/v1/models``
    every ``probe_interval`` s; with no healthy replica, windows wait up to ``failover_timeout`` s
    for one to come back (so a single restarted server also finishes the run). ``replicas`` holds
    each server's health and counters.

    Reasoning a server returns apart (``reasoning_content`` or ``reasoning``, e.g. vLLM with a
    reasoning parser, DeepSeek-R1) goes to ``Generation.reasoning``.

    Every request pins all of :data:`~.base.GREEDY`, in the field names ``server`` reads (see
    :func:`greedy_fields`): ``"vllm"``, ``"sglang"``, ``"llamacpp"`` (llama.cpp's ``llama-server``
    and llama-cpp-python) or ``"openai"`` (only the OpenAI-standard fields, for hosted APIs such as
    OpenAI and DeepSeek, which reject unknown ones). ``"auto"`` (default) reads the server from
    ``owned_by`` in ``/v1/models``; a server it does not know gets the union the open-source servers
    accept. ``context_length`` is the model's context; by default the ``max_model_len`` that vLLM
    and SGLang report in ``/v1/models``. :meth:`prepare` makes that one ``/v1/models`` call (the
    first ``generate`` does too) when ``model``, ``server`` or ``context_length`` is left to it.

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
    ``{"chat_template_kwargs": {...}}``); ``client_options`` go to ``AsyncOpenAI``. The API key
    falls back to ``OPENAI_API_KEY``, else the dummy ``"EMPTY"``.
    """

    name = "openai"

    def __init__(
        self,
        model: str = "auto",
        *,
        base_url: str | list[str],
        api_key: str | None = None,
        max_concurrency: int = 64,
        server: Server = "auto",
        context_length: int | None = None,
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
        if server not in SERVERS:
            raise ValueError(f"server must be 'auto' or one of {sorted(SERVERS)}, got {server!r}")
        if context_length is not None and (not isinstance(context_length, int) or context_length < 1):
            raise ValueError(f"context_length must be a positive int, got {context_length!r}")
        hosted = [u for u in urls if _hosted(u)]
        self.server = "openai" if server == "auto" and len(hosted) == len(urls) else server
        self.context_length = context_length
        self.capacity = max_concurrency * len(urls)
        self._preparing: asyncio.Future[None] | None = None
        ask_context = context_length is None and self.server in ("auto", "vllm", "sglang")  # max_model_len
        self._prepared = not (model == "auto" or self.server == "auto" or ask_context)
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

    async def prepare(self) -> None:
        """Ask ``/v1/models`` once, however many windows start at once, for what was left to it:
        the served model, the server kind and ``context_length``. Every replica is taken to serve
        the same model on the same server. Only a missing model name makes a failure an error."""
        if self._prepared:
            return
        if self._preparing is None:
            self._preparing = asyncio.ensure_future(self._prepare())
        try:
            await asyncio.shield(self._preparing)
        except Exception:
            self._preparing = None  # let a later window ask again
            raise

    async def _prepare(self) -> None:
        import openai

        try:
            entries = await self.pool.run(_models)
        except openai.APIStatusError as exc:  # e.g. a server without /v1/models
            if self.model_name == "auto":
                raise
            logger.warning("openai backend: /v1/models failed (%s): server and context left unknown", exc)
            self._prepared = True
            return
        if self.model_name == "auto":
            if not entries:
                raise ValueError("the server lists no models: pass model=")
            self.model_name = str(entries[0].get("id"))
            logger.info("openai backend: the server serves %s", self.model_name)
        entry = next((e for e in entries if e.get("id") == self.model_name), entries[0] if entries else {})
        if self.server == "auto":
            self.server = SERVER_OWNERS.get(str(entry.get("owned_by")), "auto")
            logger.info("openai backend: server %s (owned_by=%r)", self.server, entry.get("owned_by"))
        if self.context_length is None and isinstance(entry.get("max_model_len"), int):
            self.context_length = entry["max_model_len"]
        self._prepared = True

    async def generate(self, request: GenerationRequest) -> Generation:
        await self.prepare()
        if request.prefix and self.forced_answer == "completions":
            return await self.pool.run(lambda client: self._complete(client, request))
        return await self.pool.run(lambda client: self._chat(client, request))

    async def _chat(self, client: Any, request: GenerationRequest) -> Generation:
        messages = finalize_messages(request.messages)  # the server renders: the final ftfy pass per message
        body = self._body()
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
            extra_body=self._body() or None,
        )
        choice = response.choices[0]
        return _generation(choice.text or "", response.usage, choice.finish_reason)

    def _sampling(self, request: GenerationRequest) -> dict[str, Any]:
        """The OpenAI-standard greedy fields, bounded by the request's budget, with its stop strings."""
        options: dict[str, Any] = {"max_tokens": request.max_tokens, **greedy_fields(self.server)[0]}
        if request.stop:
            options["stop"] = list(request.stop)
        return options

    def _body(self) -> dict[str, Any]:
        """The server's own greedy fields, then ``extra_body`` (which wins)."""
        return {**greedy_fields(self.server)[1], **self.extra_body}

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


async def _models(client: Any) -> list[dict[str, Any]]:
    """The ``/v1/models`` entries, with the fields servers add (``max_model_len``)."""
    page = await client.models.list()
    return [entry.model_dump() for entry in page.data]


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


# -- greedy in each server's field names ---------------------------------------------------------
# What each server reads, from its source:
# - vLLM (vllm-project/vllm, vllm/entrypoints/openai/engine/protocol.py): ``OpenAIBaseModel`` has
#   ``extra="allow"`` and logs "fields were present in the request but ignored"; the completion and
#   chat requests read ``top_k`` and ``repetition_penalty``, and fill the ones left out from the
#   model's ``generation_config.json``. vllm/sampling_params.py: ``top_k`` -1 is "off" in every
#   version; 0 is "off" only since vLLM 0.9 (PR #17773), earlier versions answer 400. ``/v1/models``
#   entries: ``owned_by: "vllm"``, ``max_model_len``.
# - SGLang (sgl-project/sglang, python/sglang/srt/entrypoints/openai/protocol.py): plain pydantic
#   models, so unknown fields are ignored; ``top_k`` -1 is "off", ``repetition_penalty``;
#   ``owned_by: "sglang"``, ``max_model_len``. sampling/sampling_params.py: temperature 0 is top-k 1.
# - llama-cpp-python (abetlen/llama-cpp-python, llama_cpp/server/types.py): plain pydantic models
#   (unknown fields ignored) with ``repeat_penalty`` 1.1 and ``top_k`` 40 by default; ``top_k`` has
#   ``ge=0`` (-1 is a 422), 0 is "off" in llama.cpp's top-k sampler. llama_cpp/server/app.py:
#   ``owned_by: "me"``, no context length.
# - llama.cpp ``llama-server`` (ggml-org/llama.cpp, tools/server): reads each key with ``json_value``
#   and ignores the rest; ``repeat_penalty``, ``top_k`` (<= 0 is "off"); ``owned_by: "llamacpp"``.
# - The OpenAI API and DeepSeek answer 400 to an unknown argument ("Unrecognized request argument
#   supplied: top_k"), so "openai" sends only the standard fields.
# A server not recognised gets both penalty spellings (each server ignores the other's) and no
# ``top_k``: no value is "off" on all of them (old vLLM rejects 0, llama-cpp-python rejects -1), and
# at temperature 0 every one of them takes the top token whatever ``top_k`` is.
SERVERS = ("auto", "vllm", "sglang", "llamacpp", "openai")
SERVER_OWNERS = {  # /v1/models owned_by -> server
    "vllm": "vllm",
    "sglang": "sglang",
    "llamacpp": "llamacpp",
    "me": "llamacpp",  # llama-cpp-python
    "openai": "openai",
    "openai-internal": "openai",
    "system": "openai",
    "deepseek": "openai",
}
HOSTED = ("api.openai.com", "api.deepseek.com")  # known to reject unknown fields
_STANDARD = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_TOP_K_OFF = {"vllm": -1, "sglang": -1, "llamacpp": 0}
_PENALTY = {"vllm": "repetition_penalty", "sglang": "repetition_penalty", "llamacpp": "repeat_penalty"}


def greedy_fields(server: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """:data:`~.base.GREEDY` for ``server``: the OpenAI-standard fields (client keywords) and the
    server's own ones (request body)."""
    standard = {field: GREEDY[field] for field in _STANDARD}
    if server == "openai":
        return standard, {}
    names = [_PENALTY[server]] if server in _PENALTY else sorted(set(_PENALTY.values()))
    extra: dict[str, Any] = {name: GREEDY["repetition_penalty"] for name in names}
    if server in _TOP_K_OFF:
        extra["top_k"] = GREEDY["top_k"] or _TOP_K_OFF[server]
    return standard, extra


def _hosted(url: str) -> bool:
    return urlsplit(url).hostname in HOSTED
