"""The scheduler: admits queries up to a bound, runs each query's windows as its strategy allows,
fits every window into the model's context, and turns backend failures into window statuses."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .backends.base import Backend, Generation, GenerationRequest
from .parse import ParseStatus, parse_answer, split_output
from .prompt import generation_budget, passage_content, prepare_query, render_messages
from .strategies import Strategy, StrategyConfig, Window, make_strategy, validate_strategy
from .types import Passage, RerankResult, WindowRecord

logger = logging.getLogger(__name__)

Schedule = Literal["chains", "lockstep", "sequential"]
OnError = Literal["keep", "raise"]

#: Tokens the forcing tags (``</think>\n<answer>``) and a closing tag can take.
TAG_ROOM = 16
#: A window is not given less than this much reasoning room before its passages are cut further.
MIN_REASONING = 256


def option(default: object, help: str) -> object:
    """A dataclass field of an engine or ranker option, with the help the CLI and adapters show."""
    return field(default=default, metadata={"help": help})


#: the reasoning budget the published checkpoints were evaluated with
REFERENCE_BUDGET = 3072


@dataclass
class EngineConfig:
    """How the engine ranks: windows, budgets and strategy (part of
    :class:`~reasonrank_plugins.options.RankerOptions`, which declares the rest)."""

    window_size: int = option(20, "Passages per window.")
    step: int = option(10, "sliding: how far each window moves up.")
    max_passage_tokens: int = option(512, "Tokens kept of each passage (512 for reasoning-heavy sets, 100 for web).")
    reasoning_budget: int | None = option(
        None,
        f"Tokens of reasoning before the answer is forced (default: {REFERENCE_BUDGET}, the reference's; "
        "an embedded model on llama.cpp: its own measured budget, 256 for the default 'demo').",
    )
    answer_budget: int | None = option(None, "Tokens of a forced answer (default: enough for the window's ids).")
    strategy: str = option(
        "sliding",
        "Window strategy: sliding (the published checkpoints' setting) or tdpart (top-down "
        "partitioning: 3 dependent rounds for 100 candidates instead of 9).",
    )
    cutoff: int = option(10, "tdpart: the pivot is the top window's cutoff-th result.")
    depth: int | None = option(None, "Rerank only the first depth candidates (the rest keep their order).")
    budget: int | None = option(
        None, "tdpart: candidates carried into the next round (default window_size; 0: no cap)."
    )
    drop_empty: bool = option(
        False, "Rank empty passages last without the model (the reference shows them to it)."
    )

    def __post_init__(self) -> None:
        if self.reasoning_budget is None:
            self.reasoning_budget = REFERENCE_BUDGET
        for name in ("max_passage_tokens", "reasoning_budget"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.answer_budget is not None and self.answer_budget < 1:
            raise ValueError(f"answer_budget must be a positive int, got {self.answer_budget!r}")
        validate_strategy(self.strategy, self.strategy_config)

    @property
    def strategy_config(self) -> StrategyConfig:
        return StrategyConfig(self.window_size, self.step, self.cutoff, self.depth, self.budget)

    def answer_tokens(self, n: int) -> int:
        """Tokens a forced answer of ``n`` ids may take: ``answer_budget``, else the default."""
        return self.answer_budget or default_answer_budget(n)

    @property
    def generation_budget(self) -> int:
        """Tokens the first call may decode: the reasoning budget plus room for the answer."""
        return generation_budget(self.reasoning_budget)


@dataclass
class Job:
    """One query being reranked: its request, its strategy once started, and what it cost."""

    query: str
    passages: list[Passage]
    top_k: int | None = None
    config: EngineConfig | None = None  # None: the engine's
    seq: int = 0  # admission order: older queries get priority
    contents: list[str] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)
    strategy: Strategy | None = None
    windows: list[WindowRecord] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None  # when its last window finished (or it was given up)
    timed_out: bool = False


def validate_request(query: object, passages: object, top_k: object = None) -> tuple[str, list[Passage]]:
    """Check one rerank request and normalise its passages; raise ``ValueError`` naming the problem."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"query must be a non-empty string, got {query!r:.80}")
    if isinstance(passages, (str, bytes)) or not isinstance(passages, Sequence):
        raise ValueError(
            f"passages must be a list of strings or Passage objects, got {type(passages).__name__}"
        )
    if not passages:
        raise ValueError("passages is empty: give at least one passage")
    normalised = []
    for i, p in enumerate(passages):
        if isinstance(p, str):
            normalised.append(Passage(p))
        elif isinstance(p, Passage) and isinstance(p.text, str):
            normalised.append(p)
        else:
            raise ValueError(f"passages[{i}] must be a str or Passage with str text, got {type(p).__name__}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    return query, normalised


def check_timeout(timeout: object) -> None:
    """``None`` (no deadline) or a number of seconds > 0."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be None or a number of seconds > 0, got {timeout!r}")


def rank_scores(n: int) -> list[float]:
    """Scores in (0, 1], strictly decreasing with rank."""
    return [(n - r) / n for r in range(n)]


class Engine:
    """Runs jobs against one backend; tracks how many windows are in flight.

    ``max_active_queries`` bounds the queries whose windows run at once (default: the backend's
    ``capacity``; unbounded when that is unknown). A query is prepared when it is admitted and
    the next one is admitted as one finishes, so each query's dependent windows are not queued
    behind every other query's first window.
    """

    def __init__(
        self,
        backend: Backend,
        config: EngineConfig,
        *,
        max_active_queries: int | None = None,
        on_error: OnError = "keep",
    ) -> None:
        if on_error not in ("keep", "raise"):
            raise ValueError(f"on_error must be 'keep' or 'raise', got {on_error!r}")
        if max_active_queries is not None and (
            isinstance(max_active_queries, bool) or not isinstance(max_active_queries, int) or max_active_queries < 1
        ):
            raise ValueError(f"max_active_queries must be None or an int >= 1, got {max_active_queries!r}")
        self.backend = backend
        self.config = config
        self.max_active_queries = max_active_queries
        self.on_error: OnError = on_error
        self.in_flight = 0
        self.peak_in_flight = 0
        self.active = 0  # queries admitted and not finished
        self.peak_active = 0
        self._seq = itertools.count()
        self._prepared = False
        self._warned = False
        self._warn_if_unfit()  # backends that know their context at construction warn here

    # -- admission ----------------------------------------------------------------------------
    @property
    def admission_limit(self) -> int | None:
        return self.max_active_queries or self.backend.capacity

    async def rank(
        self,
        jobs: Sequence[Job],
        schedule: Schedule = "chains",
        on_done: Callable[[Job], None] | None = None,
        timeout: float | None = None,
    ) -> list[RerankResult]:
        """Rerank ``jobs``. ``"chains"`` runs each admitted query's windows as soon as its strategy
        allows; ``"lockstep"`` runs round k of every query together; ``"sequential"`` one query at a
        time. ``timeout`` is a deadline in seconds for the whole call: windows still running then
        keep their order (status ``timeout``) and queries not yet admitted keep their input order."""
        if schedule not in ("chains", "lockstep", "sequential"):
            raise ValueError(f"schedule must be 'chains', 'lockstep' or 'sequential', got {schedule!r}")
        check_timeout(timeout)
        await self._check_fit()
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in jobs:
            job.seq = next(self._seq)
        if schedule == "lockstep":
            await self._lockstep(list(jobs), deadline, on_done)
        else:
            limit = 1 if schedule == "sequential" else (self.admission_limit or len(jobs))
            await self._admit(list(jobs), max(1, min(limit, len(jobs))), deadline, on_done)
        return [self.finish(job) for job in jobs]

    async def _admit(
        self, jobs: list[Job], limit: int, deadline: float | None, on_done: Callable[[Job], None] | None
    ) -> None:
        queue = iter(jobs)

        async def worker() -> None:
            for job in queue:
                if deadline is not None and time.monotonic() >= deadline:
                    job.timed_out = True  # never admitted: it keeps its input order
                    job.ended = time.perf_counter()
                else:
                    await self.run_job(job, deadline)
                if on_done:
                    on_done(job)

        await _all_or_cancel([worker() for _ in range(limit)])

    async def _lockstep(
        self, jobs: list[Job], deadline: float | None, on_done: Callable[[Job], None] | None
    ) -> None:
        for job in jobs:
            self.start(job)
        while True:
            batch = [(job, w) for job in jobs for w in self._strategy(job).ready()]
            if not batch:
                break
            tasks = [asyncio.ensure_future(self.run_window(job, w)) for job, w in batch]
            orders = await _until(tasks, deadline)
            for (job, window), order in zip(batch, orders):
                if order is None:
                    job.timed_out = True
                else:
                    self._strategy(job).complete(window, order)
            if any(job.timed_out for job in jobs):
                break
        for job in jobs:
            job.ended = time.perf_counter()
            if on_done:
                on_done(job)

    # -- one query ------------------------------------------------------------------------------
    def start(self, job: Job) -> None:
        """Prepare a job's passages and strategy (done when it is admitted, not up front)."""
        cfg = job.config or self.config
        job.query = prepare_query(job.query)
        job.contents = [
            passage_content(p, max_tokens=cfg.max_passage_tokens, truncate=self.backend.truncate)
            for p in job.passages
        ]
        candidates = list(range(len(job.contents)))
        if cfg.drop_empty:
            job.empty = [i for i, c in enumerate(job.contents) if not c.strip()]
            empty = set(job.empty)
            candidates = [i for i in candidates if i not in empty]
        job.strategy = make_strategy(cfg.strategy, candidates, cfg.strategy_config)

    async def run_job(self, job: Job, deadline: float | None = None) -> None:
        """Run one query's windows: every window its strategy allows at once, until it is done."""
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)
        try:
            self.start(job)
            strategy = self._strategy(job)
            pending: dict[asyncio.Future[list[int] | None], Window] = {}
            try:
                while True:
                    for window in strategy.ready():
                        pending[asyncio.ensure_future(self.run_window(job, window))] = window
                    if not pending:
                        return
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    finished, _ = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                    if not finished:  # the deadline passed
                        job.timed_out = True
                        return
                    for task in finished:
                        window = pending.pop(task)
                        order = task.result()
                        if order is not None:
                            strategy.complete(window, order)
            finally:
                await _cancel(pending)
        finally:
            self.active -= 1
            job.ended = time.perf_counter()
            job.contents = []  # the prepared prompts' text: only admitted queries hold it

    async def run_window(self, job: Job, window: Window) -> list[int] | None:
        """Run one window and record it; return its new order (``None`` when it was cancelled, after
        recording it as ``timeout``). Backend errors become status ``error`` unless ``on_error``
        is ``"raise"``."""
        cfg = job.config or self.config
        indices = list(window.indices)
        n = len(indices)
        began = time.perf_counter()
        record = WindowRecord(
            start=window.start, end=window.end, indices=indices, order=indices, reasoning="", answer="",
            status=ParseStatus.FAILED, prompt_tokens=0, completion_tokens=0, seconds=0.0,
            round=window.round, kind=window.kind, passage_tokens=cfg.max_passage_tokens,
        )
        text = ""
        try:
            messages, max_tokens = self._fit(job, cfg, record)
            record.max_tokens = max_tokens
            priority = job.seq
            gen = await self._call(GenerationRequest(messages, max_tokens, priority=priority))
            text = f"<think>{gen.reasoning}</think>{gen.text}" if gen.reasoning else gen.text
            record.prompt_tokens, record.completion_tokens = gen.prompt_tokens, gen.completion_tokens
            if needs_answer(text, gen.finish_reason):
                text = await self._force(messages, text, n, cfg, record, priority)
            parsed = parse_answer(text, n)
            record.order = [indices[j] for j in parsed.order]
            record.reasoning, record.answer, record.status = parsed.reasoning, parsed.answer, parsed.status
            return record.order
        except asyncio.CancelledError:
            record.status = ParseStatus.TIMEOUT
            raise
        except Exception as exc:
            if self.on_error == "raise":
                raise
            record.status, record.error = ParseStatus.ERROR, f"{type(exc).__name__}: {exc}"
            logger.warning(
                "window %s-%s of query %r failed, kept in its input order: %s",
                window.start, window.end, job.query[:60], record.error,
            )
            return indices
        finally:
            record.output = text
            record.seconds = time.perf_counter() - began
            job.windows.append(record)
            logger.debug("window %s-%s (round %d): %s%s", window.start, window.end, window.round,
                         record.status, " (forced)" if record.forced else "")

    async def _force(
        self, messages: list[dict[str, str]], text: str, n: int, cfg: EngineConfig, record: WindowRecord,
        priority: int,
    ) -> str:
        """Continue the same prompt with the output so far and an opened answer; decode the ranking."""
        prefix = forcing_prefix(text)
        budget = cfg.answer_tokens(n)
        request = GenerationRequest(messages, budget, prefix=prefix, stop=("</answer>",), priority=priority - 2**40)
        ctx = self.backend.context_length
        used = self.backend.count_tokens(request) if ctx else None
        if ctx and used is not None and used + budget > ctx:
            request.max_tokens = max(1, ctx - used)
            record.fitted = _join(record.fitted, f"forced answer budget {budget} -> {request.max_tokens}")
        extra = await self._call(request)
        record.prompt_tokens += extra.prompt_tokens
        record.completion_tokens += extra.completion_tokens
        record.forced = True
        return prefix + extra.text + ("</answer>" if extra.finish_reason == "stop" else "")

    # -- context fitting ------------------------------------------------------------------------
    def _fit(self, job: Job, cfg: EngineConfig, record: WindowRecord) -> tuple[list[dict[str, str]], int]:
        """The window's messages and generation budget, fitted into the backend's context: the
        budget is clamped first (room for a forced answer kept); when the prompt leaves less than
        ``MIN_REASONING`` tokens, every passage of the window is cut to the same smaller cap."""
        indices = record.indices
        budget = cfg.generation_budget
        messages = render_messages(job.query, [job.contents[i] for i in indices])
        ctx = self.backend.context_length
        if not ctx:
            return messages, budget
        used = self.backend.count_tokens(GenerationRequest(messages, budget))
        if used is None:
            return messages, budget
        reserve = cfg.answer_tokens(len(indices)) + TAG_ROOM
        floor = min(MIN_REASONING, budget)
        if used + reserve + floor > ctx:
            messages, used = self._cut(job, cfg, record, ctx - reserve - floor)
        left = ctx - used - reserve
        if left < budget:
            record.fitted = _join(record.fitted, f"generation budget {budget} -> {max(1, left)} (context {ctx})")
            budget = max(1, left)
        return messages, budget

    def _cut(self, job: Job, cfg: EngineConfig, record: WindowRecord, allowed: int) -> tuple[list[dict[str, str]], int]:
        """Cut every passage of the window to the largest common token cap whose prompt fits ``allowed``."""
        passages = [job.passages[i] for i in record.indices]

        def build(cap: int) -> tuple[list[dict[str, str]], int]:
            contents = [passage_content(p, max_tokens=cap, truncate=self.backend.truncate) for p in passages]
            messages = render_messages(job.query, contents)
            return messages, self.backend.count_tokens(GenerationRequest(messages, 1)) or 0

        low, high = 0, cfg.max_passage_tokens  # the largest cap in [low, high) that fits
        best = build(0)
        while low + 1 < high:
            mid = (low + high) // 2
            attempt = build(mid)
            if attempt[1] <= allowed:
                low, best = mid, attempt
            else:
                high = mid
        record.passage_tokens = low
        record.fitted = _join(record.fitted, f"passages cut to {low} tokens (prompt {best[1]} tokens)")
        if best[1] > allowed:
            logger.warning("window %s-%s: the prompt does not fit even with empty passages (%d > %d tokens)",
                           record.start, record.end, best[1], allowed)
        return best

    async def _check_fit(self) -> None:
        """Once: let the backend learn its context (a server's), then warn if a window cannot fit."""
        if not self._prepared:
            await self.backend.prepare()
            self._prepared = True
            self._warn_if_unfit()

    def _warn_if_unfit(self) -> None:
        """Warn once when a full window cannot fit the backend's context with the configured sizes."""
        ctx, cfg = self.backend.context_length, self.config
        if self._warned or not ctx:
            return
        w = cfg.window_size
        overhead = self.backend.count_tokens(GenerationRequest(render_messages("query", [""] * w), 1))
        if overhead is None:
            return
        self._warned = True
        answer = cfg.answer_tokens(w)
        need = w * cfg.max_passage_tokens + overhead + cfg.generation_budget + answer
        if need > ctx:
            logger.warning(
                "a full window may not fit the model's context of %d tokens: %d passages x %d tokens + %d "
                "prompt overhead + %d generation + %d forced answer = %d; windows that do not fit get a "
                "smaller generation budget, then shorter passages",
                ctx, w, cfg.max_passage_tokens, overhead, cfg.generation_budget, answer, need,
            )

    # -- plumbing ---------------------------------------------------------------------------------
    async def _call(self, request: GenerationRequest) -> Generation:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self.backend.generate(request)
        finally:
            self.in_flight -= 1

    def _strategy(self, job: Job) -> Strategy:
        assert job.strategy is not None, "job not started"
        return job.strategy

    def finish(self, job: Job) -> RerankResult:
        cfg = job.config or self.config
        if job.strategy is None:  # never admitted (deadline): the input order
            empty = set(job.empty)
            ranked = [i for i in range(len(job.passages)) if i not in empty]
        else:
            ranked = job.strategy.ranking()
        order = ranked + job.empty
        return RerankResult(
            query=job.query,
            passages=job.passages,
            order=order,
            scores=rank_scores(len(order)),
            windows=sorted(job.windows, key=lambda w: (w.round, w.start)),
            empty=job.empty,
            top_k=job.top_k,
            seconds=(job.ended or time.perf_counter()) - job.started,
            strategy=cfg.strategy,
            timed_out=job.timed_out,
        )


