"""ReasonRankCompressor inside a real LangChain ContextualCompressionRetriever (offline)."""

from __future__ import annotations

import asyncio
import copy
import json
import math
import os
import re
import zlib
from pathlib import Path
from typing import ClassVar
from unittest.mock import AsyncMock

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.load import dumps
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_reasonrank import ReasonRankCompressor

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


class BowEmbeddings(Embeddings):
    """Deterministic offline bag-of-words embedding (hashed)."""

    def embed_query(self, text: str, dim: int = 512) -> list[float]:
        vec = [0.0] * dim
        for token in re.findall(r"\w+", text.lower()):
            vec[zlib.crc32(token.encode()) % dim] += 1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


@pytest.fixture(scope="module")
def queries() -> dict[str, str]:
    rows = [json.loads(line) for line in (NOVELEVAL / "queries.jsonl").open()]
    return {r["_id"]: r["text"] for r in rows if r["_id"] in QUERY_IDS}


@pytest.fixture(scope="module")
def store() -> InMemoryVectorStore:
    docs = []
    for line in (NOVELEVAL / "corpus.jsonl").open():
        row = json.loads(line)
        if row["_id"].split("-")[0] in QUERY_IDS:
            docs.append(Document(row["text"], id=row["_id"], metadata={"source": "noveleval"}))
    store = InMemoryVectorStore(BowEmbeddings())
    store.add_documents(docs)
    return store


def pipeline(store: InMemoryVectorStore, compressor: ReasonRankCompressor) -> ContextualCompressionRetriever:
    retriever = store.as_retriever(search_kwargs={"k": RETRIEVED})
    return ContextualCompressionRetriever(base_compressor=compressor, base_retriever=retriever)


def expected(store: InMemoryVectorStore, query: str) -> list[Document]:
    """What the retriever returns, reordered by the scripted model's score."""
    retrieved = store.as_retriever(search_kwargs={"k": RETRIEVED}).invoke(query)
    return sorted(retrieved, key=lambda d: -word_count(query, d.page_content))


def check(got: list[Document], want: list[Document], top_n: int) -> None:
    assert [d.id for d in got] == [d.id for d in want[:top_n]]
    assert [d.metadata["relevance_score"] for d in got] == [(RETRIEVED - r) / RETRIEVED for r in range(top_n)]
    for doc, old in zip(got, want):
        assert doc.page_content == old.page_content
        assert doc.metadata["source"] == "noveleval"
        assert doc.metadata[REASONING_KEY] == f"ranked {RETRIEVED} passages by score"


def test_compression_retriever_reranks_in_scripted_order(store, queries):
    backend = ScriptedBackend(score=word_count)
    retriever = pipeline(store, ReasonRankCompressor(top_n=4, backend=backend))
    want = expected(store, queries["0"])
    retrieved = store.as_retriever(search_kwargs={"k": RETRIEVED}).invoke(queries["0"])
    assert [d.id for d in want] != [d.id for d in retrieved]

    check(retriever.invoke(queries["0"]), want, top_n=4)
    assert len(backend.requests) == 1


async def test_ainvoke_uses_the_native_async_path(store, queries, monkeypatch):
    compressor = ReasonRankCompressor(top_n=3, backend=ScriptedBackend(score=word_count))
    spy = AsyncMock(wraps=compressor.ranker.arerank)
    monkeypatch.setattr(compressor.ranker, "arerank", spy)
    monkeypatch.setattr(compressor.ranker, "rerank", _no_sync_path)

    got = await pipeline(store, compressor).ainvoke(queries["1"])

    check(got, expected(store, queries["1"]), top_n=3)
    spy.assert_awaited_once()


def _no_sync_path(*args, **kwargs):
    raise AssertionError("the async path must not fall back to the sync rerank")


class ChainRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[str] = []
        self.outputs: list[object] = []

    def on_chain_start(self, serialized, inputs, **kwargs) -> None:
        self.starts.append(kwargs.get("name") or (serialized or {}).get("name"))

    def on_chain_end(self, outputs, **kwargs) -> None:
        self.outputs.append(outputs)


async def test_callbacks_are_forwarded(store, queries):
    retriever = pipeline(store, ReasonRankCompressor(top_n=2, backend=ScriptedBackend(score=word_count)))
    sync_rec, async_rec = ChainRecorder(), ChainRecorder()

    got = retriever.invoke(queries["2"], config={"callbacks": [sync_rec]})
    agot = await retriever.ainvoke(queries["2"], config={"callbacks": [async_rec]})

    assert [d.id for d in got] == [d.id for d in agot]
    for rec in (sync_rec, async_rec):
        assert rec.starts == ["ReasonRankCompressor"]
        assert [d.id for d in rec.outputs[0]] == [d.id for d in got]


