"""The openai backend and its replica dispatch.

Fast tests use the replica pool with in-process fakes, or small scripted OpenAI-compatible servers
(uvicorn in a thread, answers known in advance). Slow tests run llama-cpp-python's real server on
the demo GGUF on 127.0.0.1, kill it and restart it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.backends.base import GenerationRequest
from reasonrank_plugins.backends.openai import OpenAIBackend
from reasonrank_plugins.backends.replicas import NoHealthyReplica, ReplicaPool
from reasonrank_plugins.testing import ScriptedBackend, make_qwen25_tokenizer

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def number_score(query: str, content: str) -> float:
    """Passages are 'passage <k> ...': a higher k ranks higher."""
    return float(content.split()[1])


def numbered(n: int, offset: int = 0) -> list[str]:
    return [f"passage {(7 * i + offset) % n} about topic {i}" for i in range(n)]


def expected_orders(items: list[tuple[str, list[str]]], **config) -> list[list[int]]:
    with ReasonRanker(backend=ScriptedBackend(score=number_score), **config) as ranker:
        return [r.order for r in ranker.rerank_many(items)]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


# -- the pool on its own -----------------------------------------------------------------------
def make_pool(urls: list[str], probe_ok: dict[str, bool] | None = None, **options) -> ReplicaPool[str]:
    health = probe_ok if probe_ok is not None else {}

    async def probe(client: str) -> bool:
        return health.get(client, True)

    return ReplicaPool(urls, lambda url: url, probe, retryable=(ConnectionError,), **options)


async def test_pool_routes_to_least_outstanding_and_caps_concurrency():
    pool = make_pool(["a", "b", "c"], max_concurrency=2)
    gates: dict[str, asyncio.Event] = {url: asyncio.Event() for url in "abc"}
    running: dict[str, int] = {url: 0 for url in "abc"}
    peak: dict[str, int] = {url: 0 for url in "abc"}

    async def call(client: str) -> str:
        running[client] += 1
        peak[client] = max(peak[client], running[client])
        await gates[client].wait()
        running[client] -= 1
        return client

    first = [asyncio.create_task(pool.run(call)) for _ in range(6)]
    await asyncio.sleep(0.05)
    assert [r.outstanding for r in pool.replicas] == [2, 2, 2]  # spread evenly
    gates["b"].set()
    await asyncio.sleep(0.05)
    assert [r.outstanding for r in pool.replicas] == [2, 0, 2]
    gates["b"].clear()
    extra = [asyncio.create_task(pool.run(call)) for _ in range(3)]  # b, b, then a (used least of a, c)
    await asyncio.sleep(0.05)
    assert [r.outstanding for r in pool.replicas] == [3, 2, 2]
    for gate in gates.values():
        gate.set()
    results = await asyncio.gather(*first, *extra)
    assert {url: results.count(url) for url in "abc"} == {"a": 3, "b": 4, "c": 2}
    assert peak == {"a": 2, "b": 2, "c": 2}  # max_concurrency per replica held
    assert sum(r.served for r in pool.replicas) == 9


async def test_pool_fails_over_marks_unhealthy_and_reprobes():
    health = {"a": True, "b": True}
    pool = make_pool(["a", "b"], health, probe_interval=0.05)

    async def call(client: str) -> str:
        if not health[client]:
            raise ConnectionError(f"{client} is down")
        return client

    assert await asyncio.gather(*(pool.run(call) for _ in range(2))) == ["a", "b"]
    health["a"] = False  # dies: its windows go to b
    assert await asyncio.gather(*(pool.run(call) for _ in range(4))) == ["b"] * 4
    a, b = pool.replicas
    assert not a.healthy and a.failures == 1 and a.served == 1 and b.served == 5
    await asyncio.sleep(0.1)
    await pool.run(call)  # the re-probe fails: a stays out
    await asyncio.sleep(0.01)
    assert not a.healthy and a.failures == 1
    health["a"] = True  # back: the next probe brings it in
    await asyncio.sleep(0.1)
    await pool.run(call)
    await asyncio.sleep(0.01)
    assert a.healthy
    assert await pool.run(call) == "a"  # used least: it takes the next call


async def test_pool_waits_for_a_replica_then_gives_up():
    health = {"a": False}
    pool = make_pool(["a"], health, probe_interval=0.05, failover_timeout=0.5)

    async def call(client: str) -> str:
        return client

    began = time.monotonic()
    with pytest.raises(NoHealthyReplica, match="no healthy replica"):
        await pool.run(call)
    assert 0.45 < time.monotonic() - began < 3
    task = asyncio.create_task(pool.run(call))  # comes back while a call waits
    await asyncio.sleep(0.2)
    assert not task.done()
    health["a"] = True
    assert await asyncio.wait_for(task, 2) == "a"


async def test_pool_wait_for_recovery_starts_when_the_replica_fails():
    """A window that ran long on a replica before it died still gets the whole failover_timeout."""
    health = {"a": True}
    pool = make_pool(["a"], health, probe_interval=0.05, failover_timeout=0.4)
    attempts = 0

    async def call(client: str) -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await asyncio.sleep(0.6)  # longer than failover_timeout
            health["a"] = False
            asyncio.get_running_loop().call_later(0.2, health.update, {"a": True})  # back after a restart
            raise ConnectionError("a died mid-request")
        return attempts

    assert await pool.run(call) == 2
    assert pool.replicas[0].failures == 1 and pool.replicas[0].healthy


async def test_pool_raises_request_errors_without_failover():
    pool = make_pool(["a", "b"])

    async def call(client: str) -> str:
        raise ValueError("bad request")

    with pytest.raises(ValueError, match="bad request"):
        await pool.run(call)
    assert all(r.healthy for r in pool.replicas)
    assert sum(r.assigned for r in pool.replicas) == 1


# -- scripted OpenAI-compatible servers ----------------------------------------------------------
class FakeServer:
    """An OpenAI-compatible chat server on 127.0.0.1 whose answers come from ``ScriptedBackend``
    (each window ranked by ``number_score``). ``kill()`` stops it with requests in flight."""

    def __init__(
        self,
        latency: float = 0.0,
        reasoning_field: str | None = None,
        owned_by: str = "fake",
        max_model_len: int | None = None,
        respond=None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.latency = latency
        self.respond = respond
        self.reasoning_field = reasoning_field
        self.model_card: dict = {"id": "fake-ranker", "object": "model", "owned_by": owned_by}
        if max_model_len is not None:
            self.model_card["max_model_len"] = max_model_len
        self.models_status = 200
        self.error_status: int | None = None
        self.bodies: list[dict] = []  # chat and completions requests, in order
        self.models_calls = 0
        self._server = None
        self._thread: threading.Thread | None = None

    def _app(self):
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        script = ScriptedBackend(self.respond, score=number_score, latency=self.latency)

        async def models(request):
            self.models_calls += 1
            if self.models_status != 200:
                return JSONResponse({"error": {"message": "no models here"}}, status_code=self.models_status)
            return JSONResponse({"object": "list", "data": [self.model_card]})

        async def completions(request):  # a fixed answer: the tests read what was sent
            body = await request.json()
            self.bodies.append(body)
            usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
            choice = {"index": 0, "text": "[1]", "finish_reason": "stop"}
            return JSONResponse(
                {"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": body["model"]}
                | {"choices": [choice], "usage": usage}
            )

        async def chat(request):
            body = await request.json()
            self.bodies.append(body)
            if self.error_status:
                return JSONResponse({"error": {"message": "scripted error"}}, status_code=self.error_status)
            messages, prefix = body["messages"], ""
            if messages[-1]["role"] == "assistant" and body.get("continue_final_message"):
                prefix, messages = messages[-1]["content"], messages[:-1]
            gen = await script.generate(
                GenerationRequest(messages, body["max_tokens"], prefix, tuple(body.get("stop") or ()))
            )
            message = {"role": "assistant", "content": gen.text}
            if self.reasoning_field and not prefix:
                reasoning, _, answer = gen.text.removeprefix("<think>").partition("</think>")
                message = {"role": "assistant", "content": answer.strip(), self.reasoning_field: reasoning}
            usage = {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens}
            usage["total_tokens"] = sum(usage.values())
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": gen.finish_reason}],
                    "usage": usage,
                }
            )

        return Starlette(
            routes=[
                Route("/v1/models", models),
                Route("/v1/chat/completions", chat, methods=["POST"]),
                Route("/v1/completions", completions, methods=["POST"]),
            ]
        )

    def start(self) -> FakeServer:
        import uvicorn

        config = uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="critical")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_until(lambda: self._server.started, 10, "the fake server")
        return self

    def kill(self) -> None:
        self._server.should_exit = self._server.force_exit = True
        self._thread.join(10)


@pytest.fixture
def fake_servers():
    servers: list[FakeServer] = []

    def make(**options) -> FakeServer:
        servers.append(FakeServer(**options).start())
        return servers[-1]

    yield make
    for server in servers:
        if server._thread.is_alive():
            server.kill()


def test_rerank_through_scripted_server_maps_reasoning_and_tokens(fake_servers):
    server = fake_servers(reasoning_field="reasoning_content")
    items = [("q", numbered(5))]
    with ReasonRanker(backend="openai", base_url=[server.url]) as ranker:  # default model: the served one
        result = ranker.rerank(*items[0])
        assert ranker.backend.model_name == "fake-ranker"
    assert result.order == expected_orders(items)[0]
    assert [number_score("q", items[0][1][i]) for i in result.order] == [4, 3, 2, 1, 0]
    (window,) = result.windows
    assert window.reasoning == "ranked 5 passages by score" and str(window.status) == "ok"
    assert window.prompt_tokens > 0 and window.completion_tokens > 0 and not window.forced
    body = server.bodies[-1]
    assert body["temperature"] == 0.0 and body["model"] == "fake-ranker"


def test_forced_answer_continues_the_assistant_turn_on_chat(fake_servers):
    def long_thinker(query, contents):  # thinks past the budget (reasoning_budget 2 + 100 words)
        ranked = sorted(range(len(contents)), key=lambda i: -number_score(query, contents[i]))
        answer = " > ".join(f"[{i + 1}]" for i in ranked)
        return "<think>" + "hmm " * 150 + "</think> <answer>" + answer + "</answer>"

    server = fake_servers(respond=long_thinker)
    items = [("q", numbered(4))]
    with ReasonRanker(model="fake-ranker", base_url=server.url, reasoning_budget=2) as ranker:
        assert ranker.backend.forced_answer == "chat"  # no tokenizer known
        result = ranker.rerank(*items[0])
    assert result.forced == 1 and result.order == expected_orders(items)[0]
    main, forced = server.bodies
    assert main["max_tokens"] == 2 + 100 and "continue_final_message" not in main
    assert forced["continue_final_message"] is True and forced["add_generation_prompt"] is False
    assert forced["messages"][:2] == main["messages"]
    prefix = forced["messages"][2]
    assert prefix["role"] == "assistant"
    assert prefix["content"] == "<think>" + "hmm " * 101 + "hmm</think>\n<answer>"
    assert forced["stop"] == ["</answer>"]
    assert "<answer>" in result.windows[0].output and result.windows[0].output.endswith("</answer>")


def test_client_errors_are_raised_not_failed_over(fake_servers):
    bad, good = fake_servers(), fake_servers()
    bad.error_status = 400
    named = {"server": "vllm", "context_length": 4096}  # no /v1/models call
    backend = OpenAIBackend("fake-ranker", base_url=[bad.url, good.url], **named)
    request = GenerationRequest([{"role": "user", "content": "hi"}], max_tokens=4)
    with pytest.raises(openai.BadRequestError):
        asyncio.run(backend.generate(request))  # the first call goes to the first replica
    assert all(r.healthy for r in backend.replicas) and len(bad.bodies) == 1 and not good.bodies
    backend.close()


def test_failover_when_a_replica_dies_mid_run_and_rejoin(fake_servers):
    a, b = fake_servers(latency=0.15), fake_servers(latency=0.15)
    items = [(f"q{k}", numbered(3 + k % 3, offset=k)) for k in range(12)]
    named = {"model": "fake-ranker", "server": "vllm", "context_length": 4096}  # no /v1/models call
    with ReasonRanker(base_url=[a.url, b.url], max_concurrency=2, probe_interval=0.2, **named) as ranker:
        ra, rb = ranker.backend.replicas
        killer = threading.Thread(target=lambda: (wait_until(lambda: rb.served >= 1, 30, "b"), b.kill()))
        killer.start()
        results = ranker.rerank_many(items)
        killer.join()
        assert [r.order for r in results] == expected_orders(items)
        assert all(len(r.windows) == 1 for r in results)
        assert not rb.healthy and rb.failures >= 1 and ra.served + rb.served == 12
        assert ra.assigned + rb.assigned > 12  # the windows that were on b went again to a
        b.start()  # same port: the next probe brings it back
        time.sleep(0.3)
        again = ranker.rerank_many(items[:4])
        assert [r.order for r in again] == expected_orders(items[:4])
        assert rb.healthy


def test_single_server_down_at_start_is_waited_for(fake_servers):
    server = FakeServer()
    backend = OpenAIBackend("fake-ranker", base_url=server.url, probe_interval=0.1, failover_timeout=20)
    with ReasonRanker(backend=backend) as ranker:
        threading.Timer(0.5, server.start).start()
        result = ranker.rerank("q", numbered(3))
    server.kill()
    assert result.order == expected_orders([("q", numbered(3))])[0]
    assert backend.replicas[0].served == backend.replicas[0].assigned == 2  # /v1/models, the window


def test_bad_arguments():
    with pytest.raises(ValueError, match="base_url"):
        OpenAIBackend("m", base_url="localhost:8000")
    with pytest.raises(ValueError, match="base_url"):
        OpenAIBackend("m", base_url=[])
    with pytest.raises(ValueError, match="distinct"):
        OpenAIBackend("m", base_url=["http://h/v1", "http://h/v1"])
    with pytest.raises(ValueError, match="tokenizer="):
        OpenAIBackend("m", base_url="http://h/v1", forced_answer="completions")
    with pytest.raises(ValueError, match="server must be"):
        OpenAIBackend("m", base_url="http://h/v1", server="tgi")
    with pytest.raises(ValueError, match="context_length"):
        OpenAIBackend("m", base_url="http://h/v1", context_length=0)


# -- tokenizer: truncation and local rendering ----------------------------------------------------
@pytest.fixture(scope="module")
def qwen_tokenizer_dir(tmp_path_factory) -> Path:
    return make_qwen25_tokenizer(tmp_path_factory.mktemp("qwen25-tokenizer"))


def test_truncate_with_tokenizer_is_exact(qwen_tokenizer_dir):
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", tokenizer=str(qwen_tokenizer_dir))
    assert backend.forced_answer == "completions"
    text = "Okapi BM25 ranks documents by term frequency saturation and length normalisation. " * 5
    cut = backend.truncate(text, 12)
    assert len(backend.tokenizer.encode(cut, add_special_tokens=False)) == 12 and text.startswith(cut)
    assert backend.truncate("short text", 12) == "short text"


def test_truncate_without_tokenizer_estimates_and_warns_once(caplog):
    with caplog.at_level(logging.WARNING, logger="reasonrank_plugins.backends.openai"):
        backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")  # no folder, not in the cache
        text = "word " * 200
        cuts = [backend.truncate(text, 10) for _ in range(3)]
        auto = OpenAIBackend("auto", base_url="http://127.0.0.1:9/v1")  # the name comes later
        auto.truncate(text, 10)
    assert backend.tokenizer is None and backend.forced_answer == "chat"
    assert backend.count_tokens(GenerationRequest([{"role": "user", "content": "U"}], 8)) is None
    assert cuts[0] == ("word " * 8).strip() and len(cuts[0]) <= 40
    warnings = [m for m in caplog.messages if "without tokenizer" in m]
    assert len(warnings) == 2 and "'m'" in warnings[0]  # once per backend


def test_tokenizer_comes_from_a_local_model_folder(qwen_tokenizer_dir):
    backend = OpenAIBackend(str(qwen_tokenizer_dir), base_url="http://127.0.0.1:9/v1")
    assert backend.tokenizer is not None and backend.forced_answer == "completions"
    text = "Okapi BM25 ranks documents by term frequency saturation and length normalisation. " * 5
    assert len(backend.tokenizer.encode(backend.truncate(text, 12), add_special_tokens=False)) == 12
    messages = [{"role": "user", "content": "U"}]
    ids = backend.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    assert backend.count_tokens(GenerationRequest(messages, 8)) == len(ids)


def test_render_matches_the_chat_template_then_prefix(qwen_tokenizer_dir):
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", tokenizer=str(qwen_tokenizer_dir))
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    prompt = backend.render(GenerationRequest(messages, 8, prefix="<think>x</think>\n<answer>"))
    assert prompt == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        "<think>x</think>\n<answer>"
    )


# -- greedy sampling fields, context length, capacity ----------------------------------------------
STANDARD = {"temperature": 0.0, "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}
GREEDY_BODIES = {  # the sampling fields each server kind must receive, and nothing else
    "vllm": STANDARD | {"top_k": -1, "repetition_penalty": 1.0},
    "sglang": STANDARD | {"top_k": -1, "repetition_penalty": 1.0},
    "llamacpp": STANDARD | {"top_k": 0, "repeat_penalty": 1.0},
    "openai": STANDARD,
    "auto": STANDARD | {"repetition_penalty": 1.0, "repeat_penalty": 1.0},  # a server not recognised
}
SAMPLING_KEYS = set().union(*GREEDY_BODIES.values()) | {"min_p", "top_a", "typical_p"}


def sampling_fields(body: dict) -> dict:
    return {key: value for key, value in body.items() if key in SAMPLING_KEYS}


@pytest.mark.parametrize(
    ("server", "owned_by", "profile"),
    [
        ("auto", "vllm", "vllm"),
        ("auto", "sglang", "sglang"),
        ("auto", "me", "llamacpp"),  # llama-cpp-python
        ("auto", "llamacpp", "llamacpp"),  # llama.cpp's llama-server
        ("auto", "deepseek", "openai"),
        ("auto", "someone-else", "auto"),
        ("vllm", "me", "vllm"),  # given beats detected
        ("openai", "vllm", "openai"),
    ],
)
def test_every_request_pins_greedy_in_the_servers_field_names(
    fake_servers, qwen_tokenizer_dir, server, owned_by, profile
):
    fake = fake_servers(owned_by=owned_by)
    messages = [{"role": "user", "content": "rank"}]
    main = GenerationRequest(messages, max_tokens=8)
    prefix, stop = "<think>x</think>\n<answer>", ("</answer>",)
    forced = GenerationRequest(messages, max_tokens=8, prefix=prefix, stop=stop)
    for forced_answer in ("completions", "chat"):
        backend = OpenAIBackend(
            base_url=fake.url, server=server, tokenizer=str(qwen_tokenizer_dir), forced_answer=forced_answer
        )

        async def both(backend=backend):
            await backend.generate(main)
            await backend.generate(forced)

        asyncio.run(both())
        assert backend.server == profile and backend.model_name == "fake-ranker"
        backend.close()
    chat, completion, chat_again, forced_chat = fake.bodies
    assert "prompt" in completion and forced_chat.get("continue_final_message") is True
    for body in fake.bodies:
        assert sampling_fields(body) == GREEDY_BODIES[profile], body
        assert body["max_tokens"] == 8
    assert completion["stop"] == forced_chat["stop"] == ["</answer>"]


def test_extra_body_overrides_a_pinned_field(fake_servers):
    fake = fake_servers(owned_by="vllm")
    backend = OpenAIBackend("fake-ranker", base_url=fake.url, extra_body={"repetition_penalty": 1.05})
    asyncio.run(backend.generate(GenerationRequest([{"role": "user", "content": "q"}], max_tokens=4)))
    assert fake.bodies[0]["repetition_penalty"] == 1.05 and fake.bodies[0]["top_k"] == -1
    backend.close()


def test_hosted_apis_get_only_the_standard_fields_without_asking():
    backend = OpenAIBackend("deepseek-chat", base_url="https://api.deepseek.com/v1", context_length=65536)
    assert backend.server == "openai" and backend.context_length == 65536
    asyncio.run(backend.prepare())  # nothing left to ask: no connection is made (the URL is not reachable)
    assert backend.replicas[0].assigned == 0


def test_context_length_from_max_model_len_once_for_concurrent_windows(fake_servers):
    fake = fake_servers(owned_by="vllm", max_model_len=32768)
    backend = OpenAIBackend(base_url=fake.url)
    assert backend.context_length is None and backend.server == "auto"
    request = GenerationRequest([{"role": "user", "content": "q"}], max_tokens=4)

    async def run() -> None:
        await asyncio.gather(backend.prepare(), *(backend.generate(request) for _ in range(5)))
        assert backend.context_length == 32768 and backend.server == "vllm"
        await backend.prepare()  # done: asks nothing more

    asyncio.run(run())
    assert backend.replicas[0].assigned == 6 and len(fake.bodies) == 5  # one /v1/models call, 5 windows
    backend.close()


def test_context_length_option_wins_and_first_window_prepares(fake_servers):
    fake = fake_servers(owned_by="sglang", max_model_len=32768)
    backend = OpenAIBackend("fake-ranker", base_url=fake.url, context_length=8192)
    asyncio.run(backend.generate(GenerationRequest([{"role": "user", "content": "q"}], max_tokens=4)))
    assert backend.context_length == 8192 and backend.server == "sglang"
    assert backend.replicas[0].assigned == 2  # /v1/models for the server kind, then the window
    backend.close()
    pinned = OpenAIBackend("fake-ranker", base_url=fake.url, server="sglang", context_length=8192)
    asyncio.run(pinned.generate(GenerationRequest([{"role": "user", "content": "q"}], max_tokens=4)))
    assert pinned.replicas[0].assigned == 1  # everything given: no /v1/models call
    pinned.close()


def test_server_without_models_endpoint(fake_servers, caplog):
    fake = fake_servers()
    fake.models_status = 404
    request = GenerationRequest([{"role": "user", "content": "q"}], max_tokens=4)
    with caplog.at_level(logging.WARNING, logger="reasonrank_plugins.backends.openai"):
        named = OpenAIBackend("fake-ranker", base_url=fake.url)
        asyncio.run(named.generate(request))  # the window still goes, with the union of field names
    assert named.server == "auto" and named.context_length is None
    assert sampling_fields(fake.bodies[0]) == GREEDY_BODIES["auto"]
    assert any("/v1/models failed" in m for m in caplog.messages)
    with pytest.raises(openai.NotFoundError):  # the model name can come from nowhere else
        asyncio.run(OpenAIBackend(base_url=fake.url).generate(request))
    named.close()


def test_capacity_is_concurrency_times_replicas():
    urls = ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"]
    assert OpenAIBackend("m", base_url=urls).capacity == 128  # 64 per replica by default
    assert OpenAIBackend("m", base_url=urls[0], max_concurrency=8).capacity == 8


def test_count_tokens_counts_the_rendered_prompt(qwen_tokenizer_dir):
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", tokenizer=str(qwen_tokenizer_dir))
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    ids = backend.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    assert backend.count_tokens(GenerationRequest(messages, 8)) == len(ids)
    prefix = backend.tokenizer.encode("<answer>", add_special_tokens=False)
    assert backend.count_tokens(GenerationRequest(messages, 8, prefix="<answer>")) == len(ids) + len(prefix)
    untokenized = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")
    assert untokenized.count_tokens(GenerationRequest(messages, 8)) is None


# -- llama-cpp-python's real server on the demo model ---------------------------------------------
class LlamaServer:
    """``python -m llama_cpp.server`` on the demo GGUF at a fixed port on 127.0.0.1."""

    def __init__(self, model: Path, log: Path) -> None:
        self.model, self.log = model, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> LlamaServer:
        args = ["--model", str(self.model), "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--n_ctx", "4096", "--n_threads", "2"]
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", *args], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"llama_cpp.server exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"llama_cpp.server not up after {timeout}s")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def dl19_window(depth: int = 4, qid_index: int = 0) -> tuple[str, list[str]]:
    """A DL19 query and the text of its BM25 top-``depth`` passages."""
    root = DATA / "dl19"
    query = json.loads((root / "queries.jsonl").read_text().splitlines()[qid_index])
    run = [line.split() for line in (root / "run.bm25.trec").read_text().splitlines()]
    docids = [row[2] for row in run if row[0] == query["_id"]][:depth]
    texts = {}
    with (root / "corpus.jsonl").open() as f:
        for line in f:
            record = json.loads(line)
            if record["_id"] in docids:
                texts[record["_id"]] = record["text"]
    return query["text"], [texts[d] for d in docids]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    from reasonrank_plugins.demo_model import SMALL_MODEL, model_path

    server = LlamaServer(model_path(SMALL_MODEL), tmp_path_factory.mktemp("llama-server") / "server.log")
    yield server.start()
    server.stop()


def real_ranker(urls, tokenizer: Path, reasoning_budget: int = 96, **options) -> ReasonRanker:
    return ReasonRanker(
        base_url=urls,
        tokenizer=str(tokenizer),
        max_passage_tokens=40,
        reasoning_budget=reasoning_budget,
        timeout=600,
        **options,
    )


def assert_complete(result, n: int) -> None:
    """Every passage ranked, the one window generated for real."""
    assert sorted(result.order) == list(range(n))
    (window,) = result.windows
    assert window.output and window.prompt_tokens > 0 and window.completion_tokens > 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_real_server_end_to_end_window(llama_server, qwen_tokenizer_dir):
    query, passages = dl19_window(3)
    with real_ranker(llama_server.url, qwen_tokenizer_dir, reasoning_budget=128) as ranker:
        result = ranker.rerank(query, passages)
        assert ranker.backend.model_name.endswith(".gguf")  # the id the server reports
    assert_complete(result, 3)
    (window,) = result.windows
    assert str(window.status) in ("ok", "repaired"), window.output
    assert window.indices == [0, 1, 2] and "[" in window.answer


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_real_server_greedy_matches_the_in_process_llamacpp_backend(llama_server, qwen_tokenizer_dir):
    """Same GGUF, same window, same budget: the server's output is the in-process one, token for token.
    Sent only the OpenAI-standard fields, llama-cpp-python applies its ``repeat_penalty`` 1.1 to the
    ranking list's repeated ``[``, ``]`` and ``>``, and the output changes."""
    from reasonrank_plugins.backends.llamacpp import LlamaCppBackend
    from reasonrank_plugins.prompt import build_messages

    local = LlamaCppBackend(str(llama_server.model), n_ctx=4096)
    remote = OpenAIBackend(base_url=llama_server.url, tokenizer=str(qwen_tokenizer_dir))
    unpinned = OpenAIBackend(base_url=llama_server.url, tokenizer=str(qwen_tokenizer_dir), server="openai")
    try:
        query, passages = dl19_window(10)
        messages = build_messages(query, passages, max_passage_tokens=40, truncate=local.truncate)
        request = GenerationRequest(messages, max_tokens=96)
        in_process = asyncio.run(local.generate(request))
        served, standard_only = (asyncio.run(b.generate(request)) for b in (remote, unpinned))
    finally:
        for backend in (remote, unpinned, local):
            backend.close()
    assert remote.server == "llamacpp"  # read from /v1/models: owned_by "me"
    assert in_process.text.count(">") >= 5  # a ranking list, with its repeated tokens
    assert served.completion_tokens == in_process.completion_tokens
    assert served.text == in_process.text
    assert standard_only.text != in_process.text  # the server's defaults are what the pins undo


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_real_server_forced_answer(llama_server, qwen_tokenizer_dir):
    # 20 passages: the greedy demo model writes a bare id list without tags there, so the engine
    # forces the answer (the first call gets at least reasoning + 100 tokens, as in the reference)
    query, passages = dl19_window(20)
    with real_ranker(llama_server.url, qwen_tokenizer_dir, reasoning_budget=1) as ranker:
        result = ranker.rerank(query, passages)
    (window,) = result.windows
    assert window.forced and result.forced == 1 and window.error is None
    assert "</think>\n<answer>" in window.output  # the continuation of the same assistant turn
    assert_complete(result, 20)
    assert window.completion_tokens > 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_real_server_killed_and_restarted_mid_run(llama_server, qwen_tokenizer_dir):
    items = [dl19_window(3, qid_index=k) for k in range(3)]
    named = {"model": str(llama_server.model), "server": "llamacpp"}  # no /v1/models call counts as served
    # max_retries=0: the openai client's own retries (0.5-8 s backoff) would otherwise hide a quick
    # restart from the pool, and the crash would show up as no failure at all (CI, 2026-12-08)
    options = dict(probe_interval=1.0, max_retries=0, **named)
    with real_ranker(llama_server.url, qwen_tokenizer_dir, 48, **options) as ranker:
        (replica,) = ranker.backend.replicas

        def crash_and_restart() -> None:
            wait_until(lambda: replica.served >= 1, 600, "the first window")  # others are in flight
            llama_server.kill()
            llama_server.start()

        restarter = threading.Thread(target=crash_and_restart)
        restarter.start()
        results = ranker.rerank_many(items)
        restarter.join()
    for result in results:
        assert_complete(result, 3)
    requests = sum(1 + w.forced for r in results for w in r.windows)  # main calls and forced answers
    assert replica.failures >= 1 and replica.healthy  # windows were hit by the crash ...
    assert replica.served == requests < replica.assigned  # ... and sent again after the restart


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_real_servers_one_killed_mid_run(llama_server, qwen_tokenizer_dir, tmp_path):
    from reasonrank_plugins.demo_model import SMALL_MODEL, model_path

    second = LlamaServer(model_path(SMALL_MODEL), tmp_path / "second.log").start()
    items = [dl19_window(3, qid_index=k) for k in range(4)]
    try:
        urls = [llama_server.url, second.url]
        named = {"model": str(llama_server.model), "server": "llamacpp"}
        with real_ranker(urls, qwen_tokenizer_dir, 48, **named) as ranker:
            first, dying = ranker.backend.replicas

            def crash() -> None:  # while the second server works on its windows
                wait_until(lambda: dying.outstanding >= 1, 600, "a window on the second server")
                time.sleep(2)
                second.kill()

            killer = threading.Thread(target=crash)
            killer.start()
            results = ranker.rerank_many(items)
            killer.join()
    finally:
        second.stop()
    for result in results:
        assert_complete(result, 3)
    requests = sum(1 + w.forced for r in results for w in r.windows)  # main calls and forced answers
    assert not dying.healthy and dying.failures >= 1
    assert first.served + dying.served == requests < first.assigned + dying.assigned  # some were redone
