"""The exact-result cache: ``ReasonRanker(cache_size=N)`` on the scripted backend, counting the
backend's calls."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses

import pytest

from reasonrank_plugins import Passage, ReasonRanker
from reasonrank_plugins.backends.scripted import overlap_score
from reasonrank_plugins.cache import result_key
from reasonrank_plugins.engine import EngineConfig
from reasonrank_plugins.testing import ScriptedBackend

QUERY = "red fox"
DOCS = ["blue sky over the sea", "the red fox jumps", "a fox den", "red paint", "nothing here"]


def cached_ranker(backend: ScriptedBackend, size: int = 16, **options) -> ReasonRanker:
    return ReasonRanker(backend=backend, window_size=3, step=1, cache_size=size, **options)


def test_the_cache_is_off_by_default():
    backend = ScriptedBackend(score=overlap_score)
    with ReasonRanker(backend=backend, window_size=3, step=1) as ranker:
        assert ranker.cache is None
        first = ranker.rerank(QUERY, DOCS)
        second = ranker.rerank(QUERY, DOCS)
    assert len(backend.requests) == 2 * len(first.windows)
    assert not first.cached and not second.cached


def test_a_hit_returns_the_stored_result_cut_to_its_own_top_k():
    backend = ScriptedBackend(score=overlap_score)
    with cached_ranker(backend) as ranker:
        first = ranker.rerank(QUERY, DOCS)
        calls = len(backend.requests)
        passages = [Passage(text, id=f"d{i}", metadata={"n": i}) for i, text in enumerate(DOCS)]
        second = ranker.rerank(QUERY, passages, top_k=2)
    assert calls == len(first.windows) > 0
    assert len(backend.requests) == calls  # no model call for the hit
    assert not first.cached and second.cached
    assert second.order == first.order and second.scores == first.scores
    assert second.windows == first.windows
    assert [h.index for h in second.hits] == first.order[:2]
    assert [h.passage.id for h in second.hits] == [f"d{i}" for i in first.order[:2]]  # this call's passages
    assert len(first.hits) == len(DOCS)  # the stored result was not cut by the hit's top_k


@pytest.mark.parametrize(
    ("query", "passages", "call"),
    [
        ("red fox den", DOCS, {}),  # another query
        (QUERY, [*DOCS[:4], "nothing here either"], {}),  # one passage changed
        (QUERY, [Passage(DOCS[0], title="sky"), *DOCS[1:]], {}),  # a title added
        (QUERY, DOCS[::-1], {}),  # the same passages in another order
        (QUERY, DOCS, {"strategy": "tdpart"}),  # another strategy for this call
        (QUERY, DOCS, {"max_passage_tokens": 2}),  # another passage cut for this call
    ],
)
def test_a_changed_query_passage_or_option_misses(query, passages, call):
    backend = ScriptedBackend(score=overlap_score)
    with cached_ranker(backend, cutoff=2) as ranker:
        ranker.rerank(QUERY, DOCS)
        calls = len(backend.requests)
        other = ranker.rerank(query, passages, **call)
        again = ranker.rerank(query, passages, **call)
    assert not other.cached and len(backend.requests) > calls
    assert again.cached and again.order == other.order


def test_the_key_covers_the_model_and_every_engine_option():
    base = result_key(["scripted", "m"], EngineConfig(), QUERY, [Passage(d) for d in DOCS])
    assert result_key(["scripted", "m"], EngineConfig(), QUERY, [Passage(d) for d in DOCS]) == base
    assert result_key(["scripted", "other"], EngineConfig(), QUERY, [Passage(d) for d in DOCS]) != base
    changes = {"window_size": 25, "step": 2, "max_passage_tokens": 64, "reasoning_budget": 100, "answer_budget": 9,
               "strategy": "tdpart", "cutoff": 5, "depth": 3, "budget": 4, "drop_empty": True}
    assert set(changes) == {f.name for f in dataclasses.fields(EngineConfig)}
    for name, value in changes.items():
        config = EngineConfig(**{name: value})
        assert result_key(["scripted", "m"], config, QUERY, [Passage(d) for d in DOCS]) != base, name
    # id and metadata never reach the model: the same key
    tagged = [Passage(d, id=str(i), metadata={"x": i}) for i, d in enumerate(DOCS)]
    assert result_key(["scripted", "m"], EngineConfig(), QUERY, tagged) == base


def test_each_ranker_has_its_own_cache():
    one = ScriptedBackend(score=overlap_score, model_name="one")
    two = ScriptedBackend(score=lambda q, c: -overlap_score(q, c), model_name="two")
    with cached_ranker(one) as a, cached_ranker(two) as b:
        assert a.rerank(QUERY, DOCS).order != b.rerank(QUERY, DOCS).order
        assert a.rerank(QUERY, DOCS).cached and b.rerank(QUERY, DOCS).cached


def test_the_least_recently_used_result_is_dropped():
    backend = ScriptedBackend(score=overlap_score)
    with cached_ranker(backend, size=2) as ranker:
        ranker.rerank("red", DOCS)
        ranker.rerank("fox", DOCS)
        assert ranker.rerank("red", DOCS).cached  # "red" is now the most recent
        ranker.rerank("sea", DOCS)  # drops "fox"
        assert len(ranker.cache) == 2
        assert ranker.rerank("red", DOCS).cached
        assert not ranker.rerank("fox", DOCS).cached


def test_a_result_with_a_failed_window_is_not_stored():
    with ReasonRanker("fail", "scripted", cache_size=4) as ranker:
        first = ranker.rerank(QUERY, DOCS)
        second = ranker.rerank(QUERY, DOCS)
    assert first.statuses["error"] == 1
    assert not second.cached and len(ranker.cache) == 0


async def test_concurrent_identical_requests_compute_once():
    backend = ScriptedBackend(score=overlap_score, latency=0.05)
    with cached_ranker(backend) as ranker:
        results = await asyncio.gather(*(ranker.arerank(QUERY, DOCS, top_k=k) for k in (1, 2, 3, None)))
        windows = len(results[0].windows)
        assert len(backend.requests) == windows  # one computation for the four calls
        assert sorted(r.cached for r in results) == [False, True, True, True]
        assert [len(r.hits) for r in results] == [1, 2, 3, len(DOCS)]
        assert len({tuple(r.order) for r in results}) == 1
        # the same query twice in one batch, and from threads at once: still one computation each
        many = ranker.rerank_many([("fox den", DOCS), ("fox den", DOCS)])
        assert len(backend.requests) == windows + len(many[0].windows)
        calls = len(backend.requests)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            threaded = list(pool.map(lambda _: ranker.rerank("sea sky", DOCS), range(4)))
        assert len(backend.requests) == calls + len(threaded[0].windows)
        assert sum(not r.cached for r in threaded) == 1


def test_cache_size_is_checked():
    with pytest.raises(ValueError, match="cache_size"):
        ReasonRanker(backend=ScriptedBackend(), cache_size=-1)


# -- the disk cache: ReasonRanker(cache_dir=...) ------------------------------------------------------
def test_a_second_ranker_on_the_same_cache_dir_answers_from_disk(tmp_path):
    pytest.importorskip("diskcache")
    first_backend, second_backend = ScriptedBackend(score=overlap_score), ScriptedBackend(score=overlap_score)
    with ReasonRanker(backend=first_backend, window_size=3, step=1, cache_dir=tmp_path) as ranker:
        first = ranker.rerank_many([(QUERY, DOCS), ("sea sky", DOCS)])
    assert len(first_backend.requests) == sum(len(r.windows) for r in first) > 0
    passages = [Passage(text, id=f"d{i}") for i, text in enumerate(DOCS)]
    with ReasonRanker(backend=second_backend, window_size=3, step=1, cache_dir=tmp_path) as ranker:
        second = ranker.rerank_many([(QUERY, passages), ("sea sky", DOCS)], top_k=2)
        other = ranker.rerank("red fox den", DOCS)  # not stored: computed, then stored
        assert not other.cached and len(ranker.disk_cache) == 3
    assert len(second_backend.requests) == len(other.windows)  # no model call for the stored two
    assert all(r.cached for r in second) and not any(r.cached for r in first)
    for a, b in zip(first, second):
        assert dataclasses.replace(b, cached=False, top_k=None, passages=a.passages) == a  # lossless
    assert [h.passage.id for h in second[0].hits] == [f"d{i}" for i in first[0].order[:2]]  # its own passages


def test_the_lru_sits_in_front_of_the_disk(tmp_path):
    pytest.importorskip("diskcache")
    with cached_ranker(ScriptedBackend(score=overlap_score), cache_dir=tmp_path) as ranker:
        ranker.rerank(QUERY, DOCS)
    backend = ScriptedBackend(score=overlap_score)
    with cached_ranker(backend, cache_dir=tmp_path) as ranker:
        assert ranker.rerank(QUERY, DOCS).cached and ranker.rerank(QUERY, DOCS).cached
        assert (ranker.disk_cache.hits, ranker.cache.hits) == (1, 1)  # the second came from the LRU
    assert backend.requests == []


def test_a_failed_result_is_not_stored_on_disk(tmp_path):
    pytest.importorskip("diskcache")
    with ReasonRanker("fail", "scripted", cache_dir=tmp_path) as ranker:
        first = ranker.rerank(QUERY, DOCS)
        second = ranker.rerank(QUERY, DOCS)
        assert len(ranker.disk_cache) == 0
    assert first.statuses["error"] == 1 and not second.cached
    slow = ScriptedBackend(score=overlap_score, latency=0.5)
    with ReasonRanker(backend=slow, window_size=3, step=1, cache_dir=tmp_path, timeout=0.1) as ranker:
        assert ranker.rerank(QUERY, DOCS).timed_out
        assert len(ranker.disk_cache) == 0


def test_a_file_is_not_a_cache_dir(tmp_path):
    path = tmp_path / "cache"
    path.write_text("")
    with pytest.raises(ValueError, match="cache_dir must be a directory"):
        ReasonRanker(backend=ScriptedBackend(), cache_dir=path)
    with pytest.raises(ValueError, match="cache_dir"):
        ReasonRanker(backend=ScriptedBackend(), cache_dir="")
