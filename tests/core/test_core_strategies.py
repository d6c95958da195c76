"""Window strategies: sliding re-expressed byte for byte, and a hand-worked tdpart trace."""

import json
import random
import re
from pathlib import Path

import pytest
from sliding_scenarios import SCENARIOS, SCRIPTS, adversarial, by_number

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.prompt import ANSWER_TOKENS
from reasonrank_plugins.strategies import StrategyConfig, make_strategy
from reasonrank_plugins.testing import ScriptedBackend

GOLDEN = json.loads((Path(__file__).parent / "data" / "sliding_golden.json").read_text())


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_sliding_strategy_is_byte_identical_to_the_old_engine(name):
    """``data/sliding_golden.json`` was written by the engine before strategies existed (commit
    1d2225f). It decoded ``reasoning_budget`` tokens in the first call; the engine now decodes
    ``reasoning_budget + ANSWER_TOKENS`` as the reference does, so the old budget is given minus it."""
    scenario, golden = SCENARIOS[name], GOLDEN[name]
    script = SCRIPTS[scenario["script"]]
    backend = ScriptedBackend(script) if script else ScriptedBackend(score=by_number)
    opts = dict(scenario["opts"])
    opts["reasoning_budget"] = opts.get("reasoning_budget", 3072) - ANSWER_TOKENS
    with ReasonRanker(backend=backend, **opts) as ranker:
        result = ranker.rerank(f"query {name}", scenario["docs"])
    assert result.order == golden["order"]
    fields = ("start", "end", "indices", "order", "reasoning", "answer", "prompt_tokens",
              "completion_tokens", "forced", "output")
    got = [{f: getattr(w, f) for f in fields} | {"status": str(w.status)} for w in result.windows]
    assert got == golden["windows"]
    requests = [dict(messages=r.messages, max_tokens=r.max_tokens, prefix=r.prefix, stop=list(r.stop))
                for r in backend.requests]
    assert requests == golden["requests"]
    assert [w.round for w in result.windows] == list(range(len(result.windows))) and result.depth == len(got)


def _trace_scores() -> list[int]:
    scores = [10 * i for i in range(20)] + [5] * 30  # the top window comes in worst-first
    scores[25], scores[30], scores[45], scores[47] = 500, 155, 125, 95
    return scores


def test_tdpart_hand_worked_trace_on_50_candidates():
    """Window 20, cutoff 10, the script ranks by the number in the passage (stable on ties).
    Round 0 ranks candidates 0-19 as 19..0: the pivot is its 10th, candidate 10 (score 100); 19..11
    are above it, 9..0 below. Round 1 compares the other 30 with the pivot, placed first, in two
    windows at once: [10, 20..38] puts 25 (500) and 30 (155) above it; [10, 39..49] puts 45 (125)
    above and 47 (95) just below. Round 2 ranks the 13 that beat or are the pivot:
    25, 19, 18, 17, 16, 30 (155 > 150), 15, 14, 13, 45 (125 > 120), 12, 11, 10. The backfill follows
    in prior order: 0..9, then 20..49 without 25, 30 and 45."""
    scores = _trace_scores()
    backend = ScriptedBackend(score=by_number, latency=0.02)
    with ReasonRanker(backend=backend, strategy="tdpart", window_size=20, cutoff=10) as ranker:
        result = ranker.rerank("q", [f"doc {s}" for s in scores])
    top = [25, 19, 18, 17, 16, 30, 15, 14, 13, 45, 12, 11, 10]
    backfill = list(range(10)) + [i for i in range(20, 50) if i not in (25, 30, 45)]
    assert result.order == top + backfill
    assert result.depth == 3 and [w.round for w in result.windows] == [0, 1, 1, 2]
    assert [w.kind for w in result.windows] == ["pivot", "partition", "partition", "final"]
    pivot, part_a, part_b, final = result.windows
    assert pivot.indices == list(range(20))
    assert part_a.indices == [10, *range(20, 39)] and part_b.indices == [10, *range(39, 50)]
    assert final.indices == [19, 18, 17, 16, 15, 14, 13, 12, 11, 25, 30, 45, 10]
    assert backend.peak_in_flight == 2  # the two partition windows ran together


def test_tdpart_runs_independent_windows_concurrently_on_100_candidates():
    rng = random.Random(3)
    scores = rng.sample(range(1000), 100)
    backend = ScriptedBackend(score=by_number, latency=0.05)
    with ReasonRanker(backend=backend, strategy="tdpart") as ranker:
        result = ranker.rerank("q", [f"doc {s}" for s in scores])
    assert backend.peak_in_flight == 5 and ranker.engine.peak_in_flight == 5  # 80 others / 19 per window
    assert sorted(result.order) == list(range(100))
    assert [s for s in sorted(scores, reverse=True)[:10]] == [scores[i] for i in result.order[:10]]


