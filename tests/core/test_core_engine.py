"""The engine at the real workload: failures, deadlines, context fitting, admission, one loop."""

import asyncio
import logging
import random
import re
import threading
import time

import pytest

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins import loop as engine_loop
from reasonrank_plugins.backends.base import GenerationRequest
from reasonrank_plugins.testing import ScriptedBackend


def by_number(query: str, content: str) -> float:
    match = re.search(r"(\d+)", content)
    return int(match.group(1)) if match else -1


def docs(seed: int, n: int = 100) -> list[str]:
    return [f"doc {s}" for s in random.Random(seed).sample(range(10_000), n)]


class Flaky(ScriptedBackend):
    """Raises on every first call of a window that shows a passage containing ``poison``."""

    async def generate(self, request):
        if "poison" in request.messages[-1]["content"] and not request.prefix:
            await asyncio.sleep(0.01)
            raise ConnectionError("no healthy replica")
        return await super().generate(request)


def test_a_failing_window_loses_no_query_and_is_logged_once(caplog):
    items = [(f"q{i}", docs(i, 50)) for i in range(4)]
    items[2][1][7] = "doc 3 poison"
    with ReasonRanker(backend=Flaky(score=by_number, latency=0.01)) as ranker, caplog.at_level(logging.WARNING):
        results = ranker.rerank_many(items)
    assert len(results) == 4 and all(sorted(r.order) == list(range(50)) for r in results)
    errors = [w for w in results[2].windows if str(w.status) == "error"]
    assert len(errors) == 1 and errors[0].error == "ConnectionError: no healthy replica"
    assert all(r.statuses["error"] == 0 for n, r in enumerate(results) if n != 2)
    assert len([r for r in caplog.records if "failed, kept in its input order" in r.message]) == 1


def test_on_error_raise_cancels_every_other_chain_then_raises():
    backend = Flaky(score=by_number, latency=0.3)
    items = [("q0", docs(0, 60)), ("q1", ["doc 1 poison", "doc 2"])] + [(f"q{i}", docs(i, 60)) for i in range(2, 5)]
    with ReasonRanker(backend=backend, on_error="raise") as ranker:
        with pytest.raises(ConnectionError, match="no healthy replica"):
            ranker.rerank_many(items)
        loop = ranker._running().loop

        async def others() -> int:
            return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

        assert asyncio.run_coroutine_threadsafe(others(), loop).result() == 0  # nothing left running
        assert backend.in_flight == 0 and ranker.engine.in_flight == 0 and ranker.engine.active == 0
        assert ranker.rerank("q", ["doc 1", "doc 2"]).order == [1, 0]  # the ranker still works


def test_timeout_keeps_unfinished_windows_in_order_and_returns_a_permutation():
    backend = ScriptedBackend(score=by_number, latency=0.25)
    with ReasonRanker(backend=backend, timeout=0.6) as ranker:
        began = time.perf_counter()
        result = ranker.rerank("q", docs(1))
        took = time.perf_counter() - began
    assert took < 1.5 and result.timed_out
    assert sorted(result.order) == list(range(100))
    statuses = [str(w.status) for w in result.windows]
    assert statuses == ["ok", "ok", "timeout"]
    assert result.windows[-1].order == result.windows[-1].indices


def test_timeout_per_call_and_queries_never_admitted():
    backend = ScriptedBackend(score=by_number, latency=0.2)
    with ReasonRanker(backend=backend, max_active_queries=1) as ranker:
        results = ranker.rerank_many([(f"q{i}", docs(i, 20)) for i in range(5)], timeout=0.5)
        assert [r.timed_out for r in results] == [False, False, True, True, True]
        assert [len(r.windows) for r in results] == [1, 1, 1, 0, 0]
        assert results[4].order == list(range(20))  # never admitted: the input order
        with pytest.raises(ValueError, match="timeout"):
            ranker.rerank("q", ["a", "b"], timeout=0)


