"""The contract between the engine and a window strategy.

A strategy owns one query's candidate list. The engine asks it which windows can run now
(:meth:`Strategy.ready`), runs those concurrently, and hands each window's new order back
(:meth:`Strategy.complete`) as it finishes, until the strategy is :attr:`~Strategy.done`.
:meth:`Strategy.ranking` is a permutation of the candidates at any moment, so a run cut short
(a deadline, an error) still returns every candidate.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StrategyConfig:
    """The options every strategy reads (taken from ``EngineConfig``, where they are declared and
    documented); each strategy validates the ones it uses."""

    window_size: int
    step: int
    cutoff: int
    depth: int | None
    budget: int | None


@dataclass(frozen=True)
class Window:
    """One model call a strategy asks for: ``indices`` in prompt order (``[1]`` is ``indices[0]``)."""

    indices: tuple[int, ...]
    round: int  # how many dependent windows came before it in this query (0: needs none)
    start: int  # positions [start, end) of the candidate list the strategy was working on
    end: int
    kind: str = "window"  # what the window is for, e.g. "slide", "pivot", "partition", "final"


class Strategy(abc.ABC):
    """Schedules the windows of one query over ``candidates`` (input indices, best guess first)."""

    name: str = "strategy"

    def __init__(self, candidates: Sequence[int], config: StrategyConfig) -> None:
        self.validate(config)
        self.config = config
        depth = len(candidates) if config.depth is None else config.depth
        self.candidates = list(candidates[:depth])
        self.beyond = list(candidates[depth:])  # never shown to the model, kept in prior order

    @classmethod
    def validate(cls, config: StrategyConfig) -> None:
        """Raise ``ValueError`` naming the first bad option."""
        w = config.window_size
        if isinstance(w, bool) or not isinstance(w, int) or w < 2:
            raise ValueError(f"window_size must be an int >= 2, got {w!r}")
        d = config.depth
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1):
            raise ValueError(f"depth must be None or an int >= 1, got {d!r}")

    @abc.abstractmethod
    def ready(self) -> list[Window]:
        """Windows that can run now and were not handed out before (empty: wait for results)."""

    @abc.abstractmethod
    def complete(self, window: Window, order: Sequence[int]) -> None:
        """Take a finished window's new order: a permutation of ``window.indices``."""

    @property
    @abc.abstractmethod
    def done(self) -> bool:
        """No window is left to run."""

    @abc.abstractmethod
    def ranked(self) -> list[int]:
        """The current order of the reranked candidates (a permutation of ``self.candidates``)."""

    def ranking(self) -> list[int]:
        """The current order of every candidate: the reranked ones, then the ones beyond ``depth``."""
        return self.ranked() + self.beyond
