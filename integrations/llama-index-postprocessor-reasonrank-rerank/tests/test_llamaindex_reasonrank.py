"""ReasonRankRerank inside a real LlamaIndex query engine over NovelEval passages (offline)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import zlib
from pathlib import Path
from typing import ClassVar
from unittest.mock import AsyncMock

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
from llama_index.postprocessor.reasonrank_rerank import ReasonRankRerank

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


class OptionsBackend(ScriptedBackend):
    """A scripted backend that ``load_backend`` builds by name and that records its options."""

    instances: ClassVar[list[OptionsBackend]] = []

    def __init__(self, model: str, **options: object) -> None:
        super().__init__(model_name=model)
        self.options = options
        OptionsBackend.instances.append(self)


@pytest.fixture(autouse=True)
def options_backend(monkeypatch):
    monkeypatch.setitem(BACKENDS, "options", f"{__name__}:OptionsBackend")
    monkeypatch.setattr(OptionsBackend, "instances", [])


def word_count(query: str, content: str) -> float:
    """The scripted model prefers longer passages (unchanged by the prompt's text cleaning)."""
    return len(content.split())


def bow(text: str, dim: int = 512) -> list[float]:
    vec = [0.0] * dim
    for token in re.findall(r"\w+", text.lower()):
        vec[zlib.crc32(token.encode()) % dim] += 1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


class BowEmbedding(BaseEmbedding):
    """Deterministic offline bag-of-words embedding (hashed)."""

    def _get_query_embedding(self, query: str) -> list[float]:
        return bow(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return bow(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return bow(text)


@pytest.fixture(scope="module")
def queries() -> dict[str, str]:
    rows = [json.loads(line) for line in (NOVELEVAL / "queries.jsonl").open()]
    return {r["_id"]: r["text"] for r in rows if r["_id"] in QUERY_IDS}


@pytest.fixture(scope="module")
def index() -> VectorStoreIndex:
    nodes = []
    for line in (NOVELEVAL / "corpus.jsonl").open():
        row = json.loads(line)
        if row["_id"].split("-")[0] in QUERY_IDS:
            nodes.append(TextNode(id_=row["_id"], text=row["text"], metadata={"source": "noveleval"}))
    return VectorStoreIndex(nodes, embed_model=BowEmbedding(model_name="bow"))


def expected(index: VectorStoreIndex, query: str) -> list[NodeWithScore]:
    """What the retriever returns, reordered by the scripted model's score."""
    retrieved = index.as_retriever(similarity_top_k=RETRIEVED).retrieve(query)
    content = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in retrieved]
    return [retrieved[i] for i in sorted(range(len(retrieved)), key=lambda i: -word_count(query, content[i]))]


def check(source_nodes: list[NodeWithScore], want: list[NodeWithScore], top_n: int) -> None:
    assert [n.node.node_id for n in source_nodes] == [n.node.node_id for n in want[:top_n]]
    assert [n.score for n in source_nodes] == [(RETRIEVED - r) / RETRIEVED for r in range(top_n)]
    for got, old in zip(source_nodes, want):
        meta = got.node.metadata
        assert meta["source"] == "noveleval"
        assert meta[REASONING_KEY] == f"ranked {RETRIEVED} passages by score"
        assert meta[RETRIEVAL_SCORE_KEY] == pytest.approx(old.score)
        assert REASONING_KEY not in got.node.get_content(metadata_mode=MetadataMode.LLM)


def test_query_engine_reranks_in_scripted_order(index, queries):
    backend = ScriptedBackend(score=word_count)
    rerank = ReasonRankRerank(top_n=4, backend=backend, keep_retrieval_score=True)
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=RETRIEVED, node_postprocessors=[rerank])
    want = expected(index, queries["0"])
    assert [n.node.node_id for n in want] != [n.node.node_id for n in sorted(want, key=lambda n: -n.score)]

    response = engine.query(queries["0"])

    check(response.source_nodes, want, top_n=4)
    assert len(backend.requests) == 1


async def test_aquery_uses_the_native_async_path(index, queries, monkeypatch):
    backend = ScriptedBackend(score=word_count)
    rerank = ReasonRankRerank(top_n=3, backend=backend, keep_retrieval_score=True)
    spy = AsyncMock(wraps=rerank.ranker.arerank)
    monkeypatch.setattr(rerank.ranker, "arerank", spy)
    monkeypatch.setattr(rerank.ranker, "rerank", _no_sync_path)
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=RETRIEVED, node_postprocessors=[rerank])

    response = await engine.aquery(queries["1"])

    check(response.source_nodes, expected(index, queries["1"]), top_n=3)
    spy.assert_awaited_once()
    assert len(backend.requests) == 1


