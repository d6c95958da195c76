"""Sliding windows back to front, as RankGPT and ReasonRank rank (the published checkpoints' setting)."""

from __future__ import annotations

from collections.abc import Sequence

from ..windows import validate_window, window_spans
from .base import Strategy, StrategyConfig, Window


class Sliding(Strategy):
    """Windows of ``window_size`` from the bottom of the list to the top, ``step`` apart; each one
    waits for the one before it, so a query takes one round per window."""

    name = "sliding"

    def __init__(self, candidates: Sequence[int], config: StrategyConfig) -> None:
        super().__init__(candidates, config)
        self._order = list(self.candidates)
        self._spans = window_spans(len(self._order), config.window_size, config.step)
        self._next = 0
        self._waiting = False

    @classmethod
    def validate(cls, config: StrategyConfig) -> None:
        super().validate(config)
        validate_window(config.window_size, config.step)

    def ready(self) -> list[Window]:
        if self._waiting or self.done:
            return []
        start, end = self._spans[self._next]
        self._waiting = True
        return [Window(tuple(self._order[start:end]), self._next, start, end, "slide")]

    def complete(self, window: Window, order: Sequence[int]) -> None:
        self._order[window.start : window.end] = order
        self._waiting = False
        self._next += 1

    @property
    def done(self) -> bool:
        return self._next >= len(self._spans)

    def ranked(self) -> list[int]:
        return list(self._order)
