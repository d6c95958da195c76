"""Result and input dataclasses shared by the engine, the adapters and the tools."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .parse import ParseStatus

EMPTY_NOTE = "empty content: ranked last without the model"
TIMEOUT_NOTE = "deadline passed: left in its prior order"
UNSEEN_NOTE = "deadline passed before the model saw it: not reranked"


@dataclass
class Passage:
    """One candidate passage; ``id`` and ``metadata`` travel untouched."""

    text: str
    title: str | None = None
    id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class WindowRecord:
    """What one model call saw, wrote and cost."""

    start: int  # positions [start, end) of the candidate list the strategy was working on
    end: int
    indices: list[int]  # input indices in prompt order ([1] is indices[0])
    order: list[int]  # the same input indices after this window
    reasoning: str
    answer: str
    status: ParseStatus
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    forced: bool = False  # the reasoning budget ran out and the answer was forced
    output: str = ""  # the raw model output (forced continuation included)
    round: int = 0  # dependent windows before this one in its query (windows of one round ran together)
    kind: str = "slide"  # the strategy's name for the window ("slide", "pivot", "partition", "final")
    error: str | None = None  # the backend's error message (status "error")
    max_tokens: int = 0  # the generation budget this window got (clamped when the context was short)
    passage_tokens: int = 0  # the per-passage token cap its prompt was built with
    fitted: str | None = None  # what was done to fit the model's context, when anything was


@dataclass
class RankedPassage:
    """One entry of a reranked list."""

    index: int  # position in the input
    rank: int  # 0-based
    score: float
    passage: Passage
    reasoning: str | None  # reasoning of the window that placed it last (None: not ranked by the model)
    note: str | None = None
    status: str | None = None  # status of the window that placed it last (None: no window held it)
    prompt_tokens: int = 0  # summed over every window that held it
    completion_tokens: int = 0


@dataclass
class RerankResult:
    """The new order of one query's passages, with per-window provenance."""

    query: str
    passages: list[Passage]
    order: list[int]  # a permutation of range(len(passages)), best first
    scores: list[float]  # scores[r] belongs to order[r]; strictly decreasing
    windows: list[WindowRecord] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)  # indices with no content, ranked last unseen
    top_k: int | None = None
    seconds: float = 0.0
    strategy: str = "sliding"
    timed_out: bool = False  # the deadline passed before every window finished
    cached: bool = False  # returned by the ranker's result cache (stored, or computed by a concurrent call)

    @property
    def depth(self) -> int:
        """Dependent rounds of windows this rerank took (its latency in model calls)."""
        return max((w.round for w in self.windows), default=-1) + 1

    @property
    def prompt_tokens(self) -> int:
        return sum(w.prompt_tokens for w in self.windows)

    @property
    def completion_tokens(self) -> int:
        return sum(w.completion_tokens for w in self.windows)

    @property
    def forced(self) -> int:
        """Number of windows whose answer had to be forced."""
        return sum(w.forced for w in self.windows)

    @property
    def statuses(self) -> Counter[str]:
        return Counter(str(w.status) for w in self.windows)

    def score_of(self, index: int) -> float:
        return self.scores[self.order.index(index)]

    def last_window(self, index: int) -> WindowRecord | None:
        """The last window that contained input ``index`` (``None``: the model never saw it)."""
        return next((w for w in reversed(self.windows) if index in w.indices), None)

    def reasoning_for(self, index: int) -> str | None:
        """Reasoning of the last window that contained input ``index``."""
        window = self.last_window(index)
        return None if window is None else window.reasoning

    def note_for(self, index: int) -> str | None:
        """Why input ``index`` was not placed by the model, when it was not: empty content, or the
        last window that held it raised (status ``error``) or ran out of time (``timeout``)."""
        if index in self.empty:
            return EMPTY_NOTE
        window = self.last_window(index)
        if window is None:
            return UNSEEN_NOTE if self.timed_out else None
        if window.status == ParseStatus.ERROR:
            return f"window error: {window.error}; left in its prior order"
        if window.status == ParseStatus.TIMEOUT:
            return TIMEOUT_NOTE
        return None

    def usage_for(self, index: int) -> tuple[int, int]:
        """Prompt and completion tokens of every window that contained input ``index``."""
        held = [w for w in self.windows if index in w.indices]
        return sum(w.prompt_tokens for w in held), sum(w.completion_tokens for w in held)

    @property
    def hits(self) -> list[RankedPassage]:
        """The ranked passages, cut to ``top_k`` when one was given."""
        count = len(self.order) if self.top_k is None else min(self.top_k, len(self.order))
        hits = []
        for r, i in enumerate(self.order[:count]):
            window = self.last_window(i)
            prompt_tokens, completion_tokens = self.usage_for(i)
            hits.append(
                RankedPassage(
                    index=i,
                    rank=r,
                    score=self.scores[r],
                    passage=self.passages[i],
                    reasoning=None if window is None else window.reasoning,
                    note=self.note_for(i),
                    status=None if window is None else str(window.status),
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                )
            )
        return hits