def _no_sync_path(*args, **kwargs):
    raise AssertionError("the async path must not fall back to the sync rerank")


class Recorder(BaseEventHandler):
    events: list = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event, **kwargs) -> None:
        self.events.append(event)


def test_instrumentation_events_and_reranking_callback(index, queries):
    recorder = Recorder()
    root = get_dispatcher()
    root.add_event_handler(recorder)
    debug = LlamaDebugHandler()
    rerank = ReasonRankRerank(top_n=2, backend=ScriptedBackend(score=word_count))
    engine = RetrieverQueryEngine.from_args(
        index.as_retriever(similarity_top_k=RETRIEVED),
        llm=MockLLM(),
        node_postprocessors=[rerank],
        callback_manager=CallbackManager([debug]),
    )
    try:
        response = engine.query(queries["2"])
    finally:
        root.event_handlers.remove(recorder)

    starts = [e for e in recorder.events if isinstance(e, ReRankStartEvent)]
    ends = [e for e in recorder.events if isinstance(e, ReRankEndEvent)]
    assert len(starts) == len(ends) == 1
    assert starts[0].top_n == 2 and starts[0].model_name == "scripted" and len(starts[0].nodes) == RETRIEVED
    assert [n.node.node_id for n in ends[0].nodes] == [n.node.node_id for n in response.source_nodes]
    ((start, end),) = debug.get_event_pairs(CBEventType.RERANKING)
    assert start.payload[EventPayload.QUERY_STR] == queries["2"]
    assert [n.node.node_id for n in end.payload[EventPayload.NODES]] == [
        n.node.node_id for n in response.source_nodes
    ]


async def test_engine_is_built_once_across_five_queries(index, queries, monkeypatch):
    built = []

    class CountingRanker(ReasonRanker):
        def __init__(self, *args, **kwargs):
            built.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(adapters, "ReasonRanker", CountingRanker)
    backend = ScriptedBackend(score=word_count)
    rerank = ReasonRankRerank(top_n=3, backend=backend)
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=RETRIEVED, node_postprocessors=[rerank])

    for qid in QUERY_IDS[:3]:
        engine.query(queries[qid])
    await asyncio.gather(*(engine.aquery(queries[qid]) for qid in QUERY_IDS[3:]))

    assert len(built) == 1
    assert len(backend.requests) == 5


def test_empty_single_and_empty_content_nodes():
    backend = ScriptedBackend(score=word_count)
    rerank = ReasonRankRerank(top_n=None, backend=backend, drop_empty=True)  # else the model sees them
    assert rerank.postprocess_nodes([], query_str="q") == []
    lone = NodeWithScore(node=TextNode(id_="lone", text="only one"), score=0.3)
    (single,) = rerank.postprocess_nodes([lone], query_str="q")
    assert single.node.node_id == "lone" and single.score == 1.0
    assert single.node.metadata[NOTE_KEY] == adapters.SINGLE_NOTE
    assert backend.requests == []

    nodes = [
        NodeWithScore(node=TextNode(id_="blank", text="  ", metadata={"title": "has metadata"}), score=0.9),
        NodeWithScore(node=TextNode(id_="short", text="a short one"), score=0.5),
        NodeWithScore(node=TextNode(id_="long", text="a much longer passage here"), score=0.1),
    ]
    out = rerank.postprocess_nodes(nodes, query_str="q")
    assert [n.node.node_id for n in out] == ["long", "short", "blank"]
    assert out[-1].node.metadata[NOTE_KEY].startswith("empty content")
    assert REASONING_KEY not in out[-1].node.metadata and REASONING_KEY in out[0].node.metadata
    assert nodes[0].score == 0.9 and nodes[0].node.metadata == {"title": "has metadata"}  # input untouched


