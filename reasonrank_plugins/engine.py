"""The window scheduler: each query is a chain of dependent windows; chains run concurrently."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from .backends.base import Backend, Generation, GenerationRequest
from .parse import parse_answer, split_output
from .prompt import passage_content, render_messages, sanitize
from .types import Passage, RerankResult, WindowRecord
from .windows import validate_window, window_spans

logger = logging.getLogger(__name__)

Schedule = Literal["chains", "lockstep", "sequential"]


@dataclass
class EngineConfig:
    window_size: int = 20
    step: int = 10
    max_passage_tokens: int = 512
    reasoning_budget: int = 3072
    answer_budget: int | None = None  # tokens for a forced answer; default: default_answer_budget(n)

    def __post_init__(self) -> None:
        validate_window(self.window_size, self.step)
        for name in ("max_passage_tokens", "reasoning_budget"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.answer_budget is not None and self.answer_budget < 1:
            raise ValueError(f"answer_budget must be a positive int, got {self.answer_budget!r}")


@dataclass
class Job:
    """One query being reranked: its current ranking is updated window by window."""

    query: str
    passages: list[Passage]
    top_k: int | None = None

    def __post_init__(self) -> None:
        self.ranking: list[int] = []
        self.empty: list[int] = []
        self.contents: list[str] = []
        self.spans: list[tuple[int, int]] = []
        self.windows: list[WindowRecord] = []
        self.started = time.perf_counter()


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


def rank_scores(n: int) -> list[float]:
    """Scores in (0, 1], strictly decreasing with rank."""
    return [(n - r) / n for r in range(n)]


class Engine:
    """Runs jobs against one backend; tracks how many windows are in flight."""

    def __init__(self, backend: Backend, config: EngineConfig) -> None:
        self.backend = backend
        self.config = config
        self.in_flight = 0
        self.peak_in_flight = 0

    def prepare(self, job: Job) -> None:
        cfg = self.config
        job.query = sanitize(job.query)
        job.contents = [
            passage_content(p, max_tokens=cfg.max_passage_tokens, truncate=self.backend.truncate)
            for p in job.passages
        ]
        job.ranking = [i for i, c in enumerate(job.contents) if c.strip()]
        job.empty = [i for i, c in enumerate(job.contents) if not c.strip()]
        job.spans = window_spans(len(job.ranking), cfg.window_size, cfg.step)

    async def _call(self, request: GenerationRequest) -> Generation:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self.backend.generate(request)
        finally:
            self.in_flight -= 1

    async def run_window(self, job: Job, span: tuple[int, int]) -> None:
        start, end = span
        indices = job.ranking[start:end]
        n = len(indices)
        messages = render_messages(job.query, [job.contents[i] for i in indices])
        began = time.perf_counter()
        gen = await self._call(GenerationRequest(messages, max_tokens=self.config.reasoning_budget))
        text = f"<think>{gen.reasoning}</think>{gen.text}" if gen.reasoning else gen.text
        prompt_tokens, completion_tokens = gen.prompt_tokens, gen.completion_tokens
        forced = False
        if needs_answer(text, gen.finish_reason):
            prefix = forcing_prefix(text)
            budget = self.config.answer_budget or default_answer_budget(n)
            extra = await self._call(GenerationRequest(messages, budget, prefix=prefix, stop=("</answer>",)))
            text = prefix + extra.text + ("</answer>" if extra.finish_reason == "stop" else "")
            prompt_tokens += extra.prompt_tokens
            completion_tokens += extra.completion_tokens
            forced = True
        parsed = parse_answer(text, n)
        new = [indices[j] for j in parsed.order]
        job.ranking[start:end] = new
        record = WindowRecord(
            start=start,
            end=end,
            indices=indices,
            order=new,
            reasoning=parsed.reasoning,
            answer=parsed.answer,
            status=parsed.status,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            seconds=time.perf_counter() - began,
            forced=forced,
            output=text,
        )
        job.windows.append(record)
        logger.debug("window %s-%s: %s%s", start, end, parsed.status, " (forced)" if forced else "")

    async def run_chain(self, job: Job, on_done: Callable[[Job], None] | None = None) -> None:
        for span in job.spans:
            await self.run_window(job, span)
        if on_done:
            on_done(job)

    async def rank(
        self,
        jobs: Sequence[Job],
        schedule: Schedule = "chains",
        on_done: Callable[[Job], None] | None = None,
    ) -> list[RerankResult]:
        """Rerank ``jobs``; "chains" submits each query's next window as soon as its last one ends."""
        for job in jobs:
            self.prepare(job)
        if schedule == "chains":
            await asyncio.gather(*(self.run_chain(job, on_done) for job in jobs))
        elif schedule == "sequential":
            for job in jobs:
                await self.run_chain(job, on_done)
        elif schedule == "lockstep":
            depth = max((len(job.spans) for job in jobs), default=0)
            for k in range(depth):
                await asyncio.gather(*(self.run_window(j, j.spans[k]) for j in jobs if k < len(j.spans)))
            for job in jobs:
                if on_done:
                    on_done(job)
        else:
            raise ValueError(f"schedule must be 'chains', 'lockstep' or 'sequential', got {schedule!r}")
        return [finish(job) for job in jobs]


def finish(job: Job) -> RerankResult:
    order = job.ranking + job.empty
    return RerankResult(
        query=job.query,
        passages=job.passages,
        order=order,
        scores=rank_scores(len(order)),
        windows=job.windows,
        empty=job.empty,
        top_k=job.top_k,
        seconds=time.perf_counter() - job.started,
    )


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
