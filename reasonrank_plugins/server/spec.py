"""A picklable recipe for a ``ReasonRanker``: the CLI builds one, Ray actors rebuild it remotely."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ranker import ReasonRanker


@dataclass
class RankerSpec:
    model: str = "demo"
    backend: str = "auto"
    window_size: int = 20
    step: int = 10
    max_passage_tokens: int = 512
    reasoning_budget: int = 3072
    strategy: str = "sliding"
    cutoff: int = 10
    depth: int | None = None
    timeout: float | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)

    def build(self) -> ReasonRanker:
        return ReasonRanker(
            self.model,
            self.backend,
            window_size=self.window_size,
            step=self.step,
            max_passage_tokens=self.max_passage_tokens,
            reasoning_budget=self.reasoning_budget,
            strategy=self.strategy,
            cutoff=self.cutoff,
            depth=self.depth,
            timeout=self.timeout,
            **self.backend_options,
        )
