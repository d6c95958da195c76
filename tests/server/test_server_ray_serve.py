"""The Ray Serve deployment on this CPU machine: two replicas of the scripted backend behind the
ingress; requests are spread over both, and neither redeploying at one replica mid-load (Serve stops
the old replicas gracefully) nor killing one outright loses an admitted request."""

from __future__ import annotations

import concurrent.futures
import os
import socket
import time
from pathlib import Path

import httpx
import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

from reasonrank_plugins.server.ray_serve import app_builder  # noqa: E402

QUERY = "red fox"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_serve():
    if ray.is_initialized():  # another module's instance has other settings
        ray.shutdown()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    ray.shutdown()


def request(url: str, n: int) -> tuple[int, list[int], str, int]:
    docs = [f"doc {n} number {i}" + (" red fox" if i == n % 4 else "") for i in range(4)]
    r = httpx.post(f"{url}/v1/rerank", json={"query": QUERY, "documents": docs, "return_documents": True},
                   headers={"Authorization": "Bearer t0ken"}, timeout=60)
    assert r.status_code == 200, r.text
    got = [x["document"]["text"] for x in r.json()["results"]]
    assert sorted(got) == sorted(docs) and got[0] == docs[n % 4]  # its own documents, its own best
    replica, attempts = r.headers["x-reasonrank-replica"], int(r.headers["x-reasonrank-attempts"])
    return n, [x["index"] for x in r.json()["results"]], replica, attempts


def test_the_shipped_serve_config_builds_an_application():
    import yaml
    from ray.serve.schema import ServeDeploySchema

    text = (Path(__file__).parents[2] / "deploy" / "ray_serve.yaml").read_text()
    config = ServeDeploySchema.model_validate(yaml.safe_load(text))
    app = config.applications[0]
    assert app.import_path == "reasonrank_plugins.server.ray_serve:app_builder"
    ingress = app_builder(app.args)._bound_deployment
    assert ingress.name == "ingress" and ingress.init_args[1] == 3  # max_retries
    deployment = ingress.init_args[0]._bound_deployment
    assert deployment.name == "reasonrank" and deployment.ray_actor_options["num_gpus"] == 1
    assert deployment._deployment_config.autoscaling_config.max_replicas == 4  # passed through
    options = deployment.init_args[0]
    assert (options.model, options.backend, options.cache_size) == ("liuwenhan/reasonrank-7B", "vllm", 1024)
    assert deployment.init_args[3] == ["rerank-v3.5"]


ARGS = {"backend": "scripted", "model": "overlap", "window_size": "4", "step": "2", "latency": "0.2",
        "token": "t0ken", "num_replicas": 2, "cache_size": 0}


def deploy(url: str, args: dict) -> None:
    serve.run(app_builder(args), name="reasonrank", route_prefix="/", blocking=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)


@pytest.mark.slow
def test_two_replicas_share_the_load_and_a_redeploy_to_one_loses_no_request(ray_serve):
    deploy(ray_serve, ARGS)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda n: request(ray_serve, n), range(32)))
    assert len({replica for _, _, replica, _ in first}) == 2  # spread over both replicas

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        load = [pool.submit(request, ray_serve, n) for n in range(96)]
        time.sleep(1.0)
        serve.run(app_builder(ARGS | {"num_replicas": 1}), name="reasonrank", route_prefix="/", blocking=False)
        results = [f.result() for f in load]  # every one a 200 with its own documents
    assert len(results) == 96
    # Serve may roll the redeploy onto a new replica; the old ones stop gracefully (draining)
    assert len({replica for _, _, replica, _ in results}) >= 2
    deadline = time.monotonic() + 60
    def replicas() -> dict[str, int]:  # replicas by state
        return dict(serve.status().applications["reasonrank"].deployments["reasonrank"].replica_states)

    while replicas() != {"RUNNING": 1}:
        assert time.monotonic() < deadline, replicas()
        time.sleep(0.5)
    after = {request(ray_serve, n)[2] for n in range(8)}
    assert len(after) == 1  # one replica left


@pytest.mark.slow
def test_a_replica_killed_mid_load_loses_no_request(ray_serve):
    deploy(ray_serve, ARGS | {"latency": "1.0"})  # a second a request
    assert httpx.get(f"{ray_serve}/openapi.json").status_code == 200  # through the ingress
    assert httpx.post(f"{ray_serve}/v1/rerank", json={"query": QUERY, "documents": ["a"]}).status_code == 401
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "#reasonrank#" in a["name"]]
    assert len(names) == 2, names  # the two replicas of deployment "reasonrank"
    victim = ray.get_actor(names[0], namespace="serve")
    victim_name = ray.get(victim.__ray_call__.remote(lambda _: f"{os.uname().nodename}:{os.getpid()}"))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        load = [pool.submit(request, ray_serve, n) for n in range(64)]
        deadline = time.monotonic() + 30
        while ray.get(victim.get_num_ongoing_requests.remote()) < 2:  # until it holds requests
            assert time.monotonic() < deadline, "the victim got no requests"
            time.sleep(0.05)
        ray.kill(victim, no_restart=True)
        results = [f.result() for f in load]  # every one a 200 with its own documents
    assert len(results) == 64
    retried = [replica for _, _, replica, attempts in results if attempts > 1]
    assert len(retried) >= 2 and victim_name not in retried  # the victim's requests, answered by the other