async def _until(tasks: list[asyncio.Future[list[int] | None]], deadline: float | None) -> list[list[int] | None]:
    """Await ``tasks``; those not done by ``deadline`` are cancelled and give ``None``."""
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        done, pending = await asyncio.wait(tasks, timeout=left)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        await _cancel([t for t in tasks if not t.done()])
    return [t.result() if not t.cancelled() else None for t in tasks]


async def _cancel(tasks: object) -> None:
    """Cancel ``tasks`` and wait until they have stopped."""
    tasks = [t for t in tasks if not t.done()]  # type: ignore[attr-defined]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


async def _all_or_cancel(coros: list) -> None:
    """Run ``coros`` together; the first exception cancels the rest (and waits for them), then is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        await _cancel(tasks)


def _join(note: str | None, more: str) -> str:
    return more if not note else f"{note}; {more}"


def default_answer_budget(n: int) -> int:
    """Tokens to decode a forced ranking of ``n`` passages: ``[i] > `` is at most ~7 tokens each."""
    return 7 * n + 16


def needs_answer(text: str, finish_reason: str) -> bool:
    """No answer block was opened (budget ran out, or the model stopped without one), or the budget
    ran out inside the answer."""
    _, answer, closed = split_output(text)
    return answer is None or (not closed and finish_reason == "length")


def forcing_prefix(text: str) -> str:
    """The assistant text to continue from so that only the ranking is decoded."""
    if split_output(text)[1] is not None:
        return text  # the answer was already open: keep decoding it
    if "</think>" in text:
        return text + "\n<answer>"
    return text + "</think>\n<answer>"
