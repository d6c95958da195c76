"""ReasonRankRanker in a real Haystack pipeline (InMemoryBM25Retriever -> ranker), offline."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import ClassVar
from unittest.mock import AsyncMock

import pytest
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.telemetry import _telemetry as haystack_telemetry
from haystack.utils import Secret
from haystack_integrations.components.rankers.reasonrank import ReasonRankRanker

from reasonrank_plugins import ReasonRanker, adapters
from reasonrank_plugins.adapters import (
    NOTE_KEY,
    REASONING_KEY,
    REMOTE_CODE_ENV,
    RETRIEVAL_SCORE_KEY,
    STATUS_KEY,
    USAGE_KEY,
)
from reasonrank_plugins.backends import BACKENDS
from reasonrank_plugins.testing import OVERLAP_QUERY, TDPART_CASE, ScriptedBackend, parse_window
from reasonrank_plugins.types import TIMEOUT_NOTE

DATA = Path(os.environ.get("REASONRANK_DATA", Path(__file__).resolve().parents[4] / "shared" / "data"))
NOVELEVAL = DATA / "noveleval"
QUERY_IDS = ("0", "1", "2", "3", "4")
RETRIEVED = 6
NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0}


def word_count(query: str, content: str) -> float:
    """The scripted model prefers longer passages (unchanged by the prompt's text cleaning)."""
    return len(content.split())


class WordCountBackend(ScriptedBackend):
    """A scripted backend that ``load_backend`` can build by name, so pipelines serialize."""

    instances: ClassVar[list[WordCountBackend]] = []

    def __init__(self, model: str, **options: object) -> None:
        super().__init__(score=word_count, model_name=model)
        self.options = options
        WordCountBackend.instances.append(self)


@pytest.fixture(autouse=True)
def scripted_backend_name(monkeypatch):
    """Register ``backend="word-count"`` for the engine's loader (undone after each test); no telemetry."""
    monkeypatch.setattr(haystack_telemetry, "telemetry", None)
    monkeypatch.setitem(BACKENDS, "word-count", f"{__name__}:WordCountBackend")
    monkeypatch.setattr(WordCountBackend, "instances", [])


@pytest.fixture(scope="module")
def queries() -> dict[str, str]:
    rows = [json.loads(line) for line in (NOVELEVAL / "queries.jsonl").open()]
    return {r["_id"]: r["text"] for r in rows if r["_id"] in QUERY_IDS}


@pytest.fixture(scope="module")
def store() -> InMemoryDocumentStore:
    docs = []
    for line in (NOVELEVAL / "corpus.jsonl").open():
        row = json.loads(line)
        if row["_id"].split("-")[0] in QUERY_IDS:
            docs.append(Document(id=row["_id"], content=row["text"], meta={"source": "noveleval"}))
    store = InMemoryDocumentStore()
    store.write_documents(docs)
    return store


def pipeline(store: InMemoryDocumentStore, ranker: ReasonRankRanker, top_k: int = RETRIEVED) -> Pipeline:
    pipe = Pipeline()
    pipe.add_component("retriever", InMemoryBM25Retriever(store, top_k=top_k))
    pipe.add_component("ranker", ranker)
    pipe.connect("retriever.documents", "ranker.documents")
    return pipe


def inputs(query: str) -> dict:
    return {"retriever": {"query": query}, "ranker": {"query": query}}


def expected(store: InMemoryDocumentStore, query: str) -> list[Document]:
    """What the retriever returns, reordered by the scripted model's score."""
    retrieved = InMemoryBM25Retriever(store, top_k=RETRIEVED).run(query)["documents"]
    return sorted(retrieved, key=lambda d: -word_count(query, d.content))


def check(got: list[Document], want: list[Document], top_k: int) -> None:
    assert [d.id for d in got] == [d.id for d in want[:top_k]]
    assert [d.score for d in got] == [(RETRIEVED - r) / RETRIEVED for r in range(top_k)]
    for doc, old in zip(got, want):
        assert doc.content == old.content and doc.meta["source"] == "noveleval"
        assert doc.meta[REASONING_KEY] == f"ranked {RETRIEVED} passages by score"
        assert doc.meta[RETRIEVAL_SCORE_KEY] == pytest.approx(old.score)


def test_pipeline_reranks_in_scripted_order(store, queries):
    ranker = ReasonRankRanker(top_k=4, backend="word-count", model="word-count", keep_retrieval_score=True)
    pipe = pipeline(store, ranker)
    want = expected(store, queries["0"])
    assert [d.id for d in want] != [d.id for d in sorted(want, key=lambda d: -d.score)]

    got = pipe.run(inputs(queries["0"]))["ranker"]["documents"]

    check(got, want, top_k=4)
    (backend,) = WordCountBackend.instances
    assert len(backend.requests) == 1


async def test_run_async_uses_the_native_async_path(store, queries, monkeypatch):
    ranker = ReasonRankRanker(top_k=3, backend="word-count", model="word-count", keep_retrieval_score=True)
    ranker.warm_up()
    spy = AsyncMock(wraps=ranker._ranker.arerank)
    monkeypatch.setattr(ranker._ranker, "arerank", spy)
    monkeypatch.setattr(ranker._ranker, "rerank", _no_sync_path)

    result = await pipeline(store, ranker).run_async(inputs(queries["1"]))

    check(result["ranker"]["documents"], expected(store, queries["1"]), top_k=3)
    spy.assert_awaited_once()


def _no_sync_path(*args, **kwargs):
    raise AssertionError("the async path must not fall back to the sync rerank")


def test_pipeline_dumps_and_loads(store, queries):
    ranker = ReasonRankRanker(top_k=2, backend="word-count", model="word-count", window_size=8, step=4)
    pipe = pipeline(store, ranker)
    first = pipe.run(inputs(queries["2"]))["ranker"]["documents"]

    text = pipe.dumps()
    restored = Pipeline.loads(text)

    assert "haystack_integrations.components.rankers.reasonrank.ranker.ReasonRankRanker" in text
    loaded = restored.get_component("ranker")
    assert loaded.options == ranker.options and loaded.top_k == 2
    again = restored.run(inputs(queries["2"]))["ranker"]["documents"]
    assert [(d.id, d.score) for d in again] == [(d.id, d.score) for d in first]
    assert [b.model_name for b in WordCountBackend.instances] == ["word-count", "word-count"]
    assert loaded._ranker.config.window_size == 8


async def test_engine_is_built_once_across_five_queries(store, queries):
    ranker = ReasonRankRanker(top_k=3, backend="word-count", model="word-count")
    pipe = pipeline(store, ranker)
    ranker.warm_up()
    ranker.warm_up()

    for qid in QUERY_IDS[:3]:
        pipe.run(inputs(queries[qid]))
    for qid in QUERY_IDS[3:]:
        await pipe.run_async(inputs(queries[qid]))

    (backend,) = WordCountBackend.instances
    assert len(backend.requests) == 5


def test_warm_up_is_idempotent_and_close_frees_the_engine(queries):
    ranker = ReasonRankRanker(backend="word-count", model="word-count")
    ranker.warm_up()
    engine = ranker._ranker
    ranker.warm_up()
    assert ranker._ranker is engine and len(WordCountBackend.instances) == 1

    ranker.close()
    assert WordCountBackend.instances[0].closed and ranker._ranker is None
    ranker.close()
    docs = ranker.run(queries["0"], [Document(content="a b c"), Document(content="a b")])["documents"]
    assert [d.content for d in docs] == ["a b c", "a b"] and len(WordCountBackend.instances) == 2


def test_dedupe_top_k_threshold_and_empty_content():
    ranker = ReasonRankRanker(top_k=None, backend="word-count", model="word-count", drop_empty=True)
    assert ranker.run("q", [])["documents"] == []
    assert WordCountBackend.instances == []  # nothing to rank: the model is not even loaded
    docs = [
        Document(id="blank", content="", meta={"k": 1}, score=0.9),
        Document(id="short", content="a short one", score=0.5),
        Document(id="long", content="a much longer passage here", score=0.1),
        Document(id="short", content="a short one", score=0.7),
    ]

    out = ranker.run("q", docs)["documents"]

    assert [d.id for d in out] == ["long", "short", "blank"]
    assert [d.score for d in out] == [1.0, 2 / 3, 1 / 3]
    empty_note = "empty content: ranked last without the model"
    assert out[-1].meta == {"k": 1, NOTE_KEY: empty_note, USAGE_KEY: NO_USAGE}
    assert docs[0].score == 0.9 and docs[0].meta == {"k": 1}  # input untouched
    assert [d.id for d in ranker.run("q", docs, top_k=1)["documents"]] == ["long"]
    thresholded = ReasonRankRanker(backend="word-count", model="word-count", score_threshold=0.5)
    thresholded = thresholded.run("q", docs)["documents"]
    assert [d.id for d in thresholded] == ["long", "short"]
    (single,) = ranker.run("q", docs[1:2])["documents"]
    assert single.score == 1.0 and single.meta[NOTE_KEY] == adapters.SINGLE_NOTE
    assert sum(len(b.requests) for b in WordCountBackend.instances) == 3
    for bad in (0, -2):
        with pytest.raises(ValueError, match="top_k"):
            ranker.run("q", docs, top_k=bad)
        with pytest.raises(ValueError, match="top_k"):
            ReasonRankRanker(top_k=bad)


def test_api_key_secret_is_serialized_and_reaches_server_backends_only(monkeypatch):
    monkeypatch.setenv("REASONRANK_API_KEY", "sk-test")
    monkeypatch.setitem(BACKENDS, "openai", f"{__name__}:WordCountBackend")
    server = ReasonRankRanker(backend="openai", model="served", backend_options={"base_url": "http://x/v1"})
    data = server.to_dict()
    assert data["init_parameters"]["api_key"] == {
        "type": "env_var",
        "env_vars": ["REASONRANK_API_KEY", "OPENAI_API_KEY"],
        "strict": False,
    }
    restored = ReasonRankRanker.from_dict(data)
    assert isinstance(restored.api_key, Secret)
    restored.warm_up()
    ReasonRankRanker(backend="word-count", model="word-count").warm_up()

    server_backend, local_backend = WordCountBackend.instances
    assert server_backend.options == {"base_url": "http://x/v1", "api_key": "sk-test"}
    assert local_backend.options == {}
    with pytest.raises(ValueError):
        ReasonRankRanker(api_key=Secret.from_token("sk-inline")).to_dict()  # tokens are never written out


def test_shared_ranker_and_bad_options():
    shared = ReasonRanker(backend=ScriptedBackend())
    component = ReasonRankRanker(ranker=shared)
    component.warm_up()
    assert component._ranker is shared
    component.close()
    assert shared.rerank("q", ["a", "b"]).order  # a shared engine stays open
    with pytest.raises(ValueError, match="not both"):
        ReasonRankRanker(ranker=shared, window_size=10)
    with pytest.raises(ValueError, match="serialized"):
        component.to_dict()


def docs_of(texts: list[str]) -> list[Document]:
    return [Document(id=f"d{i}", content=t) for i, t in enumerate(texts)]


def test_strategy_init_parameters_round_trip_and_tdpart_reranks():
    ranker = ReasonRankRanker(
        top_k=4,
        model="overlap",
        backend="scripted",
        depth=8,
        timeout=30.0,
        on_error="raise",
        **TDPART_CASE["options"],
    )
    data = ranker.to_dict()
    restored = ReasonRankRanker.from_dict(data)

    assert data["init_parameters"] | TDPART_CASE["options"] == data["init_parameters"]
    assert {k: data["init_parameters"][k] for k in ("depth", "timeout", "on_error")} == {
        "depth": 8,
        "timeout": 30.0,
        "on_error": "raise",
    }
    assert restored.options == ranker.options
    out = restored.run(OVERLAP_QUERY, docs_of(TDPART_CASE["texts"]))["documents"]
    assert [d.id for d in out] == [f"d{i}" for i in TDPART_CASE["order"][:4]]
    assert (restored._ranker.config.strategy, restored._ranker.timeout) == ("tdpart", 30.0)
    sizes = [len(parse_window(r.messages)[1]) for r in restored._ranker.backend.requests]
    assert sizes == TDPART_CASE["window_sizes"]  # pivot, two partitions, final
    assert all(d.meta[REASONING_KEY] and NOTE_KEY not in d.meta for d in out)


def test_a_failed_or_late_window_leaves_a_note():
    docs = docs_of(["alpha beta", "alpha"])
    out = ReasonRankRanker(top_k=None, model="fail", backend="scripted").run("alpha beta", docs)["documents"]
    assert [d.id for d in out] == ["d0", "d1"]
    note = "window error: ConnectionError: the scripted model 'fail' is down; left in its prior order"
    assert [d.meta for d in out] == [{NOTE_KEY: note, STATUS_KEY: "error", USAGE_KEY: NO_USAGE}] * 2
    with pytest.raises(ConnectionError):  # model trouble raises only when asked to
        ReasonRankRanker(model="fail", backend="scripted", on_error="raise").run("q", docs)

    late = ReasonRankRanker(
        top_k=None, model="overlap", backend="scripted", timeout=0.2, backend_options={"latency": 30}
    )
    out = late.run("alpha beta", list(reversed(docs)))["documents"]
    assert [d.id for d in out] == ["d1", "d0"]
    assert [d.meta for d in out] == [{NOTE_KEY: TIMEOUT_NOTE, STATUS_KEY: "timeout", USAGE_KEY: NO_USAGE}] * 2


def test_unknown_and_bad_arguments_raise_errors_naming_them():
    data = ReasonRankRanker(backend="word-count", model="word-count").to_dict()
    data["init_parameters"]["top_n"] = 3
    with pytest.raises(ValueError, match=r"unknown init parameters \['top_n'\]"):
        ReasonRankRanker.from_dict(data)
    with pytest.raises(ValueError, match=r"unknown arguments \['top_n'\]"):
        ReasonRankRanker(top_n=3)
    with pytest.raises(ValueError, match="step"):  # engine options are checked before anything loads
        ReasonRankRanker(window_size=4, step=4)
    for bad, name in (
        ({"top_k": 0}, "top_k"),
        ({"top_k": "5"}, "top_k"),
        ({"score_threshold": "high"}, "score_threshold"),
        ({"title_key": 3}, "title_key"),
        ({"meta_fields_to_embed": "title"}, "meta_fields_to_embed"),
        ({"embedding_separator": None}, "embedding_separator"),
        ({"api_key": "sk-plain"}, "api_key"),
        ({"backend_options": ["latency"]}, "backend_options"),
        ({"backend_options": {"api_key": "sk-plain"}}, "api_key"),
        ({"ranker": "a ranker"}, "ranker"),
    ):
        with pytest.raises(ValueError, match=name):
            ReasonRankRanker(backend="word-count", model="word-count", **bad)
    ranker = ReasonRankRanker(backend="word-count", model="word-count")
    for docs, message in (
        (["a text"], r"documents\[0\] must be a Document, got str"),
        ("a text", "documents must be a list of Document, got str"),
        ([Document(content="a"), {"content": "b"}], r"documents\[1\] must be a Document, got dict"),
    ):
        with pytest.raises(ValueError, match=message):
            ranker.run("q", docs)
    for query in ("", "  "):
        with pytest.raises(ValueError, match="query"):
            ranker.run(query, docs_of(["a", "b"]))


class SlowBackend(WordCountBackend):
    """Loading takes a while, so concurrent first runs overlap while the engine is built."""

    def __init__(self, model: str, **options: object) -> None:
        time.sleep(0.2)
        super().__init__(model, **options)


async def test_concurrent_first_async_runs_build_the_engine_once(monkeypatch):
    monkeypatch.setitem(BACKENDS, "slow", f"{__name__}:SlowBackend")
    ranker = ReasonRankRanker(backend="slow", model="slow", top_k=None)
    docs = docs_of(["a b c", "a b", "a"])
    results = await asyncio.gather(*(ranker.run_async("a", docs) for _ in range(4)))
    assert len(WordCountBackend.instances) == 1
    assert all([d.id for d in r["documents"]] == ["d0", "d1", "d2"] for r in results)
    assert len(WordCountBackend.instances[0].requests) == 4


async def test_async_warm_up_and_close_hooks_through_the_pipeline():
    ranker = ReasonRankRanker(backend="word-count", model="word-count")
    pipe = Pipeline()
    pipe.add_component("ranker", ranker)
    await pipe.warm_up_async()  # Haystack calls the component's warm_up_async
    await ranker.warm_up_async()
    (backend,) = WordCountBackend.instances
    await pipe.close_async()
    assert backend.closed and ranker._ranker is None
    await ranker.close_async()
    out = await ranker.run_async("a", docs_of(["a b", "a"]))
    assert len(out["documents"]) == 2 and len(WordCountBackend.instances) == 2


def test_title_key_and_meta_fields_to_embed_reach_the_prompt():
    backend = ScriptedBackend()
    docs = [
        Document(id="a", content="bm25 is a ranking function", meta={"title": "Okapi BM25", "year": 1994}),
        Document(id="b", content="dense retrieval", meta={"name": "N2", "year": ""}),
        Document(id="c", content="", meta={"title": "no text"}),
    ]
    shared = ReasonRanker(backend=backend)
    ReasonRankRanker(ranker=shared).run("bm25", docs)
    ReasonRankRanker(
        ranker=shared, title_key="name", meta_fields_to_embed=["year", "title"], embedding_separator=" | "
    ).run("bm25", docs)
    default, embedded = (parse_window(r.messages)[1] for r in backend.requests)
    assert default == ["Title: Okapi BM25 Content: bm25 is a ranking function", "dense retrieval", ""]
    assert embedded == [
        "1994 | Okapi BM25 | bm25 is a ranking function",
        "Title: N2 Content: dense retrieval",
        "",
    ]


def test_score_threshold_usage_and_status_metadata():
    texts = ["one", "one two", "one two three", "one two three four"]
    ranker = ReasonRankRanker(top_k=None, backend="word-count", model="word-count", score_threshold=0.5)
    out = ranker.run("q", docs_of(texts))["documents"]
    assert [d.id for d in out] == ["d3", "d2", "d1"]  # scores 1, 3/4, 1/2; 1/4 is below
    (window,) = ranker._ranker.rerank("q", texts).windows  # the same single window, run again
    for doc in out:
        assert doc.meta[STATUS_KEY] == "ok"
        assert doc.meta[USAGE_KEY] == {
            "prompt_tokens": window.prompt_tokens,
            "completion_tokens": window.completion_tokens,
        }
    assert window.prompt_tokens > 0 and window.completion_tokens > 0


def test_component_to_dict_from_dict_round_trip():
    from haystack.core.serialization import component_from_dict, component_to_dict

    ranker = ReasonRankRanker(
        top_k=2,
        backend="word-count",
        model="word-count",
        window_size=4,
        step=2,
        title_key="name",
        meta_fields_to_embed=["year"],
        embedding_separator=" - ",
        score_threshold=0.2,
    )
    data = component_to_dict(ranker, "ranker")
    restored = component_from_dict(ReasonRankRanker, data, "ranker")
    assert component_to_dict(restored, "ranker") == data
    assert (restored.title_key, restored.meta_fields_to_embed, restored.embedding_separator) == (
        "name",
        ["year"],
        " - ",
    )
    docs = docs_of(["one", "one two three"])
    assert [d.id for d in restored.run("q", docs)["documents"]] == [
        d.id for d in ranker.run("q", docs)["documents"]
    ]


def test_a_loaded_pipeline_cannot_turn_on_remote_code(store, monkeypatch):
    from haystack.core.errors import DeserializationError

    monkeypatch.delenv(REMOTE_CODE_ENV, raising=False)
    text = pipeline(store, ReasonRankRanker(backend="word-count", model="word-count")).dumps()
    (line,) = [x for x in text.splitlines() if x.strip() == "backend_options: null"]
    indent = line[: len(line) - len(line.lstrip())]
    unsafe = text.replace(line, f"{indent}backend_options:\n{indent}  trust_remote_code: true")
    assert unsafe != text
    with pytest.raises(DeserializationError) as info:
        Pipeline.loads(unsafe)
    assert isinstance(info.value.__cause__, ValueError) and REMOTE_CODE_ENV in str(info.value.__cause__)
    data = ReasonRankRanker(backend="word-count", model="word-count").to_dict()
    data["init_parameters"]["backend_options"] = {"trust_remote_code": True}
    with pytest.raises(ValueError, match="trust_remote_code"):
        ReasonRankRanker.from_dict(data)
    monkeypatch.setenv(REMOTE_CODE_ENV, "1")
    Pipeline.loads(unsafe).get_component("ranker").warm_up()
    assert WordCountBackend.instances[-1].options == {"trust_remote_code": True}


def test_pipeline_yaml_is_loaded_safely(store, tmp_path):
    """A python tag in the component's parameters is refused by Haystack's safe YAML loader, never run."""
    from haystack.core.errors import DeserializationError

    text = pipeline(store, ReasonRankRanker(backend="word-count", model="word-count")).dumps()
    target = tmp_path / "created"
    unsafe = text.replace(
        "backend_options: null", f"backend_options: !!python/object/apply:os.mkdir ['{target}']"
    )
    assert unsafe != text
    with pytest.raises(DeserializationError, match="unmarshalling"):
        Pipeline.loads(unsafe)
    assert not target.exists()


@pytest.fixture(scope="module")
def demo_ranker():
    with ReasonRanker(model="demo-0.5b", max_passage_tokens=64, reasoning_budget=128) as ranker:
        yield ranker


@pytest.mark.slow
def test_demo_model_reranks_the_retrieved_set(store, queries, demo_ranker):
    pipe = pipeline(store, ReasonRankRanker(top_k=None, ranker=demo_ranker), top_k=5)
    retrieved = InMemoryBM25Retriever(store, top_k=5).run(queries["0"])["documents"]

    docs = pipe.run(inputs(queries["0"]))["ranker"]["documents"]

    assert sorted(d.id for d in docs) == sorted(d.id for d in retrieved)
    scores = [d.score for d in docs]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)
    assert len(set(scores)) == len(scores)
    assert all(d.meta[REASONING_KEY].strip() for d in docs)
