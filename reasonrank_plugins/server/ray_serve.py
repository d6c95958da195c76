"""The rerank app as a Ray Serve deployment: each replica builds its own ranker (one GPU, or one
``vllm serve`` URL through ``base_url``) and serves the same app as ``reasonrank serve``. Ray Serve
spreads requests over the replicas, restarts failed ones and scales them (``autoscaling_config``).

``serve run reasonrank_plugins.server.ray_serve:app_builder model=... backend=...`` runs it with
arguments; ``serve run examples/ray_serve.yaml`` with a config file. ``ray[serve]`` is imported here."""

from __future__ import annotations

import os
from typing import Any

from ..options import OPTION_NAMES, RankerOptions
from .state import ServerLimits

#: Arguments of ``app_builder`` that are not ranker options, with their defaults.
SERVER_ARGS: dict[str, Any] = {
    "token": None, "served_model_name": [], "allow_strategy_override": True,
    "max_documents": 1000, "max_request_bytes": 4 * 1024 * 1024, "max_queued": 64,
    "num_replicas": 1, "autoscaling_config": None, "ray_actor_options": None,
}


class Replica:
    """One replica: its ranker and the app over it (every response says which replica answered)."""

    def __init__(
        self, options: RankerOptions, token: str | None, limits: ServerLimits, model_names: list[str],
        allow_strategy_override: bool,
    ) -> None:
        from .app import create_app

        self.name = f"{os.uname().nodename}:{os.getpid()}"
        self.ranker = options.build()
        self.asgi = create_app(
            self.ranker, token=token, limits=limits, close_ranker=True, model_names=model_names,
            allow_strategy_override=allow_strategy_override,
        )

        @self.asgi.middleware("http")
        async def _replica(request, call_next):  # type: ignore[no-untyped-def]
            response = await call_next(request)
            response.headers["x-reasonrank-replica"] = self.name
            return response

    def __serve_build_asgi_app__(self) -> Any:
        return self.asgi


def deployment(**deployment_options: Any) -> Any:
    """The Ray Serve deployment of :class:`Replica`; ``deployment_options`` (``num_replicas``,
    ``autoscaling_config``, ``ray_actor_options`` such as ``{"num_gpus": 1}``, ...) go to
    ``serve.deployment``."""
    try:
        from ray import serve
    except ImportError as exc:
        raise ImportError("the Ray Serve deployment needs ray[serve]: pip install 'ray[serve]'") from exc
    return serve.deployment(name="reasonrank", **deployment_options)(serve.ingress()(Replica))


def app_builder(args: dict[str, Any]) -> Any:
    """A Serve application from ``args``: ranker options (``RankerOptions``' fields; others go to
    the backend, as with ``ReasonRanker``), the server's (``token``, ``served_model_name``,
    ``allow_strategy_override``, ``max_documents``, ``max_request_bytes``, ``max_queued``) and
    the deployment's (``num_replicas``, ``autoscaling_config``, ``ray_actor_options``)."""
    given = {"cache_size": 1024} | dict(args)  # the cache is on by default, as with reasonrank serve
    server = {name: given.pop(name, default) for name, default in SERVER_ARGS.items()}
    names = server["served_model_name"]
    names = [names] if isinstance(names, str) else list(names)
    options = RankerOptions.from_kwargs(**{k: _number(v) if k in OPTION_NAMES else v for k, v in given.items()})
    limits = ServerLimits(int(server["max_documents"]), int(server["max_request_bytes"]), int(server["max_queued"]))
    scaling: dict[str, Any] = {"ray_actor_options": server["ray_actor_options"] or {"num_cpus": 0}}
    if server["autoscaling_config"]:
        scaling["autoscaling_config"] = server["autoscaling_config"]
    else:
        scaling["num_replicas"] = int(server["num_replicas"])
    return deployment(**scaling).bind(
        options, server["token"], limits, names, bool(server["allow_strategy_override"])
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
