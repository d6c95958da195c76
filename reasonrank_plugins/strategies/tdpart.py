"""Parallel top-down partitioning (TDPart: Parry, MacAvaney and Ganguly, "Top-Down Partitioning for
Efficient List-Wise Ranking", 2024, arXiv 2405.14589)."""

from __future__ import annotations

from collections.abc import Sequence

from .base import Strategy, StrategyConfig, Window


class TDPart(Strategy):
    """Rank the top window and take its ``cutoff``-th result as the pivot; compare every other
    candidate with the pivot in windows of ``window_size - 1`` plus the pivot, all at once; the
    candidates placed above the pivot (with it) are the next candidate set, the rest go to the
    backfill in their prior order. Repeat until the set fits one window, then rank it.

    ``budget`` caps the next candidate set (default ``window_size``: the set always fits the final
    window, so 100 candidates take at most 3 rounds). When more candidates beat the pivot, the best
    of each partition window are kept first (every window's 1st, then every window's 2nd, ...) and
    the others lead that round's backfill. ``budget=0`` has no cap: the partitioning repeats on
    the larger set (one to two more rounds each time) until it fits one window.

    With 100 candidates, window 20 and cutoff 10 that is 3 dependent rounds of 1, 5 and 1 windows
    (2 rounds and 6 windows when no candidate beats the pivot), against sliding's 9.
    The final order is the ranked set, then each round's backfill (the latest round's first: its
    candidates beat an earlier pivot), then the candidates beyond ``depth``.
    """

    name = "tdpart"

    def __init__(self, candidates: Sequence[int], config: StrategyConfig) -> None:
        super().__init__(candidates, config)
        self._w, self._k = config.window_size, config.cutoff
        self._budget = config.window_size if config.budget is None else config.budget
        if config.budget == 0:
            self._budget = None  # no budget: repeat the partitioning until the set fits a window
        self._round = 0
        self._backfills: list[list[int]] = []  # one per partition round, oldest first
        self._final: list[int] | None = None
        self._issued: list[Window] = []
        self._begin(self.candidates)

    @classmethod
    def validate(cls, config: StrategyConfig) -> None:
        super().validate(config)
        k = config.cutoff
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"cutoff must be an int >= 1, got {k!r}")
        if k >= config.window_size:
            raise ValueError(f"cutoff must be < window_size ({config.window_size}), got {k}")
        b = config.budget
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or (b != 0 and b < k)):
            raise ValueError(f"budget must be None, 0 (none) or an int >= cutoff ({k}), got {b!r}")

    # -- the phases ---------------------------------------------------------------------------
    def _begin(self, candidates: list[int]) -> None:
        """Start a round over ``candidates``: one final window when they fit, else a pivot window."""
        self._set = candidates
        self._pivot: int | None = None
        self._above: list[int] = []
        self._parts: dict[int, tuple[list[int], list[int]]] = {}  # window start -> (above, below)
        self._below: list[int] = []
        if len(candidates) <= 1:
            self._final = list(candidates)
            self._queue: list[Window] = []
        elif len(candidates) <= self._w:
            self._queue = [Window(tuple(candidates), self._round, 0, len(candidates), "final")]
        else:
            self._queue = [Window(tuple(candidates[: self._w]), self._round, 0, self._w, "pivot")]

    def ready(self) -> list[Window]:
        out, self._queue = self._queue, []
        self._issued += out
        return out

    def complete(self, window: Window, order: Sequence[int]) -> None:
        self._issued.remove(window)
        order = list(order)
        if window.kind == "final":
            self._final = order
        elif window.kind == "pivot":
            self._pivot_done(order)
        else:
            at = order.index(self._pivot)
            self._parts[window.start] = (order[:at], order[at + 1 :])
            if not self._issued and not self._queue:
                self._partition_done()

    def _pivot_done(self, order: list[int]) -> None:
        k, w = self._k, self._w
        self._pivot = order[k - 1]
        self._above, self._below = order[: k - 1], order[k:]
        rest = self._set[w:]
        self._round += 1
        self._queue = [
            Window((self._pivot, *rest[i : i + w - 1]), self._round, w + i, w + i + len(rest[i : i + w - 1]),
                   "partition")
            for i in range(0, len(rest), w - 1)
        ]

    def _partition_done(self) -> None:
        assert self._pivot is not None
        parts = [self._parts[start][0] for start in sorted(self._parts)]
        promoted = [i for p in parts for i in p]
        spilled: list[int] = []
        keep = None if self._budget is None else self._budget - len(self._above) - 1
        if keep is not None and len(promoted) > keep:
            # over the budget: the best of each window first (every window's 1st, then every 2nd, ...)
            merged = [p[r] for r in range(max(map(len, parts))) for p in parts if r < len(p)]
            kept = set(merged[:keep])
            spilled = merged[keep:]
            promoted = [i for i in promoted if i in kept]
        below = self._below + [i for start in sorted(self._parts) for i in self._parts[start][1]]
        position = {c: n for n, c in enumerate(self._set)}
        self._backfills.append(spilled + sorted(below, key=position.__getitem__))
        if not promoted:  # nothing beat the pivot: the pivot window already ranked the top
            self._final = self._above + [self._pivot]
            return
        self._round += 1
        self._begin(self._above + promoted + [self._pivot])

    # -- state --------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._final is not None

    def ranked(self) -> list[int]:
        tail = [i for backfill in reversed(self._backfills) for i in backfill]
        if self._final is not None:
            return self._final + tail
        if self._pivot is None:  # this round's pivot window has not finished: its set as it was
            return self._set + tail
        # mid-partition: what beat the pivot, the pivot, what no window has judged yet, what lost
        judged = {i for above, below in self._parts.values() for i in above + below}
        promoted = [i for start in sorted(self._parts) for i in self._parts[start][0]]
        unjudged = [i for i in self._set[self._w :] if i not in judged]
        lost = self._below + [i for start in sorted(self._parts) for i in self._parts[start][1]]
        return self._above + promoted + [self._pivot] + unjudged + lost + tail