def test_tdpart_with_nothing_above_the_pivot_takes_two_rounds():
    scores = list(range(1000, 900, -1))  # already in order: no candidate beats the pivot
    with ReasonRanker(backend=ScriptedBackend(score=by_number), strategy="tdpart") as ranker:
        result = ranker.rerank("q", [f"doc {s}" for s in scores])
    assert result.order == list(range(100)) and result.depth == 2 and len(result.windows) == 6


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n", [2, 19, 20, 21, 57, 100])
def test_tdpart_is_a_permutation_under_adversarial_outputs(seed, n):
    docs = [f"doc {random.Random(seed * 1000 + i).randrange(97)} text" for i in range(n)]
    with ReasonRanker(backend=ScriptedBackend(adversarial), strategy="tdpart", cutoff=1 + seed % 9,
                      reasoning_budget=30) as ranker:
        result = ranker.rerank(f"query {seed}", docs)
    assert sorted(result.order) == list(range(n))
    for w in result.windows:
        assert sorted(w.order) == sorted(w.indices)


class FlakyBackend(ScriptedBackend):
    """Raises for every window that shows a passage containing ``poison``."""

    async def generate(self, request):
        if "poison" in request.messages[-1]["content"] and not request.prefix:
            raise RuntimeError("HTTP 400: prompt too long")
        return await super().generate(request)


@pytest.mark.parametrize("strategy", ["sliding", "tdpart"])
def test_an_error_in_one_window_keeps_the_rest(strategy):
    scores = random.Random(5).sample(range(1000), 60)
    docs = [f"doc {s}" for s in scores]
    docs[45] = f"doc {scores[45]} poison"
    with ReasonRanker(backend=FlakyBackend(score=by_number), strategy=strategy) as ranker:
        result = ranker.rerank("q", docs)
    assert sorted(result.order) == list(range(60))
    errors = [w for w in result.windows if str(w.status) == "error"]
    assert errors and all(w.error == "RuntimeError: HTTP 400: prompt too long" for w in errors)
    assert all(w.order == w.indices for w in errors)
    assert any(str(w.status) == "ok" for w in result.windows)
    assert all(45 in w.indices for w in errors) and all(45 not in w.indices for w in result.windows
                                                         if str(w.status) == "ok")


@pytest.mark.parametrize(("options", "message"), [
    ({"strategy": "bubble"}, "strategy must be one of"),
    ({"strategy": "tdpart", "cutoff": 20}, "cutoff must be < window_size"),
    ({"strategy": "tdpart", "cutoff": 0}, "cutoff must be an int >= 1"),
    ({"strategy": "tdpart", "depth": 0}, "depth must be None or an int >= 1"),
    ({"strategy": "sliding", "depth": -3}, "depth must be None"),
])
def test_bad_strategy_options_raise_value_error(options, message):
    with pytest.raises(ValueError, match=message):
        ReasonRanker(backend=ScriptedBackend(), **options)


def test_per_call_strategy_override_and_depth():
    backend = ScriptedBackend(score=by_number)
    docs = [f"doc {s}" for s in random.Random(2).sample(range(1000), 40)]
    with ReasonRanker(backend=backend, depth=25) as ranker:
        sliding = ranker.rerank("q", docs)
        tdpart = ranker.rerank("q", docs, strategy="tdpart")
        with pytest.raises(ValueError, match="strategy must be one of"):
            ranker.rerank("q", docs, strategy="nope")
    assert sliding.strategy == "sliding" and tdpart.strategy == "tdpart"
    for result in (sliding, tdpart):
        assert result.order[25:] == list(range(25, 40))  # beyond depth: never shown, prior order
        assert all(max(w.indices) < 25 for w in result.windows)


def test_strategy_ranking_is_a_permutation_at_every_step():
    """The order a run cut short returns: whatever the strategy has seen so far."""
    rng = random.Random(11)
    for _ in range(20):
        n = rng.randrange(2, 120)
        config = StrategyConfig(20, 10, rng.randrange(1, 20), None, rng.choice([None, 0, 25]))
        strategy = make_strategy("tdpart", list(range(n)), config)
        while not strategy.done:
            ready = strategy.ready()
            assert ready
            assert sorted(strategy.ranking()) == list(range(n))
            for window in rng.sample(ready, len(ready)):
                order = list(window.indices)
                rng.shuffle(order)
                strategy.complete(window, order)
                assert sorted(strategy.ranking()) == list(range(n))


def test_tdpart_budget_caps_the_final_set_and_budget_0_repeats_the_partitioning():
    """Random order: about half of the 80 others beat the top window's 10th. The default budget
    (window_size) keeps 10 of them, the best of each partition window first, so the final window
    is full and the run takes 3 rounds; budget=0 partitions the larger set again."""
    scores = random.Random(3).sample(range(1000), 100)
    passages = [f"doc {s}" for s in scores]
    backend = ScriptedBackend(score=by_number)
    with ReasonRanker(backend=backend, strategy="tdpart") as a, ReasonRanker(backend=backend, strategy="tdpart",
                                                                             budget=0) as b:
        capped, uncapped = a.rerank("q", passages), b.rerank("q", passages)
    assert capped.depth == 3 and len(capped.windows[-1].indices) == 20 and capped.windows[-1].kind == "final"
    assert uncapped.depth > 3 and len(uncapped.windows) > len(capped.windows)
    best = sorted(range(100), key=lambda i: -scores[i])[:10]
    assert uncapped.order[:10] == best  # a perfect ranker with no cap finds the exact top 10
    assert sorted(capped.order) == sorted(uncapped.order) == list(range(100))
    with pytest.raises(ValueError, match="budget must be"):
        ReasonRanker(backend=ScriptedBackend(), strategy="tdpart", budget=5)
