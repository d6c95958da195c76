"""Run the app with uvicorn: refuse public binds without a token, drain on SIGTERM/SIGINT."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

from ..ranker import ReasonRanker
from .app import ServerLimits, ServerState, create_app

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Without a token the server may only listen on the loopback interface."""
    if not token and not is_loopback(host):
        raise ValueError(
            f"refusing to bind {host!r} without a token: set --token or REASONRANK_TOKEN, or bind 127.0.0.1"
        )


def serve(
    ranker: ReasonRanker,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    limits: ServerLimits | None = None,
    shutdown_timeout: float | None = 300.0,
    log_level: str = "info",
    allow_strategy_override: bool = True,
    model_names: Sequence[str] = (),
) -> None:
    """Serve ``ranker`` until SIGINT/SIGTERM, then refuse new requests, finish the in-flight ones
    (up to ``shutdown_timeout`` seconds) and close the ranker. ``model_names`` are further names a
    request's ``model`` may give (see :func:`~reasonrank_plugins.server.app.create_app`)."""
    import uvicorn

    check_bind(host, token)
    app = create_app(
        ranker, token=token, limits=limits, close_ranker=True, allow_strategy_override=allow_strategy_override,
        model_names=model_names,
    )
    state: ServerState = app.state.server

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            if not state.draining:
                logger.warning("shutting down: %d request(s) in flight will finish", state.queued)
            state.draining = True
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=shutdown_timeout
    )
    DrainingServer(config).run()
