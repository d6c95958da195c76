"""The one declaration of a ranker's options.

:class:`RankerOptions` holds every option of :class:`~reasonrank_plugins.ReasonRanker`: the
engine's (:class:`~reasonrank_plugins.engine.EngineConfig`), which model on which backend, and
how calls run. ``ReasonRanker``, the three adapters, every CLI command and the server build from
it, and it is what the CLI pickles for Ray workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_type_hints

from .backends import resolve_backend
from .backends.base import Backend
from .cache import check_cache_dir
from .demo_model import embedded_model, is_embedded
from .engine import REFERENCE_BUDGET, EngineConfig, OnError, check_timeout, option

if TYPE_CHECKING:
    from .ranker import ReasonRanker


@dataclass
class RankerOptions(EngineConfig):
    """Every option of a ranker, with its default; ``backend_options`` go to the backend."""

    model: str = option(
        "demo",
        "'demo' (the embedded default, demo-1.5b), 'demo-0.5b' or 'demo-1.5b' (embedded), a local path (model folder or .gguf), a hub id, or a hub GGUF "
        "org/name[@revision]:file.gguf.",
    )
    backend: str | Backend = option(
        "auto",
        "auto, llamacpp, transformers, vllm, openai, or scripted (no model: --model overlap ranks by "
        "query-word overlap; identity; reverse; fail).",
    )
    max_active_queries: int | None = option(None, "Queries run at once (default: the backend's capacity).")
    timeout: float | None = option(
        None, "Deadline in seconds per call: windows unfinished by then keep their order (status timeout)."
    )
    on_error: OnError = option("keep", "A window whose backend call fails: keep its order, or raise.")
    cache_size: int = option(
        0, "Complete results kept in an in-process LRU shared by the ranker's callers (0: no cache); "
        "a repeated (query, passages, options) call returns the stored result.",
    )
    cache_dir: str | None = option(
        None, "A directory that keeps complete results across runs (diskcache, behind the LRU when "
        "cache_size > 0): a rerun of the same (query, passages, options) returns the stored result.",
    )
    backend_options: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Backend arguments (base_url, n_ctx, device, api_key, ...)."},
    )

    def __post_init__(self) -> None:
        if self.reasoning_budget is None:
            self.reasoning_budget = default_reasoning_budget(self.model, self.backend, self.backend_options)
        super().__post_init__()
        check_timeout(self.timeout)
        if self.on_error not in ("keep", "raise"):
            raise ValueError(f"on_error must be 'keep' or 'raise', got {self.on_error!r}")
        if self.max_active_queries is not None and (
            isinstance(self.max_active_queries, bool)
            or not isinstance(self.max_active_queries, int)
            or self.max_active_queries < 1
        ):
            raise ValueError(f"max_active_queries must be None or an int > 0, got {self.max_active_queries!r}")
        if isinstance(self.cache_size, bool) or not isinstance(self.cache_size, int) or self.cache_size < 0:
            raise ValueError(f"cache_size must be an int >= 0, got {self.cache_size!r}")
        if self.cache_dir is not None:
            self.cache_dir = check_cache_dir(self.cache_dir)
        if not isinstance(self.backend_options, Mapping):
            raise ValueError(f"backend_options must be a mapping, got {type(self.backend_options).__name__}")
        clash = set(self.backend_options) & set(OPTION_NAMES)
        if clash:
            raise ValueError(f"backend_options must not repeat ranker options: {sorted(clash)}")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> RankerOptions:
        """Options from ``ReasonRanker``-style keywords: those that are not options go to the backend."""
        backend_options = dict(kwargs.pop("backend_options", None) or {})
        for name in [k for k in kwargs if k not in OPTION_NAMES]:
            backend_options[name] = kwargs.pop(name)
        return cls(**kwargs, backend_options=backend_options)

    def engine_config(self) -> EngineConfig:
        """The engine's part of these options."""
        return EngineConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(EngineConfig)})

    def changed(self) -> dict[str, Any]:
        """The options that differ from their defaults (what a dump needs to rebuild this ranker)."""
        budget = default_reasoning_budget(self.model, self.backend, self.backend_options)
        defaults = {**DEFAULTS, "reasoning_budget": budget}
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != defaults[f.name]
        }

    def build(self) -> ReasonRanker:
        """A ``ReasonRanker`` with these options."""
        from .ranker import ReasonRanker

        return ReasonRanker(options=self)


def default_reasoning_budget(model: str, backend: str | Backend, backend_options: Mapping[str, Any]) -> int:
    """An embedded model that runs on llama.cpp (the backend ``resolve_backend`` picks, so not when a
    ``base_url`` sends it to a server): its own measured budget; anything else: the reference's."""
    if backend in ("auto", "llamacpp") and is_embedded(model):
        if resolve_backend(model, backend, **backend_options) == "llamacpp":
            return embedded_model(model).reasoning_budget
    return REFERENCE_BUDGET


def option_fields() -> list[tuple[dataclasses.Field, Any]]:
    """Each option's dataclass field and resolved type, in declaration order (engine options first)."""
    hints = get_type_hints(RankerOptions)
    return [(f, hints[f.name]) for f in dataclasses.fields(RankerOptions)]


def option_help(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "")


OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RankerOptions))
DEFAULTS: dict[str, Any] = {
    f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    for f in dataclasses.fields(RankerOptions)
}
