"""The engine options as pydantic fields, for the adapters whose components are pydantic models
(LlamaIndex, LangChain; the Haystack component takes them as init parameters). Needs pydantic,
which both frameworks bring; nothing else imports this module."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .adapters import ENGINE_OPTIONS, make_ranker
from .backends import Backend
from .ranker import ReasonRanker


class EngineFields(BaseModel):
    """``ReasonRanker``'s options with its defaults; only those set explicitly are passed on."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = Field(default="demo", description="'demo', a local path or a hub id.")
    backend: str | Backend = Field(default="auto", description="Backend name or instance.")
    window_size: int = 20
    step: int = 10
    max_passage_tokens: int = 512
    reasoning_budget: int = 3072
    answer_budget: int | None = None
    strategy: str = Field(default="sliding", description="'sliding' or 'tdpart' (top-down partitioning).")
    cutoff: int = Field(default=10, description="tdpart: the pivot is the top window's cutoff-th result.")
    depth: int | None = Field(default=None, description="Rerank only the first depth candidates.")
    timeout: float | None = Field(default=None, description="Seconds per call; late windows keep order.")
    on_error: Literal["keep", "raise"] = Field(default="keep", description="A failed window: keep or raise.")
    drop_empty: bool = Field(default=False, description="Rank empty documents last without the model.")
    backend_options: dict[str, Any] = Field(default_factory=dict, description="Extra backend arguments.")

    def build_ranker(self, ranker: ReasonRanker | None) -> ReasonRanker:
        """``ranker``, or a new one from the options this component was given explicitly."""
        return make_ranker(ranker, {k: getattr(self, k) for k in ENGINE_OPTIONS if k in self.model_fields_set})