async def test_engine_is_built_once_across_five_queries(store, queries, monkeypatch):
    built = []

    class CountingRanker(ReasonRanker):
        def __init__(self, *args, **kwargs):
            built.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(adapters, "ReasonRanker", CountingRanker)
    backend = ScriptedBackend(score=word_count)
    retriever = pipeline(store, ReasonRankCompressor(top_n=3, backend=backend))

    for qid in QUERY_IDS[:3]:
        retriever.invoke(queries[qid])
    await asyncio.gather(*(retriever.ainvoke(queries[qid]) for qid in QUERY_IDS[3:]))

    assert len(built) == 1
    assert len(backend.requests) == 5


def test_copies_keep_ids_and_metadata_and_never_mutate_input():
    backend = ScriptedBackend(score=word_count)
    compressor = ReasonRankCompressor(top_n=None, backend=backend, keep_retrieval_score=True, drop_empty=True)
    assert compressor.compress_documents([], "q") == []
    (single,) = compressor.compress_documents([Document("only one", id="lone")], "q")
    assert single.id == "lone"
    assert single.metadata == {"relevance_score": 1.0, NOTE_KEY: adapters.SINGLE_NOTE, USAGE_KEY: NO_USAGE}
    assert backend.requests == []

    docs = [
        Document("", id="blank", metadata={"relevance_score": 0.9, "tag": ["x"]}),
        Document("a short one", id="short", metadata={"relevance_score": 0.5}),
        Document("a much longer passage here", id="long", metadata={"relevance_score": 0.1}),
    ]
    before = copy.deepcopy(docs)
    out = compressor.compress_documents(docs, "q")

    assert docs == before
    assert [d.id for d in out] == ["long", "short", "blank"]
    assert [d.metadata["relevance_score"] for d in out] == [1.0, 2 / 3, 1 / 3]
    assert [d.metadata[RETRIEVAL_SCORE_KEY] for d in out] == [0.1, 0.5, 0.9]
    assert out[-1].metadata["tag"] == ["x"] and out[-1].metadata[NOTE_KEY].startswith("empty content")
    assert REASONING_KEY not in out[-1].metadata and REASONING_KEY in out[0].metadata


def test_shared_ranker_and_bad_options():
    shared = ReasonRanker(backend=ScriptedBackend())
    a, b = ReasonRankCompressor(ranker=shared), ReasonRankCompressor(ranker=shared, top_n=2)
    assert a.ranker is b.ranker is shared
    with pytest.raises(ValueError, match="not both"):
        ReasonRankCompressor(ranker=shared, model="demo")
    with pytest.raises(ValueError, match="top_n"):
        ReasonRankCompressor(ranker=shared, top_n=-1)


def docs_of(texts: list[str]) -> list[Document]:
    return [Document(t, id=f"d{i}") for i, t in enumerate(texts)]


def test_strategy_fields_round_trip_and_tdpart_reranks():
    compressor = ReasonRankCompressor(
        top_n=4, model="overlap", backend="scripted", depth=8, timeout=30.0, on_error="raise",
        **TDPART_CASE["options"],
    )
    dumped = json.loads(compressor.model_dump_json())
    restored = ReasonRankCompressor(**dumped)

    fields = ("strategy", "cutoff", "window_size", "step", "depth", "timeout", "on_error")
    assert {f: dumped[f] for f in fields} == {f: getattr(compressor, f) for f in fields}
    assert (restored.ranker.config.strategy, restored.ranker.timeout) == ("tdpart", 30.0)
    out = restored.compress_documents(docs_of(TDPART_CASE["texts"]), OVERLAP_QUERY)
    assert [d.id for d in out] == [f"d{i}" for i in TDPART_CASE["order"][:4]]
    sizes = [len(parse_window(r.messages)[1]) for r in restored.ranker.backend.requests]
    assert sizes == TDPART_CASE["window_sizes"]  # pivot, two partitions, final
    assert all(d.metadata[REASONING_KEY] and NOTE_KEY not in d.metadata for d in out)


