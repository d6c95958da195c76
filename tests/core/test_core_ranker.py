import asyncio
import re

import pytest

from reasonrank_plugins import Passage, ReasonRanker
from reasonrank_plugins.testing import ScriptedBackend


def by_number(query: str, content: str) -> float:
    return int(re.search(r"(\d+)", content).group(1))


def candidates(seed: int, n: int = 100) -> list[str]:
    return [f"doc {(i * 37 + seed * 11) % 1000}" for i in range(n)]


@pytest.fixture
def scripted():
    backend = ScriptedBackend(score=by_number, latency=0.01)
    with ReasonRanker(backend=backend) as ranker:
        yield ranker, backend


@pytest.mark.parametrize(
    ("query", "passages", "message"),
    [
        ("", ["a", "b"], "query"),
        ("   ", ["a", "b"], "query"),
        (None, ["a", "b"], "query"),
        ("q", [], "passages is empty"),
        ("q", "just a string", "passages must be a list"),
        ("q", ["a", 3], r"passages\[1\]"),
        ("q", ["a", Passage(None)], r"passages\[1\]"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(scripted, query, passages, message):
    ranker, backend = scripted
    with pytest.raises(ValueError, match=message):
        ranker.rerank(query, passages)
    assert backend.requests == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"window_size": 1}, "window_size"),
    ({"window_size": 10, "step": 10}, "step"),
    ({"step": 0}, "step"),
    ({"reasoning_budget": 0}, "reasoning_budget"),
])
def test_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReasonRanker(backend=ScriptedBackend(), **kwargs)


def test_bad_top_k_and_backend_options(scripted):
    ranker, _ = scripted
    with pytest.raises(ValueError, match="top_k"):
        ranker.rerank("q", ["a", "b"], top_k=0)
    with pytest.raises(ValueError, match="backend options"):
        ReasonRanker(backend=ScriptedBackend(), n_ctx=10)
    with pytest.raises(ValueError, match="backend must be"):
        ReasonRanker("demo", backend="nope")


def test_single_passage_returns_without_calling_the_model(scripted):
    ranker, backend = scripted
    result = ranker.rerank("q", ["only one"])
    assert result.order == [0] and result.scores == [1.0] and result.windows == []
    assert backend.requests == []


def test_empty_passages_are_shown_to_the_model_like_the_reference():
    backend = ScriptedBackend(score=lambda q, c: float(c.split()[-1]) if c.strip() else -1.0)
    with ReasonRanker(backend=backend) as ranker:
        result = ranker.rerank("q", ["doc 1", "", "doc 5", "   ", "doc 3"])
    assert result.order == [2, 4, 0, 1, 3] and result.empty == []
    assert len(backend.requests[0].messages[1]["content"].split("\n[")) == 6  # all 5 passages shown
    assert all(h.note is None for h in result.hits)


def test_drop_empty_ranks_empty_passages_last_without_the_model():
    backend = ScriptedBackend(score=by_number)
    with ReasonRanker(backend=backend, drop_empty=True) as ranker:
        result = ranker.rerank("q", ["doc 1", "", "doc 5", "   ", "doc 3"])
    assert result.order == [2, 4, 0, 1, 3]
    assert result.empty == [1, 3]
    notes = {h.index: h.note for h in result.hits}
    assert notes[1] and "empty" in notes[1] and notes[0] is None
    assert len(backend.requests[0].messages[1]["content"].split("\n[")) == 4  # 3 passages shown


def test_result_fields_and_top_k(scripted):
    ranker, _ = scripted
    passages = [Passage(f"doc {n}", id=f"d{n}") for n in (3, 9, 1, 7)]
    result = ranker.rerank("q", passages, top_k=2)
    assert result.order == [1, 3, 0, 2]
    assert all(a > b for a, b in zip(result.scores, result.scores[1:]))
    assert [h.passage.id for h in result.hits] == ["d9", "d7"]
    window = result.windows[0]
    assert window.indices == [0, 1, 2, 3] and window.order == [1, 3, 0, 2]
    assert window.reasoning == "ranked 4 passages by score" and window.answer == "[2] > [4] > [1] > [3]"
    assert str(window.status) == "ok" and not window.forced
    assert window.prompt_tokens > 0 and window.completion_tokens > 0 and window.seconds > 0
    assert result.reasoning_for(2) == window.reasoning and result.score_of(1) == 1.0