def test_shared_ranker_and_bad_options():
    shared = ReasonRanker(backend=ScriptedBackend())
    a, b = ReasonRankRerank(ranker=shared), ReasonRankRerank(ranker=shared, top_n=2)
    assert a.ranker is b.ranker is shared
    with pytest.raises(ValueError, match="not both"):
        ReasonRankRerank(ranker=shared, window_size=10)
    with pytest.raises(ValueError, match="top_n"):
        ReasonRankRerank(ranker=shared, top_n=0)
    with pytest.raises(ValueError, match="query"):
        a.postprocess_nodes([NodeWithScore(node=TextNode(text="x"))])


def nodes_of(texts: list[str]) -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(id_=f"n{i}", text=t), score=1 - i / 10) for i, t in enumerate(texts)]


def test_strategy_fields_round_trip_and_tdpart_reranks():
    rerank = ReasonRankRerank(
        top_n=4, model="overlap", backend="scripted", depth=8, timeout=30.0, on_error="raise",
        **TDPART_CASE["options"],
    )
    restored = ReasonRankRerank.from_json(rerank.to_json())

    fields = ("strategy", "cutoff", "window_size", "step", "depth", "timeout", "on_error")
    assert {f: getattr(restored, f) for f in fields} == {f: getattr(rerank, f) for f in fields}
    assert (restored.ranker.config.strategy, restored.ranker.timeout) == ("tdpart", 30.0)
    out = restored.postprocess_nodes(nodes_of(TDPART_CASE["texts"]), query_str=OVERLAP_QUERY)
    assert [n.node.node_id for n in out] == [f"n{i}" for i in TDPART_CASE["order"][:4]]
    sizes = [len(parse_window(r.messages)[1]) for r in restored.ranker.backend.requests]
    assert sizes == TDPART_CASE["window_sizes"]  # pivot, two partitions, final
    assert all(n.node.metadata[REASONING_KEY] and NOTE_KEY not in n.node.metadata for n in out)


def test_a_failed_or_late_window_leaves_a_note():
    nodes = nodes_of(["alpha beta", "alpha"])
    failing = ReasonRankRerank(top_n=None, model="fail", backend="scripted")
    out = failing.postprocess_nodes(nodes, query_str="alpha beta")
    assert [n.node.node_id for n in out] == ["n0", "n1"]
    note = "window error: ConnectionError: the scripted model 'fail' is down; left in its prior order"
    assert [n.node.metadata for n in out] == [{NOTE_KEY: note, STATUS_KEY: "error", USAGE_KEY: NO_USAGE}] * 2
    for key in (NOTE_KEY, STATUS_KEY, USAGE_KEY):
        assert key not in out[0].node.get_content(metadata_mode=MetadataMode.LLM)
    with pytest.raises(ConnectionError):  # model trouble raises only when asked to
        raising = ReasonRankRerank(model="fail", backend="scripted", on_error="raise")
        raising.postprocess_nodes(nodes, query_str="q")

    late = ReasonRankRerank(
        top_n=None, model="overlap", backend="scripted", timeout=0.2, backend_options={"latency": 30}
    )
    out = late.postprocess_nodes(list(reversed(nodes)), query_str="alpha beta")
    assert [n.node.node_id for n in out] == ["n1", "n0"]
    assert [n.node.metadata for n in out] == [
        {NOTE_KEY: TIMEOUT_NOTE, STATUS_KEY: "timeout", USAGE_KEY: NO_USAGE}
    ] * 2


def test_unknown_and_bad_arguments_raise_value_errors_naming_them():
    with pytest.raises(ValueError, match=r"unknown argument 'top_k' \(did you mean 'top_n'\?\)"):
        ReasonRankRerank(top_k=3)
    with pytest.raises(ValueError, match="unknown argument 'windowsize'"):
        ReasonRankRerank.from_dict({"model": "overlap", "backend": "scripted", "windowsize": 4})
    for bad, name in (
        ({"top_n": 0}, "top_n"),
        ({"top_n": "many"}, "top_n"),
        ({"score_threshold": "high"}, "score_threshold"),
        ({"title_key": 3}, "title_key"),
        ({"on_error": "ignore"}, "on_error"),
        ({"backend_options": ["latency"]}, "backend_options"),
        ({"ranker": "a ranker"}, "ranker"),
    ):
        with pytest.raises(ValueError, match=name):
            ReasonRankRerank(model="overlap", backend="scripted", **bad)
    rerank = ReasonRankRerank(model="overlap", backend="scripted", callback_manager=CallbackManager([]))
    for nodes, message in (
        (["a text"], r"nodes\[0\] must be a NodeWithScore, got str"),
        ([TextNode(text="a")], r"nodes\[0\] must be a NodeWithScore, got TextNode"),
        ("a text", "nodes must be a list of NodeWithScore, got str"),
    ):
        with pytest.raises(ValueError, match=message):
            rerank.postprocess_nodes(nodes, query_str="q")
    for query in ("", "   "):
        with pytest.raises(ValueError, match="query"):
            rerank.postprocess_nodes(nodes_of(["a", "b"]), query_str=query)


