"""TEI's ``/rerank``, Cohere's fields (``rank_fields``, ``max_tokens_per_doc``, ``model``,
``meta``), request ids and generic 500s, and the OpenAPI schema: the app in-process (httpx over
ASGI) on a ranker built on ScriptedBackend."""

from __future__ import annotations

import logging

import httpx
import pytest

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.backends.scripted import overlap_score
from reasonrank_plugins.server.app import create_app
from reasonrank_plugins.testing import ScriptedBackend, parse_window

DOCS = ["blue sky over the sea", "the red fox jumps", "a fox den", "red paint"]
QUERY = "red fox"
ORDER = [1, 2, 3, 0]  # by word overlap with QUERY (ties keep the input order)


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(score=overlap_score, model_name="scripted-overlap")


@pytest.fixture
def ranker(backend):
    with ReasonRanker(backend=backend, window_size=4, step=2, max_passage_tokens=12) as ranker:
        yield ranker


def client(app, **kwargs) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, **kwargs)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def prompt_contents(backend: ScriptedBackend) -> list[str]:
    return parse_window(backend.requests[-1].messages)[1]


# -- TEI ------------------------------------------------------------------------------------------
async def test_tei_rerank_is_a_bare_list_one_entry_per_text_best_first(ranker):
    async with client(create_app(ranker)) as c:
        r = await c.post("/rerank", json={"query": QUERY, "texts": DOCS})
        with_text = await c.post(
            "/rerank",
            json={"query": QUERY, "texts": DOCS, "return_text": True, "raw_scores": True, "truncate": True,
                  "truncation_direction": "Right"},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, list) and [x["index"] for x in body] == ORDER
    assert all(set(x) == {"index", "score"} for x in body)
    scores = [x["score"] for x in body]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(DOCS)
    assert with_text.status_code == 200
    assert [x["text"] for x in with_text.json()] == [DOCS[i] for i in ORDER]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"query": QUERY, "texts": []}, 422),
        ({"query": QUERY, "documents": DOCS}, 422),  # Cohere's body on TEI's route
        ({"query": QUERY, "texts": DOCS, "truncation_direction": "Left"}, 422),  # we keep a text's start
        ({"query": QUERY, "texts": ["x"] * 9}, 413),
    ],
)
async def test_tei_bad_requests(ranker, body, status):
    from reasonrank_plugins.server.app import ServerLimits

    async with client(create_app(ranker, limits=ServerLimits(max_documents=8))) as c:
        r = await c.post("/rerank", json=body)
    assert r.status_code == status and r.json()["type"] in ("invalid_request", "too_many_documents")
    assert r.json()["request_id"] == r.headers["x-request-id"]


async def test_a_token_is_accepted_with_or_without_bearer(ranker):
    async with client(create_app(ranker, token="s3cret")) as c:
        for header in ("Bearer s3cret", "bearer s3cret", "s3cret"):
            r = await c.post("/rerank", json={"query": QUERY, "texts": DOCS}, headers={"Authorization": header})
            assert r.status_code == 200, header
        for header in ("Bearer wrong", "wrong", "Bearer", "Basic s3cret"):
            r = await c.post("/rerank", json={"query": QUERY, "texts": DOCS}, headers={"Authorization": header})
            assert r.status_code == 401, header
        assert (await c.post("/rerank", json={"query": QUERY, "texts": DOCS})).status_code == 401


# -- Cohere's fields ------------------------------------------------------------------------------
async def test_max_tokens_per_doc_cuts_passages_capped_by_the_server(ranker, backend):
    long = ["red " + "word " * 20, "fox " + "word " * 20]
    async with client(create_app(ranker)) as c:
        await c.post("/v1/rerank", json={"query": QUERY, "documents": long, "max_tokens_per_doc": 3})
        cut = prompt_contents(backend)
        await c.post("/v1/rerank", json={"query": QUERY, "documents": long, "max_tokens_per_doc": 1000})
        capped = prompt_contents(backend)
        await c.post("/v1/rerank", json={"query": QUERY, "documents": long})
        default = prompt_contents(backend)
        bad = await c.post("/v1/rerank", json={"query": QUERY, "documents": long, "max_tokens_per_doc": 0})
    assert [len(t.split()) for t in cut] == [3, 3]
    assert [len(t.split()) for t in capped] == [12, 12] == [len(t.split()) for t in default]
    assert bad.status_code == 422


