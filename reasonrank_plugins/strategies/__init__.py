"""Window strategies: which windows of a query run, and in what dependency order.

A new strategy is one module with a :class:`Strategy` subclass, registered in ``STRATEGIES``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import Strategy, StrategyConfig, Window
from .sliding import Sliding
from .tdpart import TDPart

__all__ = ["STRATEGIES", "Strategy", "StrategyConfig", "Window", "make_strategy", "validate_strategy"]

STRATEGIES: dict[str, type[Strategy]] = {Sliding.name: Sliding, TDPart.name: TDPart}


def _cls(name: object) -> type[Strategy]:
    if not isinstance(name, str) or name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {name!r}")
    return STRATEGIES[name]


def validate_strategy(name: str, config: StrategyConfig) -> None:
    """Raise ``ValueError`` for an unknown strategy or an option it cannot take."""
    _cls(name).validate(config)


def make_strategy(name: str, candidates: Sequence[int], config: StrategyConfig) -> Strategy:
    return _cls(name)(candidates, config)
