"""A picklable recipe for a ``ReasonRanker``: the CLI builds one, Ray actors rebuild it remotely.

``backend="scripted"`` gives a ``ScriptedBackend`` that ranks each window by query-word overlap
(no model), for load tests, demos and checking a deployment end to end.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..ranker import ReasonRanker

_WORD = re.compile(r"\w+")


def overlap_score(query: str, content: str) -> float:
    """Fraction of the query's distinct words that occur in ``content`` (case-insensitive)."""
    words = set(_WORD.findall(query.lower()))
    if not words:
        return 0.0
    return len(words & set(_WORD.findall(content.lower()))) / len(words)


@dataclass
class RankerSpec:
    model: str = "demo"
    backend: str = "auto"
    window_size: int = 20
    step: int = 10
    max_passage_tokens: int = 512
    reasoning_budget: int = 3072
    backend_options: dict[str, Any] = field(default_factory=dict)
    latency: float = 0.0  # scripted backend only: seconds per window
    max_batch: int | None = None  # scripted backend only: windows that run together

    def build(self) -> ReasonRanker:
        engine = {
            "window_size": self.window_size,
            "step": self.step,
            "max_passage_tokens": self.max_passage_tokens,
            "reasoning_budget": self.reasoning_budget,
        }
        if self.backend != "scripted":
            return ReasonRanker(self.model, self.backend, **engine, **self.backend_options)
        from ..testing import ScriptedBackend

        backend = ScriptedBackend(
            score=overlap_score, latency=self.latency, max_batch=self.max_batch, model_name="scripted-overlap"
        )
        backend.requests = deque(maxlen=64)  # type: ignore[assignment]  # a server must not keep them all
        return ReasonRanker(backend=backend, **engine)
