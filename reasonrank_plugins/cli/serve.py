"""``reasonrank serve``: the ``/v1/rerank`` HTTP service."""

from __future__ import annotations

import typer

from . import app
from ..options import RankerOptions
from .options import ranker_options


@app.command()
@ranker_options(cache_size=1024)
def serve(
    host: str = typer.Option("127.0.0.1", help="Other than loopback only with a token."),
    port: int = typer.Option(8000),
    token: str | None = typer.Option(
        None, envvar="REASONRANK_TOKEN", help="Bearer token clients must send (env REASONRANK_TOKEN)."
    ),
    max_documents: int = typer.Option(1000, help="Documents per request (413 beyond)."),
    max_request_bytes: int = typer.Option(4 * 1024 * 1024, help="Request body bytes (413 beyond)."),
    max_queued: int = typer.Option(64, help="Requests in progress at once (429 beyond)."),
    shutdown_timeout: float = typer.Option(300.0, help="Seconds to let in-flight requests finish."),
    allow_strategy_override: bool = typer.Option(
        True, help="Let a request choose its own strategy (else a request naming another one gets 400)."
    ),
    served_model_name: list[str] = typer.Option(
        [], help="Another name a request's 'model' may give, e.g. rerank-v3.5 for clients that require "
        "one (repeatable; the model's own name and --model are always served).",
    ),
    *,
    options: RankerOptions,
) -> None:
    """Serve POST /v1/rerank and /v2/rerank (Cohere's rerank API + reasoning), POST /rerank (Text
    Embeddings Inference's), GET /healthz and GET /metrics; the result cache is on (--cache-size)."""
    from ..server.app import ServerLimits
    from ..server.run import check_bind
    from ..server.run import serve as run_server

    try:
        check_bind(host, token)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--host") from exc
    try:
        ranker = options.build()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    limits = ServerLimits(max_documents, max_request_bytes, max_queued)
    typer.echo(f"serving {ranker.model} ({ranker.backend.name}) on http://{host}:{port}/v1/rerank", err=True)
    run_server(
        ranker, host=host, port=port, token=token, limits=limits, shutdown_timeout=shutdown_timeout,
        allow_strategy_override=allow_strategy_override, model_names=served_model_name,
    )
