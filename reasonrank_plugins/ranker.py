"""``ReasonRanker``: the one-call public API over the engine and a backend."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from .backends import Backend, load_backend
from .engine import Engine, EngineConfig, Job, Schedule, validate_request
from .types import Passage, RerankResult

logger = logging.getLogger(__name__)
T = TypeVar("T")
PassageLike = str | Passage


class _LoopThread:
    """A private event loop in a daemon thread: every backend call runs here, so windows from
    sync callers, other threads and other event loops share one scheduler and get batched."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="reasonrank-engine", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


class ReasonRanker:
    """Reasoning listwise reranker (ReasonRank) with sliding windows over any number of passages.

    >>> ranker = ReasonRanker()                      # the embedded demo model on llama.cpp
    >>> result = ranker.rerank("what is bm25?", ["...", "..."], top_k=5)
    >>> result.order, result.windows[0].reasoning

    ``model`` is ``"demo"``, a local path (model folder or ``.gguf``) or a hub id; ``backend`` is
    ``"auto"``, ``"llamacpp"``, ``"transformers"``, ``"vllm"``, ``"openai"``, ``"scripted"`` (no
    model: ``model`` is ``"identity"``, ``"reverse"`` or ``"overlap"``) or a ``Backend`` instance.
    Extra keyword arguments go to the backend (``base_url``, ``device``, ``n_ctx``, ...).
    A ``Backend`` instance passed in stays open on :meth:`close` (its owner closes it), so several
    rankers can share one loaded model.
    """

    def __init__(
        self,
        model: str = "demo",
        backend: str | Backend = "auto",
        *,
        window_size: int = 20,
        step: int = 10,
        max_passage_tokens: int = 512,
        reasoning_budget: int = 3072,
        answer_budget: int | None = None,
        **backend_options: Any,
    ) -> None:
        self.config = EngineConfig(window_size, step, max_passage_tokens, reasoning_budget, answer_budget)
        if isinstance(backend, Backend):
            if backend_options:
                raise ValueError(f"backend options {sorted(backend_options)} given with a Backend instance")
            self.backend = backend
        else:
            self.backend = load_backend(model, backend, **backend_options)
        self._owns_backend = not isinstance(backend, Backend)
        self.model = self.backend.model_name or model
        self.engine = Engine(self.backend, self.config)
        self._loop: _LoopThread | None = _LoopThread()
        logger.info("ReasonRanker ready: %s on %s", self.model, self.backend.name)

    # -- public API -------------------------------------------------------------------------
    def rerank(self, query: str, passages: Sequence[PassageLike], top_k: int | None = None) -> RerankResult:
        """Rerank ``passages`` for ``query``; ``order`` is always a permutation of all of them."""
        return self.rerank_many([(query, passages)], top_k=top_k)[0]

    async def arerank(
        self, query: str, passages: Sequence[PassageLike], top_k: int | None = None
    ) -> RerankResult:
        """Async form of :meth:`rerank`; windows are batched with concurrent calls."""
        return (await self.arerank_many([(query, passages)], top_k=top_k))[0]

    def rerank_many(
        self,
        items: Iterable[tuple[str, Sequence[PassageLike]]],
        top_k: int | None = None,
        *,
        schedule: Schedule = "chains",
        show_progress: bool = False,
    ) -> list[RerankResult]:
        """Rerank many queries at once: each query is a chain, the backend batches across chains."""
        jobs = self._jobs(items, top_k)
        return self._running().run(self._rank(jobs, schedule, show_progress))

    async def arerank_many(
        self,
        items: Iterable[tuple[str, Sequence[PassageLike]]],
        top_k: int | None = None,
        *,
        schedule: Schedule = "chains",
        show_progress: bool = False,
    ) -> list[RerankResult]:
        jobs = self._jobs(items, top_k)
        return await self._running().arun(self._rank(jobs, schedule, show_progress))

    def close(self) -> None:
        """Stop the engine thread and free the backend this ranker loaded (GPU memory included).
        Idempotent."""
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
            if self._owns_backend:
                self.backend.close()

    def __enter__(self) -> ReasonRanker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"ReasonRanker(model={self.model!r}, backend={self.backend.name!r}, "
            f"window_size={c.window_size}, step={c.step})"
        )

    # -- internals ----------------------------------------------------------------------------
    def _running(self) -> _LoopThread:
        if self._loop is None:
            raise RuntimeError("this ReasonRanker is closed")
        return self._loop

    @staticmethod
    def _jobs(items: Iterable[tuple[str, Sequence[PassageLike]]], top_k: int | None) -> list[Job]:
        jobs = []
        for n, item in enumerate(items):
            if not isinstance(item, tuple) or len(item) != 2:
                raise ValueError(f"item {n} must be a (query, passages) tuple, got {type(item).__name__}")
            query, passages = validate_request(*item, top_k)
            jobs.append(Job(query, passages, top_k))
        return jobs

    async def _rank(self, jobs: list[Job], schedule: Schedule, show_progress: bool) -> list[RerankResult]:
        if not show_progress:
            return await self.engine.rank(jobs, schedule)
        from tqdm.auto import tqdm

        with tqdm(total=len(jobs), desc="rerank", unit="query") as bar:
            return await self.engine.rank(jobs, schedule, on_done=lambda _: bar.update())
