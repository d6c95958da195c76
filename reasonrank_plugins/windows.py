"""Sliding-window spans, back to front, as in RankGPT/ReasonRank."""

from __future__ import annotations


def window_spans(n: int, window_size: int = 20, step: int = 10) -> list[tuple[int, int]]:
    """Rank positions ``[start, end)`` to rerank, in order, for ``n`` candidates.

    The first window covers the last ``window_size`` candidates and each next one moves
    ``step`` positions towards the top; the last window always starts at 0 and is full
    size when there are enough candidates. ``n=100, 20, 10`` gives (80,100) ... (0,20).
    """
    validate_window(window_size, step)
    if n <= 1:
        return []
    spans = []
    end = n
    while True:
        start = max(end - window_size, 0)
        spans.append((start, min(start + window_size, n)))
        if start == 0:
            return spans
        end -= step


def validate_window(window_size: int, step: int) -> None:
    if not isinstance(window_size, int) or window_size < 2:
        raise ValueError(f"window_size must be an int >= 2, got {window_size!r}")
    if not isinstance(step, int) or not 1 <= step < window_size:
        raise ValueError(f"step must be an int with 1 <= step < window_size ({window_size}), got {step!r}")