async def test_rank_fields_choose_what_is_ranked_and_title_goes_to_the_title(ranker, backend):
    docs = [{"body": "blue sea", "id": "a"}, {"body": "red fox", "id": "b"}]
    async with client(create_app(ranker)) as c:
        r = await c.post(
            "/v1/rerank",
            json={"query": QUERY, "documents": docs, "rank_fields": ["body"], "return_documents": True},
        )
        assert r.status_code == 200, r.text
        assert [x["index"] for x in r.json()["results"]] == [1, 0]
        assert r.json()["results"][0]["document"] == docs[1]  # every field comes back
        assert prompt_contents(backend) == ["blue sea", "red fox"]

        titled = [{"title": "Foxes", "body": "a den", "author": "Ann"}, {"title": "Sea", "body": "waves", "author": "Bo"}]
        r = await c.post("/v1/rerank", json={"query": QUERY, "documents": titled,
                                             "rank_fields": ["title", "body", "author"]})
        assert r.status_code == 200
        assert prompt_contents(backend) == ["Title: Foxes Content: body: a den\nauthor: Ann",
                                            "Title: Sea Content: body: waves\nauthor: Bo"]
        r = await c.post("/v1/rerank", json={"query": QUERY, "documents": [{"text": "red", "title": "T"}, "fox"]})
        assert r.status_code == 200 and prompt_contents(backend) == ["Title: T Content: red", "fox"]

        missing = await c.post("/v1/rerank", json={"query": QUERY, "documents": [{"body": "x"}]})
        assert missing.status_code == 400 and "rank_fields" in missing.json()["message"]
        absent = await c.post("/v1/rerank", json={"query": QUERY, "documents": [{"body": "x"}], "rank_fields": ["text"]})
        assert absent.status_code == 400 and "'text'" in absent.json()["message"]
        number = await c.post("/v1/rerank", json={"query": QUERY, "documents": [{"n": 3}], "rank_fields": ["n"]})
        assert number.status_code == 400 and "must be a string" in number.json()["message"]


async def test_the_requested_model_is_echoed_or_refused(ranker):
    app = create_app(ranker, model_names=["rerank-v3.5"])
    async with client(app) as c:
        assert (await c.get("/healthz")).json()["models"] == ["scripted-overlap", "rerank-v3.5"]
        for model in ("rerank-v3.5", "scripted-overlap"):
            r = await c.post("/v2/rerank", json={"model": model, "query": QUERY, "documents": DOCS})
            assert r.status_code == 200 and r.json()["model"] == model
        r = await c.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
        assert r.json()["model"] == "scripted-overlap"
        bad = await c.post("/v2/rerank", json={"model": "rerank-english-v2.0", "query": QUERY, "documents": DOCS})
    assert bad.status_code == 400 and bad.json()["type"] == "unknown_model"
    assert "rerank-english-v2.0" in bad.json()["message"] and "rerank-v3.5" in bad.json()["message"]


async def test_meta_billed_units_and_the_request_id(ranker):
    async with client(create_app(ranker)) as c:
        v1 = await c.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
        v2 = await c.post("/v2/rerank", json={"query": QUERY, "documents": DOCS * 26},
                          headers={"x-request-id": "trace-42"})
    assert v1.json()["meta"] == {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}}
    assert v2.json()["meta"] == {"api_version": {"version": "2"}, "billed_units": {"search_units": 2}}  # 104 docs
    assert v1.json()["id"] == v1.headers["x-request-id"] and len(v1.json()["id"]) == 32
    assert v2.json()["id"] == v2.headers["x-request-id"] == "trace-42"


