import random
import re

import pytest

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.testing import ScriptedBackend
from reasonrank_plugins.windows import window_spans


def test_spans_for_100_candidates_window_20_step_10():
    assert window_spans(100, 20, 10) == [(80 - 10 * k, 100 - 10 * k) for k in range(9)]


@pytest.mark.parametrize(
    ("n", "w", "s", "expected"),
    [
        (0, 20, 10, []),
        (1, 20, 10, []),
        (2, 20, 10, [(0, 2)]),
        (15, 20, 10, [(0, 15)]),
        (20, 20, 10, [(0, 20)]),
        (25, 20, 10, [(5, 25), (0, 20)]),
        (33, 20, 10, [(13, 33), (3, 23), (0, 20)]),
        (30, 10, 5, [(20, 30), (15, 25), (10, 20), (5, 15), (0, 10)]),
    ],
)
def test_spans_edge_cases(n, w, s, expected):
    assert window_spans(n, w, s) == expected


@pytest.mark.parametrize(("w", "s"), [(1, 1), (0, 0), (10, 10), (10, 11), (10, 0)])
def test_invalid_window_or_step(w, s):
    with pytest.raises(ValueError):
        window_spans(50, w, s)


def _by_number(query: str, content: str) -> float:
    return int(re.search(r"score (\d+)", content).group(1))


def test_hand_worked_final_order_for_100_candidates():
    """Passage i has score i, so the input is worst-first. Worked by hand: window [80,100) sorts
    99..80; each next window lifts the best 10 (99..90) and puts its own 10 below them, e.g. after
    [70,90) ranks 70..89 hold 99..90, 79..70. The last window [0,20) leaves 99..90 on top, then 9..0;
    below, each block of ten that a window pushed down stays: 19..10, 29..20, ..., 89..80."""
    expected = list(range(99, 89, -1)) + [i for b in range(0, 90, 10) for i in range(b + 9, b - 1, -1)]
    backend = ScriptedBackend(score=_by_number)
    with ReasonRanker(backend=backend) as ranker:
        result = ranker.rerank("q", [f"passage score {i}" for i in range(100)])
    assert result.order == expected
    assert len(result.windows) == 9 and len(backend.requests) == 9
    assert [(w.start, w.end) for w in result.windows] == window_spans(100, 20, 10)
    assert all(str(w.status) == "ok" for w in result.windows)


def test_window_10_step_5_lifts_the_global_top_5():
    rng = random.Random(7)
    scores = rng.sample(range(1000), 60)
    with ReasonRanker(backend=ScriptedBackend(score=_by_number), window_size=10, step=5) as ranker:
        result = ranker.rerank("q", [f"score {s}" for s in scores])
    assert len(result.windows) == len(window_spans(60, 10, 5)) == 11
    top5 = sorted(range(60), key=lambda i: -scores[i])[:5]
    assert result.order[:5] == top5
    assert sorted(result.order) == list(range(60))
