"""``reasonrank serve``: the ``/v1/rerank`` HTTP service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from . import app

if TYPE_CHECKING:
    from ..server.spec import RankerSpec


def ranker_spec(
    model: str,
    backend: str,
    base_url: list[str],
    window_size: int,
    step: int,
    max_passage_tokens: int,
    reasoning_budget: int,
    latency: float,
    max_batch: int | None,
) -> RankerSpec:
    """The spec the serve and batch commands build; ``latency`` and ``max_batch`` are the scripted
    backend's options."""
    from ..server.spec import RankerSpec

    options: dict[str, Any] = {}
    if base_url:
        options["base_url"] = base_url[0] if len(base_url) == 1 else base_url
    if latency or max_batch is not None:
        if backend != "scripted":
            raise typer.BadParameter("--latency and --max-batch are options of --backend scripted")
        options |= {"latency": latency, "max_batch": max_batch}
    return RankerSpec(
        model,
        backend,
        window_size=window_size,
        step=step,
        max_passage_tokens=max_passage_tokens,
        reasoning_budget=reasoning_budget,
        backend_options=options,
    )


BASE_URL_HELP = "OpenAI-compatible endpoint (openai backend); repeat it for several replicas."
BACKEND_HELP = (
    "auto, llamacpp, transformers, vllm, openai, or scripted "
    "(no model: --model overlap, the default, ranks by query-word overlap; identity; reverse)."
)
LATENCY_HELP = "scripted backend: seconds per window."
MAX_BATCH_HELP = "scripted backend: windows that run together."


@app.command()
def serve(
    model: str = typer.Option("demo", help="'demo', a local path or a hub id."),
    backend: str = typer.Option("auto", help=BACKEND_HELP),
    base_url: list[str] = typer.Option([], help=BASE_URL_HELP),
    host: str = typer.Option("127.0.0.1", help="Other than loopback only with a token."),
    port: int = typer.Option(8000),
    token: str | None = typer.Option(
        None, envvar="REASONRANK_TOKEN", help="Bearer token clients must send (env REASONRANK_TOKEN)."
    ),
    max_documents: int = typer.Option(1000, help="Documents per request (413 beyond)."),
    max_request_bytes: int = typer.Option(4 * 1024 * 1024, help="Request body bytes (413 beyond)."),
    max_queued: int = typer.Option(64, help="Requests in progress at once (429 beyond)."),
    shutdown_timeout: float = typer.Option(300.0, help="Seconds to let in-flight requests finish."),
    window_size: int = typer.Option(20, "--window-size", "--window"),
    step: int = typer.Option(10),
    max_passage_tokens: int = typer.Option(512),
    reasoning_budget: int = typer.Option(3072),
    latency: float = typer.Option(0.0, help=LATENCY_HELP),
    max_batch: int | None = typer.Option(None, help=MAX_BATCH_HELP),
) -> None:
    """Serve POST /v1/rerank (Cohere/Jina rerank API + reasoning), GET /healthz and GET /metrics."""
    from ..server.app import ServerLimits
    from ..server.run import check_bind
    from ..server.run import serve as run_server

    try:
        check_bind(host, token)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--host") from exc
    spec = ranker_spec(
        model, backend, base_url, window_size, step, max_passage_tokens, reasoning_budget, latency, max_batch
    )
    try:
        ranker = spec.build()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    limits = ServerLimits(max_documents, max_request_bytes, max_queued)
    typer.echo(f"serving {ranker.model} ({ranker.backend.name}) on http://{host}:{port}/v1/rerank", err=True)
    run_server(ranker, host=host, port=port, token=token, limits=limits, shutdown_timeout=shutdown_timeout)
