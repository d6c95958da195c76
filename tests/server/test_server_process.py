"""``reasonrank serve`` as a real process on 127.0.0.1 with the scripted (word-overlap) backend."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time

import cohere
import httpx
import pytest

from reasonrank_plugins.testing import OVERLAP_QUERY, TDPART_CASE

DOCS = ["blue sky over the sea", "the red fox jumps", "a fox den", "nothing here"]
QUERY = "red fox"


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_auth_limits_and_cohere_clients(server_factory):
    server = server_factory(
        "--backend",
        "scripted",
        "--max-documents",
        "8",
        "--max-request-bytes",
        "4000",
        "--served-model-name",
        "rerank-v3.5",
        env={"REASONRANK_TOKEN": "t0ken"},
    )
    body = {"query": QUERY, "documents": DOCS}
    assert httpx.post(f"{server.url}/v1/rerank", json=body).status_code == 401
    bad = httpx.post(f"{server.url}/v1/rerank", json=body, headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401 and bad.json()["type"] == "unauthorized"
    auth = {"Authorization": "Bearer t0ken"}
    ok = httpx.post(f"{server.url}/v1/rerank", json=body, headers=auth)
    assert ok.status_code == 200 and [x["index"] for x in ok.json()["results"]] == [1, 2, 0, 3]

    big = httpx.post(
        f"{server.url}/v1/rerank", json={"query": QUERY, "documents": ["x" * 1000] * 5}, headers=auth
    )
    assert big.status_code == 413 and big.json()["type"] == "request_too_large"
    many = httpx.post(f"{server.url}/v1/rerank", json={"query": QUERY, "documents": ["d"] * 9}, headers=auth)
    assert many.status_code == 413 and many.json()["type"] == "too_many_documents"

    # Cohere's own SDK, unchanged: v2 client (POST /v2/rerank) and v1 client (POST /v1/rerank)
    v2 = cohere.ClientV2(base_url=server.url, api_key="t0ken").rerank(
        model="rerank-v3.5", query=QUERY, documents=DOCS, top_n=2
    )
    assert [r.index for r in v2.results] == [1, 2]
    assert v2.results[0].relevance_score > v2.results[1].relevance_score
    assert v2.results[0].reasoning  # our extra field comes through the SDK's models
    v1 = cohere.Client(base_url=server.url, api_key="t0ken").rerank(
        query=QUERY, documents=DOCS, return_documents=True
    )
    assert [r.document.text for r in v1.results] == [DOCS[1], DOCS[2], DOCS[0], DOCS[3]]
    with pytest.raises(cohere.errors.UnauthorizedError):
        cohere.ClientV2(base_url=server.url, api_key="nope").rerank(model="m", query=QUERY, documents=DOCS)

    metrics = httpx.get(f"{server.url}/metrics", headers=auth).text
    assert 'reasonrank_requests_total{status="200"} 3.0' in metrics
    assert 'reasonrank_requests_total{status="413"} 2.0' in metrics
    assert 'reasonrank_rejected_total{reason="request_too_large"} 1.0' in metrics
    server.stop()


def test_strategy_flags_and_the_cohere_client_with_the_new_usage(server_factory):
    """A tdpart server that forbids overrides: Cohere's client still reads the response (usage grew
    strategy, depth, statuses and timed_out); a request naming another strategy gets 400."""
    opts = TDPART_CASE["options"]
    server = server_factory(
        "--backend", "scripted", "--strategy", "tdpart", "--cutoff", str(opts["cutoff"]),
        "--window", str(opts["window_size"]), "--step", str(opts["step"]), "--timeout", "60",
        "--no-allow-strategy-override", "--served-model-name", "rerank-v3.5",
    )
    body = {"query": OVERLAP_QUERY, "documents": TDPART_CASE["texts"]}
    r = httpx.post(f"{server.url}/v1/rerank", json=body)
    assert r.status_code == 200 and [x["index"] for x in r.json()["results"]] == TDPART_CASE["order"]
    usage = r.json()["usage"]
    assert (usage["strategy"], usage["depth"], usage["timed_out"]) == ("tdpart", 3, False)
    assert usage["statuses"] == {"ok": 4, "repaired": 0, "failed": 0, "error": 0, "timeout": 0}
    v2 = cohere.ClientV2(base_url=server.url, api_key="none").rerank(
        model="rerank-v3.5", query=OVERLAP_QUERY, documents=TDPART_CASE["texts"], top_n=3
    )
    assert [x.index for x in v2.results] == TDPART_CASE["order"][:3]
    refused = httpx.post(f"{server.url}/v1/rerank", json=body | {"strategy": "sliding"})
    assert refused.status_code == 400 and refused.json()["type"] == "strategy_override_forbidden"
    server.stop()


def test_queue_overflow_429_then_graceful_shutdown(server_factory):
    """Two slow requests fill the queue (limit 2): a third gets 429. SIGTERM then refuses new work
    but both in-flight requests still complete, and the process exits cleanly."""
    server = server_factory("--backend", "scripted", "--latency", "3", "--max-queued", "2")
    queued = lambda: httpx.get(f"{server.url}/healthz").json()["queued"]
    body = {"query": QUERY, "documents": DOCS}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = [pool.submit(httpx.post, f"{server.url}/v1/rerank", json=body, timeout=60) for _ in range(2)]
        wait_for(lambda: queued() == 2)
        over = httpx.post(f"{server.url}/v1/rerank", json=body)
        assert over.status_code == 429 and over.json()["type"] == "too_many_requests"
        assert over.headers["retry-after"] == "1"

        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        try:
            late = httpx.post(f"{server.url}/v1/rerank", json=body, timeout=10)
            assert late.status_code == 503  # got in before the socket closed: refused anyway
        except httpx.TransportError:
            pass  # connection refused: the listening socket is closed
        results = [f.result() for f in slow]
    assert [r.status_code for r in results] == [200, 200]
    assert all([x["index"] for x in r.json()["results"]] == [1, 2, 0, 3] for r in results)
    assert "shutting down: 2 request(s) in flight will finish" in server.stop()


def test_refuses_public_bind_without_token():
    cmd = [sys.executable, "-m", "reasonrank_plugins", "serve", "--backend", "scripted", "--host", "0.0.0.0"]
    env = {k: v for k, v in os.environ.items() if k != "REASONRANK_TOKEN"}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert "without a token" in proc.stderr