def test_a_failed_or_late_window_leaves_a_note():
    docs = docs_of(["alpha beta", "alpha"])
    failing = ReasonRankCompressor(top_n=None, model="fail", backend="scripted")
    out = failing.compress_documents(docs, "alpha beta")
    assert [d.id for d in out] == ["d0", "d1"]
    note = "window error: ConnectionError: the scripted model 'fail' is down; left in its prior order"
    assert [d.metadata for d in out] == [
        {NOTE_KEY: note, STATUS_KEY: "error", USAGE_KEY: NO_USAGE, "relevance_score": s} for s in (1.0, 0.5)
    ]
    with pytest.raises(ConnectionError):  # model trouble raises only when asked to
        ReasonRankCompressor(model="fail", backend="scripted", on_error="raise").compress_documents(docs, "q")

    late = ReasonRankCompressor(
        top_n=None, model="overlap", backend="scripted", timeout=0.2, backend_options={"latency": 30}
    )
    out = late.compress_documents(list(reversed(docs)), "alpha beta")
    assert [d.id for d in out] == ["d1", "d0"]
    assert [d.metadata[NOTE_KEY] for d in out] == [TIMEOUT_NOTE] * 2
    assert [d.metadata[STATUS_KEY] for d in out] == ["timeout"] * 2


def test_unknown_and_bad_arguments_raise_value_errors_naming_them():
    with pytest.raises(ValueError, match=r"unknown argument 'top_k' \(did you mean 'top_n'\?\)"):
        ReasonRankCompressor(top_k=3)
    with pytest.raises(ValueError, match="unknown argument 'windowsize'"):
        ReasonRankCompressor.model_validate({"model": "overlap", "backend": "scripted", "windowsize": 4})
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
            ReasonRankCompressor(model="overlap", backend="scripted", **bad)
    compressor = ReasonRankCompressor(model="overlap", backend="scripted")
    for docs, message in (
        (["a text"], r"documents\[0\] must be a Document, got str"),
        ("a text", "documents must be a list of Document, got str"),
        ([Document("a"), None], r"documents\[1\] must be a Document, got NoneType"),
    ):
        with pytest.raises(ValueError, match=message):
            compressor.compress_documents(docs, "q")
    for query in ("", "   ", None):
        with pytest.raises(ValueError, match="query"):
            compressor.compress_documents(docs_of(["a", "b"]), query)


async def test_bad_documents_are_refused_on_the_async_path_too():
    compressor = ReasonRankCompressor(model="overlap", backend="scripted")
    with pytest.raises(ValueError, match=r"documents\[0\] must be a Document"):
        await compressor.acompress_documents([{"page_content": "a"}], "q")


def test_close_and_context_manager_free_the_engine_a_shared_ranker_stays_open():
    with ReasonRankCompressor(model="x", backend="options") as compressor:
        assert compressor.compress_documents(docs_of(["a b", "a"]), "a b")
    (backend,) = OptionsBackend.instances
    assert backend.closed
    compressor.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        compressor.compress_documents(docs_of(["a b", "a"]), "a b")

    shared = ReasonRanker(backend=ScriptedBackend())
    with ReasonRankCompressor(ranker=shared):
        pass
    assert shared.rerank("q", ["a", "b"]).order  # a shared engine stays open


def test_the_title_key_reaches_the_prompt():
    backend = ScriptedBackend()
    docs = [
        Document("bm25 is a ranking function", metadata={"title": "Okapi BM25", "name": "N1"}),
        Document("dense retrieval", metadata={"name": "N2"}),
    ]
    ReasonRankCompressor(backend=backend).compress_documents(docs, "bm25")
    ReasonRankCompressor(backend=backend, title_key="name").compress_documents(docs, "bm25")
    ReasonRankCompressor(backend=backend, title_key=None).compress_documents(docs, "bm25")
    default, named, untitled = (parse_window(r.messages)[1] for r in backend.requests)
    assert default == ["Title: Okapi BM25 Content: bm25 is a ranking function", "dense retrieval"]
    assert named == ["Title: N1 Content: bm25 is a ranking function", "Title: N2 Content: dense retrieval"]
    assert untitled == ["bm25 is a ranking function", "dense retrieval"]


def test_score_threshold_usage_and_status_metadata():
    texts = ["one", "one two", "one two three", "one two three four"]
    backend = ScriptedBackend(score=word_count)
    compressor = ReasonRankCompressor(top_n=None, backend=backend, score_threshold=0.5)
    out = compressor.compress_documents(docs_of(texts), "q")
    assert [d.id for d in out] == ["d3", "d2", "d1"]  # scores 1, 3/4, 1/2; 1/4 is below
    result = compressor.ranker.rerank("q", texts)  # the same single window, run again
    (window,) = result.windows
    for doc in out:
        assert doc.metadata[STATUS_KEY] == "ok"
        assert doc.metadata[USAGE_KEY] == {
            "prompt_tokens": window.prompt_tokens,
            "completion_tokens": window.completion_tokens,
        }
    assert window.prompt_tokens > 0 and window.completion_tokens > 0