# -- errors ---------------------------------------------------------------------------------------
async def test_a_500_is_generic_with_a_request_id_and_the_details_go_to_the_log(caplog):
    with ReasonRanker("fail", "scripted", on_error="raise") as ranker:
        async with client(create_app(ranker), raise_app_exceptions=False) as c:
            with caplog.at_level(logging.ERROR, logger="reasonrank_plugins.server.app"):
                r = await c.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
                tei = await c.post("/rerank", json={"query": QUERY, "texts": DOCS})
    assert r.status_code == tei.status_code == 500
    rid = r.headers["x-request-id"]
    assert r.json() == {"type": "internal_error", "message": "internal server error", "request_id": rid}
    assert "down" not in r.text and "ConnectionError" not in r.text
    logged = [rec for rec in caplog.records if rid in rec.getMessage()]
    assert logged and logged[0].exc_info and "the scripted model 'fail' is down" in str(logged[0].exc_info[1])


# -- OpenAPI --------------------------------------------------------------------------------------
async def test_the_openapi_schema_describes_every_endpoint(ranker):
    async with client(create_app(ranker)) as c:
        schema = (await c.get("/openapi.json")).json()
    paths = schema["paths"]
    assert set(paths) == {"/v1/rerank", "/v2/rerank", "/rerank", "/healthz", "/metrics"}
    components = schema["components"]["schemas"]

    def resolve(ref: dict) -> dict:
        return components[ref["$ref"].rsplit("/", 1)[1]]

    for path, request, response in [("/v1/rerank", "RerankRequest", "RerankResponse"),
                                    ("/v2/rerank", "RerankRequest", "RerankResponse"),
                                    ("/rerank", "TEIRerankRequest", None)]:
        op = paths[path]["post"]
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{request}"}
        assert {"query"} <= set(resolve(body)["required"])
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        if response:
            assert ok == {"$ref": f"#/components/schemas/{response}"}
        else:
            assert ok["type"] == "array" and ok["items"] == {"$ref": "#/components/schemas/TEIRank"}
        for code in ("400", "401", "413", "422", "429", "500", "503"):
            error = op["responses"][code]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorBody"}, (path, code)
    assert set(resolve({"$ref": "#/components/schemas/RerankRequest"})["properties"]) >= {
        "model", "query", "documents", "top_n", "return_documents", "rank_fields", "max_tokens_per_doc", "strategy"}
    assert paths["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Health"}
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    refs = [v for v in _walk(schema) if isinstance(v, str) and v.startswith("#/")]
    assert all(r.startswith("#/components/schemas/") and r.rsplit("/", 1)[1] in components for r in refs)


def _walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# -- the result cache ------------------------------------------------------------------------------
async def test_a_repeated_request_is_answered_from_the_cache_and_usage_says_so(backend):
    with ReasonRanker(backend=backend, window_size=4, step=2, cache_size=8) as ranker:
        async with client(create_app(ranker)) as c:
            first = await c.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
            calls = len(backend.requests)
            second = await c.post("/v2/rerank", json={"query": QUERY, "documents": DOCS, "top_n": 2})
            tei = await c.post("/rerank", json={"query": QUERY, "texts": DOCS})
            other = await c.post("/v1/rerank", json={"query": QUERY, "documents": DOCS, "max_tokens_per_doc": 1})
            metrics = (await c.get("/metrics")).text
    assert first.json()["usage"]["cached"] is False and second.json()["usage"]["cached"] is True
    assert [x["index"] for x in second.json()["results"]] == ORDER[:2]
    assert [x["index"] for x in tei.json()] == ORDER
    assert len(backend.requests) == calls + len(DOCS) // 4  # only the request with another passage cut ran
    assert other.json()["usage"]["cached"] is False
    assert "reasonrank_cached_results_total 2.0" in metrics
    assert 'reasonrank_windows_total{status="ok"} 2.0' in metrics  # the model's windows, not the hits'