async def test_bad_nodes_are_refused_on_the_async_path_too():
    rerank = ReasonRankRerank(model="overlap", backend="scripted")
    with pytest.raises(ValueError, match=r"nodes\[0\] must be a NodeWithScore"):
        await rerank.apostprocess_nodes([{"text": "a"}], query_str="q")


def test_close_and_context_manager_free_the_engine_a_shared_ranker_stays_open():
    with ReasonRankRerank(model="x", backend="options") as rerank:
        assert rerank.postprocess_nodes(nodes_of(["a b", "a"]), query_str="a b")
    (backend,) = OptionsBackend.instances
    assert backend.closed
    rerank.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        rerank.postprocess_nodes(nodes_of(["a b", "a"]), query_str="a b")

    shared = ReasonRanker(backend=ScriptedBackend())
    with ReasonRankRerank(ranker=shared):
        pass
    assert shared.rerank("q", ["a", "b"]).order  # a shared engine stays open


def test_the_title_key_reaches_the_prompt_once_and_other_metadata_as_embedded():
    backend = ScriptedBackend()
    nodes = [
        NodeWithScore(
            node=TextNode(
                id_="a", text="bm25 is a ranking function", metadata={"title": "Okapi BM25", "year": 1994}
            )
        ),
        NodeWithScore(
            node=TextNode(
                id_="b",
                text="dense retrieval",
                metadata={"name": "N2"},
                excluded_embed_metadata_keys=["name"],
            )
        ),
    ]
    ReasonRankRerank(backend=backend).postprocess_nodes(nodes, query_str="bm25")
    ReasonRankRerank(backend=backend, title_key="name").postprocess_nodes(nodes, query_str="bm25")
    default, named = (parse_window(r.messages)[1] for r in backend.requests)
    assert default[0].startswith("Title: Okapi BM25 Content: year: 1994") and default[0].count("Okapi") == 1
    assert default[0].endswith("bm25 is a ranking function")
    assert default[1] == "dense retrieval"
    assert named[0].startswith("title: Okapi BM25")  # an ordinary embedded metadata field here
    assert named[1] == "Title: N2 Content: dense retrieval"
    assert nodes[0].node.excluded_embed_metadata_keys == []  # input untouched


def test_score_threshold_usage_and_status_metadata():
    texts = ["one", "one two", "one two three", "one two three four"]
    rerank = ReasonRankRerank(top_n=None, backend=ScriptedBackend(score=word_count), score_threshold=0.5)
    out = rerank.postprocess_nodes(nodes_of(texts), query_str="q")
    assert [n.node.node_id for n in out] == ["n3", "n2", "n1"]  # scores 1, 3/4, 1/2; 1/4 is below
    (window,) = rerank.ranker.rerank("q", texts).windows  # the same single window, run again
    for node in out:
        assert node.node.metadata[STATUS_KEY] == "ok"
        assert node.node.metadata[USAGE_KEY] == {
            "prompt_tokens": window.prompt_tokens,
            "completion_tokens": window.completion_tokens,
        }
    assert window.prompt_tokens > 0 and window.completion_tokens > 0