class Context(ScriptedBackend):
    """A scripted model with a context window; whitespace words stand in for tokens."""

    def __init__(self, *args, context_length: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.context_length = context_length

    def count_tokens(self, request: GenerationRequest) -> int:
        return sum(len(m["content"].split(" ")) for m in request.messages) + len(request.prefix.split(" "))


def long_thinker(query: str, contents: list[str]) -> str:
    ranked = sorted(range(len(contents)), key=lambda i: -by_number(query, contents[i]))
    return "<think>" + "hmm " * 3000 + "</think> <answer>" + " > ".join(f"[{i + 1}]" for i in ranked) + "</answer>"


def test_windows_are_fitted_into_the_context_and_never_exceed_it(caplog):
    passages = [f"doc {n} " + " ".join(["word"] * 60) for n in random.Random(4).sample(range(1000), 20)]
    backend = Context(long_thinker, context_length=1200)
    with caplog.at_level(logging.WARNING):
        ranker = ReasonRanker(backend=backend, max_passage_tokens=512, reasoning_budget=3072)
    assert any("may not fit the model's context of 1200 tokens" in r.message for r in caplog.records)
    with ranker:
        result = ranker.rerank("q", passages)
    (window,) = result.windows
    assert sorted(result.order) == list(range(20)) and window.forced
    assert "passages cut to" in window.fitted and window.passage_tokens < 60
    for request in backend.requests:
        assert backend.count_tokens(request) + request.max_tokens <= 1200
    assert backend.requests[0].max_tokens == window.max_tokens < 3172


def test_only_the_budget_is_clamped_when_the_prompt_fits():
    backend = Context(score=by_number, context_length=2000)
    with ReasonRanker(backend=backend, max_passage_tokens=50) as ranker:
        result = ranker.rerank("q", docs(2, 20))
    (window,) = result.windows
    assert window.passage_tokens == 50 and "passages cut" not in window.fitted
    assert window.fitted.startswith("generation budget 3172 ->")
    first = backend.requests[0]
    assert backend.count_tokens(first) + first.max_tokens + 7 * 20 + 16 <= 2000  # room for a forced answer


def test_admission_bounds_active_queries_and_defaults_to_the_backend_capacity():
    backend = ScriptedBackend(score=by_number, latency=0.01)
    with ReasonRanker(backend=backend, max_active_queries=3) as ranker:
        many = ranker.rerank_many([(f"q{i}", docs(i, 30)) for i in range(10)])
        assert ranker.engine.peak_active == 3 and backend.peak_in_flight == 3
    backend.capacity = 4
    with ReasonRanker(backend=backend) as ranker:
        again = ranker.rerank_many([(f"q{i}", docs(i, 30)) for i in range(10)])
        assert ranker.engine.peak_active == 4
    assert [r.order for r in many] == [r.order for r in again]
    with pytest.raises(ValueError, match="max_active_queries"):
        ReasonRanker(backend=backend, max_active_queries=0)


def test_older_queries_and_forced_answers_get_priority():
    backend = ScriptedBackend(long_thinker)
    with ReasonRanker(backend=backend, reasoning_budget=20) as ranker:
        ranker.rerank_many([("q0", ["doc 1", "doc 2"]), ("q1", ["doc 3", "doc 4"])])
    first = {r.priority for r in backend.requests if not r.prefix}
    forced = {r.priority for r in backend.requests if r.prefix}
    assert first == {0, 1} and max(forced) < min(first)


def test_rankers_sharing_a_backend_share_one_loop_under_threads_and_asyncio():
    backend = ScriptedBackend(score=by_number, latency=0.01, max_batch=2)  # its semaphore binds to one loop
    a, b = ReasonRanker(backend=backend), ReasonRanker(backend=backend, window_size=10, step=5)
    assert a._running() is b._running()
    expected = {name: r.rerank("q", docs(9, 40)).order for name, r in (("a", a), ("b", b))}
    errors: list[BaseException] = []
    orders: list[tuple[str, list[int]]] = []

    def worker(name: str, ranker: ReasonRanker) -> None:
        try:
            orders.append((name, ranker.rerank("q", docs(9, 40)).order))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n, r)) for n, r in (("a", a), ("b", b)) * 3]
    for t in threads:
        t.start()

    async def from_asyncio():
        return await asyncio.gather(a.arerank("q", docs(9, 40)), b.arerank("q", docs(9, 40)))

    async_a, async_b = asyncio.run(from_asyncio())
    for t in threads:
        t.join()
    assert not errors and len(orders) == 6
    assert all(order == expected[name] for name, order in orders)
    assert async_a.order == expected["a"] and async_b.order == expected["b"]
    a.close()
    assert b.rerank("q", ["doc 1", "doc 2"]).order == [1, 0]  # b still has the loop
    b.close()
    assert id(backend) not in engine_loop._loops


def test_close_closes_an_owned_backend_while_its_loop_still_runs():
    seen = {}

    class Owned(ScriptedBackend):
        def close(self):
            seen["loop running"] = ranker._running_loop.loop.is_running()
            super().close()

    backend = Owned()
    ranker = ReasonRanker(backend=backend)
    ranker._running_loop = ranker._running()
    ranker._owns_backend = True
    ranker.close()
    assert seen == {"loop running": True} and backend.closed


@pytest.mark.slow
def test_demo_model_with_a_short_context_fits_every_window(dl19_top, caplog):
    """The real demo model with n_ctx=2048: 20 passages of about 300 tokens cannot fit at 512 each."""
    from reasonrank_plugins.backends import load_backend

    query, pool = dl19_top(0, 60)
    passages = [" ".join(p.text for p in pool[i : i + 3]) for i in range(0, 60, 3)]
    backend = load_backend("demo-0.5b", n_ctx=2048)
    try:
        with caplog.at_level(logging.WARNING):
            ranker = ReasonRanker(backend=backend, max_passage_tokens=512, reasoning_budget=256)
        assert any("may not fit the model's context of 2048" in r.message for r in caplog.records)
        with ranker:
            result = ranker.rerank(query, passages)
    finally:
        backend.close()
    assert sorted(result.order) == list(range(20))
    (window,) = result.windows
    assert str(window.status) != "error", window.error
    assert window.passage_tokens < 512 and "passages cut to" in window.fitted
    calls = 2 if window.forced else 1  # prompt_tokens adds up the first and the forced call
    assert window.prompt_tokens <= 2048 * calls