def test_dump_and_validate_round_trip_in_pydantic(store, queries):
    compressor = ReasonRankCompressor(
        top_n=3,
        model="x",
        backend="options",
        window_size=4,
        step=2,
        score_threshold=0.1,
        title_key="name",
        keep_retrieval_score=True,
    )
    dumped = compressor.model_dump()
    restored = ReasonRankCompressor.model_validate(json.loads(compressor.model_dump_json()))
    assert restored.model_dump() == dumped
    assert (restored.ranker.config.window_size, restored.ranker.config.step) == (4, 2)
    want = pipeline(store, compressor).invoke(queries["0"])
    got = pipeline(store, restored).invoke(queries["0"])
    assert [(d.id, d.metadata) for d in got] == [(d.id, d.metadata) for d in want]


def test_a_dumped_shared_ranker_refuses_to_load_instead_of_the_demo_model():
    compressor = ReasonRankCompressor(ranker=ReasonRanker(backend=ScriptedBackend()), top_n=2)
    dumped = compressor.model_dump()
    assert dumped["ranker"] == adapters.SHARED_RANKER
    for data in (dumped, json.loads(compressor.model_dump_json())):
        with pytest.raises(ValueError, match="built with ranker="):
            ReasonRankCompressor.model_validate(data)


def test_api_key_is_a_secret_never_dumped_and_reaches_server_backends_only(monkeypatch):
    monkeypatch.setitem(BACKENDS, "openai", f"{__name__}:OptionsBackend")
    monkeypatch.setenv("REASONRANK_API_KEY", "sk-from-env")
    given = ReasonRankCompressor(model="served", backend="openai", api_key="sk-given")
    assert given.api_key.get_secret_value() == "sk-given" and "sk-given" not in repr(given)
    dumped = given.model_dump_json()
    assert "sk-given" not in dumped and "api_key" not in json.loads(dumped)
    assert "sk-given" not in dumps(given)  # LangChain's own dump: not serializable, its repr masks the key
    restored = ReasonRankCompressor.model_validate_json(dumped)  # the key comes from the environment
    ReasonRankCompressor(model="local", backend="options")
    server, reloaded, local = OptionsBackend.instances
    assert (server.options, reloaded.options, local.options) == (
        {"api_key": "sk-given"},
        {"api_key": "sk-from-env"},
        {},
    )
    assert restored.api_key.get_secret_value() == "sk-from-env"
    with pytest.raises(ValueError, match=r"backend_options\['api_key'\].*plain text"):
        ReasonRankCompressor(model="served", backend="openai", backend_options={"api_key": "sk-plain"})


def test_a_loaded_config_cannot_turn_on_remote_code(monkeypatch):
    monkeypatch.delenv(REMOTE_CODE_ENV, raising=False)
    data = {"model": "x", "backend": "options", "backend_options": {"trust_remote_code": True}}
    with pytest.raises(ValueError, match=f"trust_remote_code.*{REMOTE_CODE_ENV}=1"):
        ReasonRankCompressor.model_validate(data)
    with pytest.raises(ValueError, match="trust_remote_code"):
        ReasonRankCompressor(**data)
    assert OptionsBackend.instances == []
    monkeypatch.setenv(REMOTE_CODE_ENV, "1")
    ReasonRankCompressor.model_validate(data)
    assert OptionsBackend.instances[0].options == {"trust_remote_code": True}


@pytest.fixture(scope="module")
def demo_ranker():
    with ReasonRanker(model="demo-0.5b", max_passage_tokens=64, reasoning_budget=128) as ranker:
        yield ranker


@pytest.mark.slow
def test_demo_model_reranks_the_retrieved_set(store, queries, demo_ranker):
    retriever = ContextualCompressionRetriever(
        base_compressor=ReasonRankCompressor(top_n=None, ranker=demo_ranker),
        base_retriever=store.as_retriever(search_kwargs={"k": 5}),
    )
    retrieved = store.as_retriever(search_kwargs={"k": 5}).invoke(queries["0"])

    docs = retriever.invoke(queries["0"])

    assert sorted(d.id for d in docs) == sorted(d.id for d in retrieved)
    scores = [d.metadata["relevance_score"] for d in docs]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)
    assert len(set(scores)) == len(scores)
    assert all(d.metadata[REASONING_KEY].strip() for d in docs)