def test_to_dict_from_dict_and_json_round_trip(index, queries):
    rerank = ReasonRankRerank(
        top_n=3,
        model="x",
        backend="options",
        window_size=4,
        step=2,
        score_threshold=0.1,
        title_key="name",
        keep_retrieval_score=True,
    )
    data = rerank.to_dict()
    assert data["class_name"] == "ReasonRankRerank"
    loaded = (
        ReasonRankRerank.from_dict(data),
        ReasonRankRerank.from_json(rerank.to_json()),
        ReasonRankRerank.model_validate(data),
        ReasonRankRerank.model_validate_json(rerank.model_dump_json()),
    )
    for restored in loaded:
        assert restored.to_dict() == data
        assert (restored.ranker.config.window_size, restored.ranker.config.step) == (4, 2)
        engine = index.as_query_engine(
            llm=MockLLM(), similarity_top_k=RETRIEVED, node_postprocessors=[restored]
        )
        want = index.as_query_engine(llm=MockLLM(), similarity_top_k=RETRIEVED, node_postprocessors=[rerank])
        got, expect = engine.query(queries["0"]).source_nodes, want.query(queries["0"]).source_nodes
        assert [(n.node.node_id, n.score) for n in got] == [(n.node.node_id, n.score) for n in expect]


def test_a_dumped_shared_ranker_refuses_to_load_instead_of_the_demo_model():
    rerank = ReasonRankRerank(ranker=ReasonRanker(backend=ScriptedBackend()), top_n=2)
    data = rerank.to_dict()
    assert data["ranker"] == adapters.SHARED_RANKER
    with pytest.raises(ValueError, match="built with ranker="):
        ReasonRankRerank.from_dict(data)
    with pytest.raises(ValueError, match="built with ranker="):
        ReasonRankRerank.from_json(rerank.to_json())


def test_api_key_is_a_secret_never_dumped_and_reaches_server_backends_only(monkeypatch):
    monkeypatch.setitem(BACKENDS, "openai", f"{__name__}:OptionsBackend")
    monkeypatch.setenv("REASONRANK_API_KEY", "sk-from-env")
    given = ReasonRankRerank(model="served", backend="openai", api_key="sk-given")
    assert given.api_key.get_secret_value() == "sk-given" and "sk-given" not in repr(given)
    text = given.to_json()
    assert "sk-given" not in text and "api_key" not in json.loads(text)
    restored = ReasonRankRerank.from_json(text)  # the key comes from the environment
    ReasonRankRerank(model="local", backend="options")
    server, reloaded, local = OptionsBackend.instances
    assert (server.options, reloaded.options, local.options) == (
        {"api_key": "sk-given"},
        {"api_key": "sk-from-env"},
        {},
    )
    assert restored.api_key.get_secret_value() == "sk-from-env"
    with pytest.raises(ValueError, match=r"backend_options\['api_key'\].*plain text"):
        ReasonRankRerank(model="served", backend="openai", backend_options={"api_key": "sk-plain"})


def test_a_loaded_config_cannot_turn_on_remote_code(monkeypatch):
    monkeypatch.delenv(REMOTE_CODE_ENV, raising=False)
    data = {"model": "x", "backend": "options", "backend_options": {"trust_remote_code": True}}
    with pytest.raises(ValueError, match=f"trust_remote_code.*{REMOTE_CODE_ENV}=1"):
        ReasonRankRerank.from_dict(data)
    with pytest.raises(ValueError, match="trust_remote_code"):
        ReasonRankRerank.model_validate(data)
    assert OptionsBackend.instances == []
    monkeypatch.setenv(REMOTE_CODE_ENV, "1")
    ReasonRankRerank.from_dict(data)
    assert OptionsBackend.instances[0].options == {"trust_remote_code": True}


@pytest.fixture(scope="module")
def demo_ranker():
    with ReasonRanker(model="demo-0.5b", max_passage_tokens=64, reasoning_budget=128) as ranker:
        yield ranker


@pytest.mark.slow
def test_demo_model_reranks_the_retrieved_set(index, queries, demo_ranker):
    rerank = ReasonRankRerank(top_n=None, ranker=demo_ranker)
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=5, node_postprocessors=[rerank])
    retrieved = index.as_retriever(similarity_top_k=5).retrieve(queries["0"])

    nodes = engine.query(queries["0"]).source_nodes

    assert sorted(n.node.node_id for n in nodes) == sorted(n.node.node_id for n in retrieved)
    scores = [n.score for n in nodes]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)
    assert len(set(scores)) == len(scores)
    assert all(n.node.metadata[REASONING_KEY].strip() for n in nodes)
