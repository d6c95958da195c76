"""The rerank app as a Ray Serve application: each replica builds its own ranker (one GPU, or one
``vllm serve`` URL through ``base_url``) and runs the same app as ``reasonrank serve``; a small
ingress deployment takes the HTTP requests and forwards each one (method, path, query, headers,
body) through a deployment handle to a replica. Ray Serve spreads requests over the replicas,
restarts failed ones and scales them (``autoscaling_config``).

A replica that dies with requests in flight (killed, out of memory, its node lost) fails them at
the handle; the ingress sends each again to another replica, up to ``max_retries`` times, so no
admitted request is lost. Retrying is safe because a rerank is greedy and pure: the same request
gives the same answer on any replica and changes nothing.

``serve run reasonrank_plugins.server.ray_serve:app_builder model=... backend=...`` runs it with
arguments; ``serve run deploy/ray_serve.yaml`` with a config file. ``ray[serve]`` is imported here."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from starlette.requests import Request
from starlette.responses import Response

from ..options import OPTION_NAMES, RankerOptions
from .app import create_app, error_response
from .state import ServerLimits

try:
    from ray import serve
    from ray.exceptions import RayActorError
    from ray.serve.exceptions import ReplicaUnavailableError
except ImportError as exc:
    raise ImportError("the Ray Serve deployment needs ray[serve]: pip install 'reasonrank-plugins[ray-serve]'") from exc

logger = logging.getLogger(__name__)

#: Arguments of ``app_builder`` that are not ranker options, with their defaults.
SERVER_ARGS: dict[str, Any] = {
    "token": None, "served_model_name": [], "allow_strategy_override": True,
    "max_documents": 1000, "max_request_bytes": 4 * 1024 * 1024, "max_queued": 64,
    "num_replicas": 1, "autoscaling_config": None, "ray_actor_options": None, "max_retries": 3,
}
#: What a dead or unreachable replica raises at the handle (``RayActorError``: ``ActorDiedError`` and
#: ``ActorUnavailableError``). Serve itself retries only a request that no replica has accepted yet.
REPLICA_LOST = (RayActorError, ReplicaUnavailableError)
#: Requests one ingress replica forwards at once (each only waits on its replica).
INGRESS_ONGOING = 10_000

Headers = list[tuple[bytes, bytes]]


@dataclass
class Forwarded:
    """One HTTP request as the ingress got it."""

    method: str
    raw_path: bytes  # as in the ASGI scope: percent-encoded, the route prefix (``root_path``) included
    root_path: str
    query: bytes
    headers: Headers
    body: bytes


class Replica:
    """One replica: its ranker and the app over it, run in process for each forwarded request
    (every response says which replica answered, in ``x-reasonrank-replica``)."""

    def __init__(
        self, options: RankerOptions, token: str | None, limits: ServerLimits, model_names: list[str],
        allow_strategy_override: bool,
    ) -> None:
        self.name = f"{os.uname().nodename}:{os.getpid()}"
        self.ranker = options.build()
        self.asgi = create_app(
            self.ranker, token=token, limits=limits, model_names=model_names,
            allow_strategy_override=allow_strategy_override,
        )
        self._clients: dict[str, httpx.AsyncClient] = {}  # one per route prefix

        @self.asgi.middleware("http")
        async def _replica(request, call_next):  # type: ignore[no-untyped-def]
            response = await call_next(request)
            response.headers["x-reasonrank-replica"] = self.name
            return response

    async def handle(self, request: Forwarded) -> tuple[int, Headers, bytes]:
        """The app's answer to ``request``: status, headers and body."""
        client = self._clients.get(request.root_path)
        if client is None:
            transport = httpx.ASGITransport(app=self.asgi, root_path=request.root_path)
            client = self._clients[request.root_path] = httpx.AsyncClient(transport=transport, timeout=None)
        url = httpx.URL("http://replica", raw_path=request.raw_path + b"?" * bool(request.query) + request.query)
        sent = client.build_request(request.method, url, headers=request.headers, content=request.body)
        response = await client.send(sent, stream=True)
        try:
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        return response.status_code, response.headers.raw, body

    def __del__(self) -> None:  # Serve calls it when it stops the replica
        self.ranker.close()


