"""The app factory in-process (httpx over ASGI) on a ranker built on ScriptedBackend."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import typer

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.backends.scripted import overlap_score
from reasonrank_plugins.cli.options import build_options
from reasonrank_plugins.server.app import ServerLimits, create_app
from reasonrank_plugins.server.run import check_bind
from reasonrank_plugins.options import RankerOptions
from reasonrank_plugins.testing import OVERLAP_QUERY, TDPART_CASE, ScriptedBackend

DOCS = ["blue sky over the sea", "the red fox jumps", "a fox den", "red paint"]
QUERY = "red fox"


def by_length(query: str, content: str) -> float:
    return len(content)


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(score=by_length, latency=0.2, max_batch=16)


@pytest.fixture
def ranker(backend):
    with ReasonRanker(backend=backend, window_size=3, step=1) as ranker:
        yield ranker


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_rerank_shape_matches_cohere_and_carries_reasoning(ranker):
    docs = [DOCS[0], {"text": DOCS[1], "id": "d1", "source": "web"}, DOCS[2], DOCS[3]]
    async with client(create_app(ranker)) as c:
        r = await c.post(
            "/v1/rerank",
            json={"model": "scripted", "query": QUERY, "documents": docs, "top_n": 3, "return_documents": True},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    lengths = [len(DOCS[i]) for i in range(4)]
    expected = sorted(range(4), key=lambda i: -lengths[i])[:3]
    assert [x["index"] for x in body["results"]] == expected
    scores = [x["relevance_score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    assert body["results"][0]["document"] == {"text": DOCS[0]}
    by_index = {x["index"]: x for x in body["results"]}
    assert by_index[1]["document"] == {"text": DOCS[1], "id": "d1", "source": "web"}  # extra fields kept
    assert all(x["reasoning"] for x in body["results"])
    usage = body["usage"]
    assert (
        usage["windows"] == 2 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    )
    assert usage["prompt_tokens"] > 0 and usage["seconds"] > 0
    assert body["model"] == "scripted"


async def test_documents_are_left_out_unless_asked(ranker):
    async with client(create_app(ranker)) as c:
        r = await c.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
    assert r.status_code == 200
    assert len(r.json()["results"]) == 4 and all("document" not in x for x in r.json()["results"])


async def test_concurrent_requests_share_the_engine_batches(ranker, backend):
    """Windows of different requests are in flight together: one window per request here."""
    app = create_app(ranker)
    async with client(app) as c:
        rs = await asyncio.gather(
            *(c.post("/v1/rerank", json={"query": f"q{n}", "documents": DOCS[:3]}) for n in range(6))
        )
    assert [r.status_code for r in rs] == [200] * 6
    assert backend.peak_in_flight == 6  # each request is one window; all six ran as one batch


@pytest.mark.parametrize(
    "body, status, kind",
    [
        ({"query": QUERY, "documents": []}, 422, "invalid_request"),
        ({"query": "", "documents": DOCS}, 422, "invalid_request"),
        ({"query": "   ", "documents": DOCS}, 400, "invalid_request"),
        ({"query": QUERY, "documents": DOCS, "top_n": 0}, 422, "invalid_request"),
        ({"query": QUERY, "documents": [{"title": "no text"}]}, 400, "invalid_request"),  # no rank_fields
        ({"query": QUERY, "documents": DOCS * 3}, 413, "too_many_documents"),
    ],
)
async def test_bad_requests_get_json_errors(ranker, body, status, kind):
    async with client(create_app(ranker, limits=ServerLimits(max_documents=10))) as c:
        r = await c.post("/v1/rerank", json=body)
    assert r.status_code == status
    assert r.json()["type"] == kind and r.json()["message"]


async def test_body_limit_applies_without_content_length(ranker):
    """A chunked body (no Content-Length header) is counted while it streams."""
    payload = json.dumps({"query": QUERY, "documents": ["x" * 500] * 4}).encode()

    async def chunks():
        for i in range(0, len(payload), 256):
            yield payload[i : i + 256]

    async with client(create_app(ranker, limits=ServerLimits(max_request_bytes=1000))) as c:
        r = await c.post("/v1/rerank", content=chunks())
        small = await c.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
    assert r.status_code == 413 and r.json()["type"] == "request_too_large"
    assert small.status_code == 200


async def test_token_guards_rerank_and_metrics_not_health(ranker):
    async with client(create_app(ranker, token="s3cret")) as c:
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})).status_code == 401
        wrong = await c.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        ok = await c.post(
            "/v1/rerank", json={"query": QUERY, "documents": DOCS}, headers={"Authorization": "Bearer s3cret"}
        )
        assert ok.status_code == 200
        metrics = await c.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert 'reasonrank_requests_total{status="200"} 1.0' in metrics.text
    assert "reasonrank_documents_total 4.0" in metrics.text
    assert 'reasonrank_windows_total{status="ok"} 2.0' in metrics.text


async def test_a_failing_window_is_a_200_counted_in_usage_and_metrics():
    with ReasonRanker("fail", "scripted") as ranker:
        async with client(create_app(ranker)) as c:
            r = await c.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
            metrics = await c.get("/metrics")
    assert r.status_code == 200
    assert [x["index"] for x in r.json()["results"]] == [0, 1, 2, 3]  # kept in input order
    usage = r.json()["usage"]
    assert usage["statuses"] == {"ok": 0, "repaired": 0, "failed": 0, "error": 1, "timeout": 0}
    assert usage["windows"] == 1 and usage["timed_out"] is False
    assert 'reasonrank_windows_total{status="error"} 1.0' in metrics.text


async def test_engine_failure_is_a_json_500():
    with ReasonRanker("fail", "scripted", on_error="raise") as ranker:
        transport = httpx.ASGITransport(app=create_app(ranker), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            r = await c.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
            metrics = await c.get("/metrics")
    assert r.status_code == 500
    assert r.json() == {"type": "internal_error", "message": "internal server error",
                        "request_id": r.headers["x-request-id"]}  # the exception's text is only logged
    assert 'reasonrank_requests_total{status="500"} 1.0' in metrics.text
    assert "reasonrank_queued_requests 0.0" in metrics.text


@pytest.fixture
def sliding_ranker():
    """Window 4, step 2, cutoff 2 on the word-overlap script: ``TDPART_CASE``'s settings, sliding."""
    opts = {k: v for k, v in TDPART_CASE["options"].items() if k != "strategy"}
    with ReasonRanker("overlap", "scripted", **opts) as ranker:
        yield ranker


