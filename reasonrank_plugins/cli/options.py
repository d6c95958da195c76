"""What the commands that build a ranker share: its options and the one function that turns them
into a :class:`~reasonrank_plugins.server.spec.RankerSpec`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from ..server.spec import RankerSpec

BASE_URL_HELP = "OpenAI-compatible endpoint (openai backend); repeat it for several replicas."
BACKEND_HELP = (
    "auto, llamacpp, transformers, vllm, openai, or scripted "
    "(no model: --model overlap, the default, ranks by query-word overlap; identity; reverse; fail)."
)
LATENCY_HELP = "scripted backend: seconds per window."
MAX_BATCH_HELP = "scripted backend: windows that run together."

STRATEGY = typer.Option(
    "sliding",
    help="Window strategy: sliding (the published checkpoints' setting) or tdpart (top-down "
    "partitioning: 3 dependent rounds for 100 candidates instead of 9).",
)
CUTOFF = typer.Option(10, help="tdpart: the pivot is the top window's CUTOFF-th result.")
DEPTH = typer.Option(None, help="Rerank only the first DEPTH candidates (the rest keep their order).")
TIMEOUT = typer.Option(
    None, help="Deadline in seconds per query: windows unfinished by then keep their order (status timeout)."
)


def ranker_spec(
    model: str,
    backend: str,
    base_url: list[str],
    window_size: int,
    step: int,
    max_passage_tokens: int,
    reasoning_budget: int,
    latency: float = 0.0,
    max_batch: int | None = None,
    *,
    strategy: str = "sliding",
    cutoff: int = 10,
    depth: int | None = None,
    timeout: float | None = None,
    options: dict[str, Any] | None = None,
) -> RankerSpec:
    """The spec every command builds its ranker from, its engine options checked before anything is
    loaded; ``latency`` and ``max_batch`` are the scripted backend's options, ``options`` any other
    backend options."""
    from ..engine import EngineConfig
    from ..server.spec import RankerSpec

    try:
        EngineConfig(window_size, step, max_passage_tokens, reasoning_budget,
                     strategy=strategy, cutoff=cutoff, depth=depth)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc

    backend_options: dict[str, Any] = dict(options or {})
    if base_url:
        backend_options["base_url"] = base_url[0] if len(base_url) == 1 else base_url
    if latency or max_batch is not None:
        if backend != "scripted":
            raise typer.BadParameter("--latency and --max-batch are options of --backend scripted")
        backend_options |= {"latency": latency, "max_batch": max_batch}
    return RankerSpec(
        model,
        backend,
        window_size=window_size,
        step=step,
        max_passage_tokens=max_passage_tokens,
        reasoning_budget=reasoning_budget,
        strategy=strategy,
        cutoff=cutoff,
        depth=depth,
        timeout=timeout,
        backend_options=backend_options,
    )