def test_rerank_many_matches_sequential_and_runs_chains_concurrently(scripted):
    ranker, backend = scripted
    items = [(f"q{s}", candidates(s)) for s in range(5)]
    sequential = [ranker.rerank(q, p) for q, p in items]
    assert backend.peak_in_flight == 1
    many = ranker.rerank_many(items)
    assert [r.order for r in many] == [r.order for r in sequential]
    assert backend.peak_in_flight == 5  # one window of every query's chain in flight at once
    assert ranker.engine.peak_in_flight == 5
    assert len(backend.requests) == 2 * 5 * 9


def test_lockstep_and_sequential_schedules_give_the_same_orders(scripted):
    ranker, _ = scripted
    items = [(f"q{s}", candidates(s, 30 + 10 * s)) for s in range(3)]
    orders = {
        schedule: [r.order for r in ranker.rerank_many(items, schedule=schedule)]
        for schedule in ("chains", "lockstep", "sequential")
    }
    assert orders["chains"] == orders["lockstep"] == orders["sequential"]


async def test_arerank_from_another_event_loop_shares_the_engine(scripted):
    ranker, backend = scripted
    results = await asyncio.gather(*(ranker.arerank(f"q{s}", candidates(s, 40)) for s in range(4)))
    assert [r.order for r in results] == [ranker.rerank(f"q{s}", candidates(s, 40)).order for s in range(4)]
    assert backend.peak_in_flight == 4


def test_reasoning_budget_exhausted_forces_the_answer():
    def long_thinker(query, contents):
        ranked = sorted(range(len(contents)), key=lambda i: -by_number(query, contents[i]))
        ids = " > ".join(f"[{i + 1}]" for i in ranked)
        return "<think>" + "hmm " * 500 + f"</think> <answer>{ids}</answer>"

    backend = ScriptedBackend(long_thinker)
    with ReasonRanker(backend=backend, reasoning_budget=50) as ranker:
        result = ranker.rerank("q", ["doc 2", "doc 9", "doc 4"])
    window = result.windows[0]
    assert window.forced and result.forced == 1
    assert result.order == [1, 2, 0] and str(window.status) == "ok"
    first, forced = backend.requests
    assert first.max_tokens == 50 + 100 and first.prefix == ""  # reasoning_budget + 100, as the reference
    assert forced.prefix.endswith("</think>\n<answer>") and forced.prefix.startswith("<think>hmm")
    assert forced.messages == first.messages and forced.stop == ("</answer>",)
    assert window.output.endswith("</answer>") and window.reasoning.startswith("hmm")


def test_stopping_without_an_answer_forces_one():
    """An unclosed think block holds no answer: the engine closes it and decodes the ranking."""
    backend = ScriptedBackend(lambda q, c: "<think>[1] is best... <answer>[2] > [1]")
    with ReasonRanker(backend=backend) as ranker:
        result = ranker.rerank("q", ["doc 1", "doc 2"])
    (window,) = result.windows
    assert window.forced and str(window.status) == "ok" and result.order == [1, 0]
    assert backend.requests[1].prefix == "<think>[1] is best... <answer>[2] > [1]</think>\n<answer>"


def test_unusable_output_keeps_input_order_and_never_raises():
    backend = ScriptedBackend(lambda q, c: "I cannot rank these, see [3] > [1].")
    with ReasonRanker(backend=backend) as ranker:
        result = ranker.rerank("q", ["doc 1", "doc 2", "doc 3"])
    (window,) = result.windows
    assert result.order == [0, 1, 2] and str(window.status) == "failed" and window.forced
    assert len(backend.requests) == 2  # one forced attempt, then the window keeps its order


def test_close_is_idempotent_and_leaves_a_shared_backend_open():
    backend = ScriptedBackend()
    ranker = ReasonRanker(backend=backend)
    ranker.close()
    ranker.close()
    assert not backend.closed
    with pytest.raises(RuntimeError, match="closed"):
        ranker.rerank("q", ["a", "b"])
