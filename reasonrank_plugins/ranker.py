"""``ReasonRanker``: the one-call public API over the engine and a backend."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from . import loop as engine_loop
from .backends import Backend, load_backend
from .cache import Compute, DiskCache, ResultCache, result_key
from .engine import Engine, Job, Schedule, validate_request
from .options import RankerOptions, option_fields
from .types import Passage, RerankResult

logger = logging.getLogger(__name__)
PassageLike = str | Passage


class ReasonRanker:
    """Reasoning listwise reranker (ReasonRank) over any number of passages.

    >>> ranker = ReasonRanker()                      # the embedded demo model on llama.cpp
    >>> result = ranker.rerank("what is bm25?", ["...", "..."], top_k=5)
    >>> result.order, result.windows[0].reasoning

    ``model`` is ``"demo"`` (the embedded 1.5B), ``"demo-0.5b"``, a local path (model folder or ``.gguf``) or a hub id; ``backend`` is
    ``"auto"``, ``"llamacpp"``, ``"transformers"``, ``"vllm"``, ``"openai"``, ``"scripted"`` (no
    model: ``model`` is ``"identity"``, ``"reverse"`` or ``"overlap"``) or a ``Backend`` instance.
    The options are those of :class:`~reasonrank_plugins.options.RankerOptions`, declared there
    once: pass them as keywords, or as one ``options=RankerOptions(...)``. Other keyword arguments
    go to the backend (``base_url``, ``device``, ``n_ctx``, ...).

    ``strategy`` is ``"sliding"`` (the published checkpoints' setting: windows of ``window_size``,
    ``step`` apart, back to front) or ``"tdpart"`` (top-down partitioning around the ``cutoff``-th
    result of the top window: 3 dependent rounds for 100 candidates instead of 9; ``budget`` caps
    the candidates carried into its final window, see :class:`~reasonrank_plugins.strategies.tdpart.TDPart`).
    ``depth`` limits the candidates reranked (the rest keep their order below).

    ``timeout`` is a deadline in seconds per ``rerank``/``arerank`` call: windows unfinished by then
    keep their order (status ``timeout``). ``on_error="keep"`` gives a window whose backend call
    raised status ``error`` and its input order; ``"raise"`` cancels the call and raises.
    ``max_active_queries`` bounds the queries run at once (default: the backend's capacity).
    ``cache_size`` > 0 keeps that many complete results in an in-process LRU
    (:class:`~reasonrank_plugins.cache.ResultCache`) shared by every caller of this ranker: a
    repeated (query, passages, options) call returns the stored result (``cached=True``), and
    concurrent identical calls compute once. ``cache_dir`` keeps complete results in that directory
    across runs and processes (:class:`~reasonrank_plugins.cache.DiskCache`, the ``cache`` extra),
    behind the LRU when both are on: a rerun of the same calls makes no model call.

    A ``Backend`` instance passed in stays open on :meth:`close` (its owner closes it), so several
    rankers can share one loaded model; they submit on that backend's one engine loop.
    """

    def __init__(
        self,
        model: str | None = None,
        backend: str | Backend | None = None,
        *,
        options: RankerOptions | None = None,
        **kwargs: Any,
    ) -> None:
        if options is None:
            given = {k: v for k, v in (("model", model), ("backend", backend)) if v is not None}
            options = RankerOptions.from_kwargs(**given, **kwargs)
        elif model is not None or backend is not None or kwargs:
            raise ValueError("pass options= or keyword options, not both")
        self.options = options
        self.disk_cache = DiskCache(options.cache_dir) if options.cache_dir else None  # before a model loads
        self.config = options.engine_config()
        self.timeout = options.timeout
        model, backend, backend_options = options.model, options.backend, options.backend_options
        if isinstance(backend, Backend):
            if backend_options:
                raise ValueError(f"backend options {sorted(backend_options)} given with a Backend instance")
            self.backend = backend
        else:
            try:
                self.backend = load_backend(model, backend, **backend_options)
            except TypeError as exc:
                if "unexpected keyword argument" not in str(exc):
                    raise
                raise ValueError(
                    f"{exc}: not a ranker option (see RankerOptions) nor an argument of backend {backend!r}"
                ) from exc
        self._owns_backend = not isinstance(backend, Backend)
        try:
            self.engine = Engine(
                self.backend, self.config, max_active_queries=options.max_active_queries,
                on_error=options.on_error,
            )
        except ValueError:
            if self._owns_backend:
                self.backend.close()
            raise
        self.model = self.backend.model_name or model
        self.cache = ResultCache(options.cache_size) if options.cache_size else None
        secret = {"api_key", "token"}
        self._identity = [self.backend.name, self.model, options.model,
                          {k: v for k, v in sorted(backend_options.items()) if k not in secret}]
        self._loop: engine_loop.EngineLoop | None = engine_loop.acquire(self.backend)
        logger.info("ReasonRanker ready: %s on %s (%s)", self.model, self.backend.name, self.config.strategy)

    # -- public API -------------------------------------------------------------------------
    def rerank(
        self,
        query: str,
        passages: Sequence[PassageLike],
        top_k: int | None = None,
        *,
        strategy: str | None = None,
        timeout: float | None = None,
        max_passage_tokens: int | None = None,
    ) -> RerankResult:
        """Rerank ``passages`` for ``query``; ``order`` is always a permutation of all of them.
        ``strategy``, ``timeout`` and ``max_passage_tokens`` override the ranker's for this call."""
        return self.rerank_many(
            [(query, passages)], top_k=top_k, strategy=strategy, timeout=timeout,
            max_passage_tokens=max_passage_tokens,
        )[0]

    async def arerank(
        self,
        query: str,
        passages: Sequence[PassageLike],
        top_k: int | None = None,
        *,
        strategy: str | None = None,
        timeout: float | None = None,
        max_passage_tokens: int | None = None,
    ) -> RerankResult:
        """Async form of :meth:`rerank`; windows are batched with concurrent calls."""
        results = await self.arerank_many(
            [(query, passages)], top_k=top_k, strategy=strategy, timeout=timeout,
            max_passage_tokens=max_passage_tokens,
        )
        return results[0]

    def rerank_many(
        self,
        items: Iterable[tuple[str, Sequence[PassageLike]]],
        top_k: int | None = None,
        *,
        schedule: Schedule = "chains",
        show_progress: bool = False,
        strategy: str | None = None,
        timeout: float | None = None,
        max_passage_tokens: int | None = None,
    ) -> list[RerankResult]:
        """Rerank many queries at once: each query runs as its strategy allows, the backend batches
        windows across queries, and at most ``max_active_queries`` run at a time."""
        jobs = self._jobs(items, top_k, strategy=strategy, max_passage_tokens=max_passage_tokens)
        return self._running().run(self._rank(jobs, schedule, show_progress, timeout))

    async def arerank_many(
        self,
        items: Iterable[tuple[str, Sequence[PassageLike]]],
        top_k: int | None = None,
        *,
        schedule: Schedule = "chains",
        show_progress: bool = False,
        strategy: str | None = None,
        timeout: float | None = None,
        max_passage_tokens: int | None = None,
    ) -> list[RerankResult]:
        jobs = self._jobs(items, top_k, strategy=strategy, max_passage_tokens=max_passage_tokens)
        return await self._running().arun(self._rank(jobs, schedule, show_progress, timeout))

    def close(self) -> None:
        """Free the backend this ranker loaded (GPU memory included), then stop its engine loop
        when no other ranker uses it. Idempotent."""
        if self._loop is None:
            return
        self._loop = None
        try:
            if self._owns_backend:
                self.backend.close()  # while the loop runs, so clients bound to it really close
        finally:
            engine_loop.release(self.backend)
            if self.disk_cache is not None:
                self.disk_cache.close()

    def __enter__(self) -> ReasonRanker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"ReasonRanker(model={self.model!r}, backend={self.backend.name!r}, strategy={c.strategy!r}, "
            f"window_size={c.window_size}, step={c.step})"
        )

    # -- internals ----------------------------------------------------------------------------
    def _running(self) -> engine_loop.EngineLoop:
        if self._loop is None:
            raise RuntimeError("this ReasonRanker is closed")
        return self._loop

    def _jobs(
        self, items: Iterable[tuple[str, Sequence[PassageLike]]], top_k: int | None, **overrides: Any
    ) -> list[Job]:
        """The calls' jobs; ``overrides`` (``None``: the ranker's) replace engine options for them."""
        given = {name: value for name, value in overrides.items() if value is not None}
        config = dataclasses.replace(self.config, **given) if given else None
        jobs = []
        for n, item in enumerate(items):
            if not isinstance(item, tuple) or len(item) != 2:
                raise ValueError(f"item {n} must be a (query, passages) tuple, got {type(item).__name__}")
            query, passages = validate_request(*item, top_k)
            jobs.append(Job(query, passages, top_k, config=config))
        return jobs

    async def _rank(
        self, jobs: list[Job], schedule: Schedule, show_progress: bool, timeout: float | None
    ) -> list[RerankResult]:
        def compute(todo: list[Job]) -> Any:
            return self._compute(todo, schedule, show_progress, timeout)

        for cache in (self.disk_cache, self.cache):  # the LRU in front of the disk, in front of the model
            if cache is not None:
                compute = self._behind(cache, compute)
        return await compute(jobs)

    def _behind(self, cache: ResultCache | DiskCache, compute: Compute) -> Compute:
        """``compute`` behind ``cache``: jobs whose result is stored there are not computed."""

        def cached(todo: list[Job]) -> Any:
            keys = [result_key(self._identity, job.config or self.config, job.query, job.passages) for job in todo]
            return cache.rank(todo, keys, compute)

        return cached

    async def _compute(
        self, jobs: list[Job], schedule: Schedule, show_progress: bool, timeout: float | None
    ) -> list[RerankResult]:
        deadline = self.timeout if timeout is None else timeout
        if not show_progress:
            return await self.engine.rank(jobs, schedule, timeout=deadline)
        from tqdm.auto import tqdm

        with tqdm(total=len(jobs), desc="rerank", unit="query") as bar:
            return await self.engine.rank(jobs, schedule, on_done=lambda _: bar.update(), timeout=deadline)


def _init_signature() -> inspect.Signature:
    """``__init__``'s signature as ``help()`` and IDEs show it, generated from ``RankerOptions``."""
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD)]
    for f, hint in option_fields():
        if f.name == "backend_options":
            continue
        kind = P.POSITIONAL_OR_KEYWORD if f.name in ("model", "backend") else P.KEYWORD_ONLY
        params.append(P(f.name, kind, default=f.default, annotation=hint))
    params.sort(key=lambda p: p.kind)  # model, backend first
    params += [P("options", P.KEYWORD_ONLY, default=None, annotation=RankerOptions | None),
               P("backend_options", P.VAR_KEYWORD, annotation=Any)]
    return inspect.Signature(params, return_annotation=None)


ReasonRanker.__init__.__signature__ = _init_signature()  # type: ignore[attr-defined]