async def test_a_request_chooses_its_strategy_and_usage_reports_it(sliding_ranker):
    body = {"query": OVERLAP_QUERY, "documents": TDPART_CASE["texts"]}
    async with client(create_app(sliding_ranker)) as c:
        tdpart = await c.post("/v1/rerank", json=body | {"strategy": "tdpart"})
        sliding = await c.post("/v1/rerank", json=body)
        unknown = await c.post("/v1/rerank", json=body | {"strategy": "bubble"})
    assert tdpart.status_code == sliding.status_code == 200
    assert [x["index"] for x in tdpart.json()["results"]] == TDPART_CASE["order"]
    ok = {"ok": 4, "repaired": 0, "failed": 0, "error": 0, "timeout": 0}
    assert {k: tdpart.json()["usage"][k] for k in ("strategy", "windows", "depth", "statuses")} == {
        "strategy": "tdpart", "windows": 4, "depth": 3, "statuses": ok,
    }
    usage = sliding.json()["usage"]  # 8 candidates, window 4, step 2: windows [4,8), [2,6), [0,4)
    assert (usage["strategy"], usage["windows"], usage["depth"]) == ("sliding", 3, 3)
    assert unknown.status_code == 400 and unknown.json()["type"] == "invalid_request"
    assert "strategy must be one of ['sliding', 'tdpart'], got 'bubble'" in unknown.json()["message"]


async def test_a_server_that_forbids_overrides_refuses_another_strategy(sliding_ranker):
    body = {"query": OVERLAP_QUERY, "documents": TDPART_CASE["texts"]}
    async with client(create_app(sliding_ranker, allow_strategy_override=False)) as c:
        refused = await c.post("/v1/rerank", json=body | {"strategy": "tdpart"})
        own = await c.post("/v1/rerank", json=body | {"strategy": "sliding"})
        health = await c.get("/healthz")
    assert refused.status_code == 400 and refused.json()["type"] == "strategy_override_forbidden"
    assert "'sliding'" in refused.json()["message"]
    assert own.status_code == 200 and own.json()["usage"]["strategy"] == "sliding"
    assert health.json()["strategy"] == "sliding"


async def test_the_server_deadline_keeps_the_order_and_is_reported():
    spec = RankerOptions(model="overlap", backend="scripted", window_size=4, step=2, timeout=0.2)
    spec.backend_options["latency"] = 30  # the first window is still running at the deadline
    with spec.build() as ranker:
        async with client(create_app(ranker)) as c:
            r = await c.post("/v1/rerank", json={"query": OVERLAP_QUERY, "documents": TDPART_CASE["texts"]})
    assert r.status_code == 200
    assert [x["index"] for x in r.json()["results"]] == list(range(8))
    usage = r.json()["usage"]
    assert usage["timed_out"] is True and usage["statuses"]["timeout"] == 1 and usage["windows"] == 1


def test_bind_without_token_only_on_loopback():
    for host in ("127.0.0.1", "localhost", "::1"):
        check_bind(host, None)
    for host in ("0.0.0.0", "192.168.1.5", "example.org", "::"):
        with pytest.raises(ValueError, match="without a token"):
            check_bind(host, None)
    check_bind("0.0.0.0", "tok")


def test_scripted_spec_ranks_by_word_overlap():
    assert overlap_score("Red fox", "the red FOX!") == 1.0 and overlap_score("red fox", "a fox") == 0.5
    with RankerOptions(backend="scripted", window_size=4, step=2).build() as ranker:
        assert ranker.rerank(QUERY, DOCS).order == [1, 2, 3, 0]


def test_cli_spec_passes_one_or_several_base_urls():
    def options(urls):
        return build_options(model="m", backend="openai", base_url=urls).backend_options

    assert options([]) == {}
    assert options(["http://a/v1"]) == {"base_url": "http://a/v1"}
    assert options(["http://a/v1", "http://b/v1"]) == {"base_url": ["http://a/v1", "http://b/v1"]}


def test_cli_spec_carries_the_strategy_and_checks_it_before_loading():
    options = {"strategy": "tdpart", "cutoff": 2, "depth": 6, "timeout": 5}
    spec = build_options(model="overlap", backend="scripted", window_size=4, step=2, max_passage_tokens=64,
                         reasoning_budget=128, **options)
    assert (spec.strategy, spec.cutoff, spec.depth, spec.timeout) == ("tdpart", 2, 6, 5)
    with spec.build() as ranker:
        assert (ranker.config.strategy, ranker.config.cutoff, ranker.config.depth, ranker.timeout) == (
            "tdpart", 2, 6, 5,
        )
    with pytest.raises(typer.BadParameter, match="strategy must be one of"):
        build_options(model="m", backend="openai", strategy="bubble")
    with pytest.raises(typer.BadParameter, match="cutoff must be < window_size"):
        build_options(model="m", backend="openai", window_size=4, step=2, strategy="tdpart", cutoff=4)
