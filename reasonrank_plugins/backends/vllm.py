"""vLLM backend: the async engine (continuous batching) or in-process ``vllm.LLM`` (micro-batched)."""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import itertools
import logging
import os
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from .base import GREEDY, Backend, Generation, GenerationRequest
from .batching import MicroBatcher
from .rendering import ChatRenderer, load_tokenizer

logger = logging.getLogger(__name__)


@dataclass
class VLLMGeneration(Generation):
    cached_tokens: int | None = None  # prompt tokens served from vLLM's prefix cache, when reported


@dataclass
class VLLMStats:
    """Counters over the backend's life; ``peak_in_flight`` is how many requests vLLM held at once."""

    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0


@functools.cache
def greedy_sampling() -> dict[str, Any]:
    """``GREEDY`` as vLLM's ``SamplingParams`` fields, ``min_p`` off too. vLLM spells "top_k off"
    as its default: -1 in older releases, 0 in newer ones."""
    from vllm import SamplingParams

    top_k_off = inspect.signature(SamplingParams).parameters["top_k"].default
    return {**GREEDY, "top_k": top_k_off, "min_p": 0.0}


class VLLMBackend(Backend):
    """A model on vLLM with greedy decoding and prefix caching.

    ``async_engine=True`` (default) runs vLLM's ``AsyncLLMEngine`` on a private event-loop thread:
    ``generate`` may be awaited from any loop, and every call in flight joins its continuous batch.
    ``async_engine=False`` uses ``vllm.LLM`` in process: concurrent calls are gathered into one
    ``llm.generate``.
    ``lora_path`` applies a LoRA adapter to every request. Extra keyword arguments go to vLLM's
    engine arguments (``max_num_seqs``, ``max_lora_rank``, ``trust_remote_code``, ...).

    ``context_length`` and ``capacity`` are the engine's resolved ``max_model_len`` and
    ``max_num_seqs``. With ``scheduling_policy="priority"`` each request's ``priority`` goes to
    vLLM (lower runs first). ``batch_invariant=True`` sets ``VLLM_BATCH_INVARIANT=1`` for this
    process before the engine starts, so a request's greedy output does not depend on what it is
    batched with; vLLM supports it on NVIDIA GPUs of compute capability 8.0 and up (also some AMD
    and Intel GPUs), and it must be on before the first engine of the process starts.
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        dtype: str = "auto",
        enable_prefix_caching: bool = True,
        lora_path: str | None = None,
        async_engine: bool = True,
        tokenizer: str | None = None,
        batch_invariant: bool = False,
        **engine_kwargs: Any,
    ) -> None:
        if batch_invariant:
            os.environ["VLLM_BATCH_INVARIANT"] = "1"  # read by vLLM as the engine starts
        try:
            import vllm.envs
        except ImportError as exc:
            raise ImportError(
                "the vllm backend needs vLLM: pip install 'reasonrank-plugins[vllm]' "
                "(on CPU machines see scripts/vllm-env.sh)"
            ) from exc
        self.batch_invariant = bool(vllm.envs.VLLM_BATCH_INVARIANT)
        if batch_invariant and not self.batch_invariant:
            raise RuntimeError(
                "batch_invariant=True: vLLM already read VLLM_BATCH_INVARIANT=0 in this process; "
                "set VLLM_BATCH_INVARIANT=1 before the first engine starts"
            )
        self.model_name = model
        self.async_engine = async_engine
        self.engine_args: dict[str, Any] = dict(
            model=model,
            tokenizer=tokenizer,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            dtype=dtype,
            enable_prefix_caching=enable_prefix_caching,
            enable_lora=lora_path is not None,
            **engine_kwargs,
        )
        # vLLM wraps this same Hugging Face tokenizer; prompts are rendered and encoded here
        self.tokenizer = load_tokenizer(
            tokenizer or model, trust_remote_code=engine_kwargs.get("trust_remote_code", False)
        )
        self.renderer = ChatRenderer(self.tokenizer)
        self.lora = self._lora_request(lora_path)
        self.stats = VLLMStats()
        self._ids = itertools.count()
        self._engine: Any = None  # AsyncLLMEngine, living on its own event loop (self._loop)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._llm: Any = None
        self._batcher: MicroBatcher | None = None
        self._closed = False
        if async_engine:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-engine", daemon=True)
            self._thread.start()
            try:
                self._engine = asyncio.run_coroutine_threadsafe(self._make_engine(), self._loop).result()
            except BaseException:
                self._stop_loop()
                raise
        else:
            from vllm import LLM

            self._llm = LLM(**self.engine_args)
        config = (self._engine if self._engine is not None else self._llm.llm_engine).vllm_config
        self.context_length = int(config.model_config.max_model_len)
        self.capacity = int(config.scheduler_config.max_num_seqs)
        self.priority = config.scheduler_config.policy == "priority"  # else vLLM refuses priorities
        if self._llm is not None:
            self._batcher = MicroBatcher(self._run_batch, self.capacity, thread_name="vllm")
        logger.info("vllm backend: %s (%s engine)", model, "async" if async_engine else "in-process")

    @staticmethod
    def _lora_request(lora_path: str | None) -> Any:
        if lora_path is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest("reasonrank-adapter", 1, lora_path)

    @property
    def batch_sizes(self) -> list[int]:
        """Sizes of the ``llm.generate`` batches run so far (``async_engine=False`` only)."""
        return self._batcher.batch_sizes if self._batcher else []

    def render(self, request: GenerationRequest) -> str:
        """The chat-template prompt with the generation prompt, then the assistant prefix."""
        return self.renderer.render(request.messages, request.prefix)

    def _prompt(self, request: GenerationRequest) -> dict[str, list[int]]:
        return {"prompt_token_ids": self.renderer.encode(self.render(request))}

    def _sampling(self, request: GenerationRequest, final_only: bool) -> Any:
        """Greedy with every sampling field pinned (vLLM's ``top_k`` 0 is "off", as in ``GREEDY``)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        kind = {"output_kind": RequestOutputKind.FINAL_ONLY} if final_only else {}
        return SamplingParams(
            **greedy_sampling(), max_tokens=request.max_tokens, stop=list(request.stop), **kind
        )

    def _result(self, output: Any) -> VLLMGeneration:
        completion = output.outputs[0]
        cached = getattr(output, "num_cached_tokens", None)
        prompt_tokens = len(output.prompt_token_ids or ())
        self.stats.requests += 1
        self.stats.prompt_tokens += prompt_tokens
        self.stats.cached_tokens += cached or 0
        return VLLMGeneration(
            text=completion.text,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(completion.token_ids),
            finish_reason="length" if completion.finish_reason == "length" else "stop",
            cached_tokens=cached,
        )

    async def _make_engine(self) -> Any:
        from vllm import AsyncEngineArgs
        from vllm.engine.async_llm_engine import AsyncLLMEngine

        return AsyncLLMEngine.from_engine_args(AsyncEngineArgs(**self.engine_args))

    async def _engine_generate(self, request: GenerationRequest) -> Generation:
        final = None
        async for final in self._engine.generate(
            self._prompt(request),
            self._sampling(request, final_only=True),
            request_id=f"reasonrank-{next(self._ids)}",
            lora_request=self.lora,
            **({"priority": request.priority} if self.priority else {}),
        ):
            pass
        if final is None:
            raise RuntimeError("vLLM returned no output")
        return self._result(final)

    async def _tracked(self, call: Awaitable[Generation]) -> Generation:
        self.stats.in_flight += 1
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.stats.in_flight)
        try:
            return await call
        finally:
            self.stats.in_flight -= 1

    async def generate(self, request: GenerationRequest) -> Generation:
        if self._closed:
            raise RuntimeError("the vllm backend is closed")
        if self._batcher is not None:
            return await self._tracked(self._batcher.submit(request))
        assert self._loop is not None  # the engine's own loop: all its requests run there
        call = self._tracked(self._engine_generate(request))
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, self._loop))

    def _run_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        outputs = self._llm.generate(
            [self._prompt(r) for r in requests],
            [self._sampling(r, final_only=False) for r in requests],
            use_tqdm=False,
            lora_request=self.lora,
            priority=[r.priority for r in requests] if self.priority else None,
        )
        return [self._result(output) for output in outputs]

    def truncate(self, text: str, max_tokens: int) -> str:
        return self.renderer.truncate(text, max_tokens)

    def count_tokens(self, request: GenerationRequest) -> int:
        return len(self._prompt(request)["prompt_token_ids"])

    async def _shutdown_engine(self) -> None:
        self._engine.shutdown()
        await asyncio.sleep(0)  # let the cancelled output handler finish

    def _stop_loop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            if not self._loop.is_running():
                self._loop.close()
        self._loop = self._thread = None

    def close(self) -> None:
        """Shut the engine down and free its memory (GPU included). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._batcher is not None:
            self._batcher.close()
        if self._engine is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown_engine(), self._loop).result()
        self._stop_loop()
        if self._llm is not None:
            core = getattr(getattr(self._llm, "llm_engine", None), "engine_core", None)
            if core is not None:
                core.shutdown()
        self._engine = self._llm = self._batcher = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