class Ingress:
    """The HTTP entry: forwards each request to a :class:`Replica` and sends it again to another
    one, up to ``max_retries`` times, when its replica dies (reranks are greedy and pure, so a
    repeated request is safe and gives the same answer); then a 503. Each response says in
    ``x-reasonrank-attempts`` how many replicas it took."""

    def __init__(self, replica: Any, max_retries: int) -> None:
        self.replica = replica  # the Replica deployment's handle
        self.max_retries = max_retries

    async def __call__(self, request: Request) -> Response:
        scope = request.scope
        forwarded = Forwarded(
            request.method, scope.get("raw_path") or quote(scope["path"]).encode(), scope.get("root_path", ""),
            scope.get("query_string", b""), list(request.headers.raw), await request.body(),
        )
        for attempt in range(self.max_retries + 1):
            try:
                status, headers, body = await self.replica.handle.remote(forwarded)
            except REPLICA_LOST as exc:
                logger.warning("%s %s: replica lost (%s), attempt %d of %d", request.method, scope["path"],
                               type(exc).__name__, attempt + 1, self.max_retries + 1)
                continue
            response = Response(body, status_code=status)
            response.raw_headers = [*headers, (b"x-reasonrank-attempts", str(attempt + 1).encode())]
            return response
        return error_response(503, "replica_unavailable", "no replica answered; retry later", None)


def deployments(
    replica_options: dict[str, Any], max_retries: int, *replica_args: Any
) -> Any:
    """The Serve application: :class:`Ingress` bound to the :class:`Replica` deployment built
    with ``replica_args``; ``replica_options`` (``num_replicas``, ``autoscaling_config``,
    ``ray_actor_options`` such as ``{"num_gpus": 1}``, ...) go to the replicas' ``serve.deployment``."""
    replica = serve.deployment(name="reasonrank", **replica_options)(Replica).bind(*replica_args)
    ingress = serve.deployment(
        name="ingress", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=INGRESS_ONGOING
    )(Ingress)
    return ingress.bind(replica, max_retries)


def app_builder(args: dict[str, Any]) -> Any:
    """A Serve application from ``args``: ranker options (``RankerOptions``' fields; others go to
    the backend, as with ``ReasonRanker``), the server's (``token``, ``served_model_name``,
    ``allow_strategy_override``, ``max_documents``, ``max_request_bytes``, ``max_queued``), the
    replicas' deployment options (``num_replicas``, ``autoscaling_config``, ``ray_actor_options``)
    and ``max_retries``, the times a request is sent again when its replica dies. Each replica
    takes up to ``max_queued`` requests at once (Serve queues the rest)."""
    given = {"cache_size": 1024} | dict(args)  # the cache is on by default, as with reasonrank serve
    server = {name: given.pop(name, default) for name, default in SERVER_ARGS.items()}
    names = server["served_model_name"]
    names = [names] if isinstance(names, str) else list(names)
    options = RankerOptions.from_kwargs(**{k: _number(v) if k in OPTION_NAMES else v for k, v in given.items()})
    limits = ServerLimits(int(server["max_documents"]), int(server["max_request_bytes"]), int(server["max_queued"]))
    scaling: dict[str, Any] = {
        "ray_actor_options": server["ray_actor_options"] or {"num_cpus": 0},
        "max_ongoing_requests": limits.max_queued,
    }
    if server["autoscaling_config"]:
        scaling["autoscaling_config"] = server["autoscaling_config"]
    else:
        scaling["num_replicas"] = int(server["num_replicas"])
    return deployments(
        scaling, int(server["max_retries"]), options, server["token"], limits, names,
        bool(server["allow_strategy_override"]),
    )


def _number(value: Any) -> Any:
    """``serve run`` passes ``key=value`` arguments as strings: numbers become numbers."""
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value
