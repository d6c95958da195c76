"""The model-free ``scripted`` backend, loaded by name like any other backend."""

from __future__ import annotations

import asyncio
import json
import pickle

import pytest

from reasonrank_plugins import ReasonRanker, backends
from reasonrank_plugins.backends import GenerationRequest, load_backend, resolve_backend
from reasonrank_plugins.backends.scripted import KEPT_REQUESTS, ScriptedModelBackend, overlap_score
from reasonrank_plugins.options import RankerOptions

DOCS = ["blue sky over the sea", "the red fox jumps", "a fox den", "red paint"]
QUERY = "red fox"


@pytest.mark.parametrize(
    ("script", "order"),
    [
        ("identity", [0, 1, 2, 3]),
        ("reverse", [3, 2, 1, 0]),
        ("overlap", [1, 2, 3, 0]),
        ("demo", [1, 2, 3, 0]),
        ("demo-1.5b", [1, 2, 3, 0]),  # every embedded model name means overlap here
    ],
)
def test_each_script_ranks_a_window_as_named(script, order):
    with ReasonRanker(script, "scripted", window_size=4, step=2) as ranker:
        assert ranker.rerank(QUERY, DOCS).order == order
        assert ranker.backend.name == "scripted"
        assert ranker.model == f"scripted-{'overlap' if script.startswith('demo') else script}"


def test_options_and_bounded_requests(tmp_path):
    log = tmp_path / "queries.log"
    backend = load_backend("overlap", "scripted", latency=0.01, max_batch=32, log=str(log))
    assert isinstance(backend, ScriptedModelBackend) and backend.requests.maxlen == KEPT_REQUESTS
    with ReasonRanker(backend=backend, window_size=2, step=1) as ranker:
        ranker.rerank_many([(QUERY, DOCS)] * 30)  # 3 windows each
    assert len(backend.requests) == KEPT_REQUESTS
    assert [json.loads(line) for line in log.read_text().splitlines()] == [QUERY] * 90
    assert load_backend("reverse", "scripted", latency=0.0, max_batch=None, log=None).model_name == (
        "scripted-reverse"
    )


def test_context_length_capacity_and_word_counts():
    backend = load_backend("overlap", "scripted", max_batch=4, context_length=300)
    assert (backend.context_length, backend.capacity) == (300, 4)
    default = load_backend("overlap", "scripted")
    assert (default.context_length, default.capacity) == (None, None)
    messages = [{"role": "system", "content": "rank these"}, {"role": "user", "content": "red fox den"}]
    request = GenerationRequest(messages, max_tokens=8, prefix="<think>x </think>")
    assert backend.count_tokens(request) == 2 + 3 + 2
    generation = asyncio.run(backend.generate(request))
    assert generation.prompt_tokens == backend.count_tokens(request)


def test_overlap_score_is_the_fraction_of_query_words():
    assert overlap_score("Red fox", "the red FOX!") == 1.0 and overlap_score("red fox", "a fox") == 0.5
    assert overlap_score("", "anything") == 0.0


def test_unknown_script_names_the_choices():
    with pytest.raises(ValueError, match=r"\['fail', 'identity', 'overlap', 'reverse'\], got 'bm25'"):
        load_backend("bm25", "scripted")


def test_the_fail_script_fails_every_window():
    with ReasonRanker("fail", "scripted", window_size=3, step=1) as ranker:
        result = ranker.rerank(QUERY, DOCS)
    assert result.order == [0, 1, 2, 3] and result.statuses == {"error": 2}
    assert {w.error for w in result.windows} == {"ConnectionError: the scripted model 'fail' is down"}


def test_spec_with_scripted_options_pickles_and_builds():
    spec = RankerOptions(
        model="reverse", backend="scripted", window_size=4, step=2, backend_options={"latency": 0.01, "max_batch": 2}
    )
    with pickle.loads(pickle.dumps(spec)).build() as ranker:
        assert ranker.rerank(QUERY, DOCS).order == [3, 2, 1, 0]


@pytest.mark.parametrize("gpu", [False, True])
def test_auto_never_picks_scripted(monkeypatch, gpu):
    monkeypatch.setattr(backends, "_installed", lambda module: gpu)
    monkeypatch.setattr(backends, "_cuda", lambda: gpu)
    assert resolve_backend("overlap", "scripted") == "scripted"
    for model in ("identity", "reverse", "overlap", "scripted", "demo", "demo-1.5b", "m.gguf", "o/r:m.gguf"):
        assert resolve_backend(model) != "scripted"
        assert resolve_backend(model, base_url="http://x/v1") == "openai"
