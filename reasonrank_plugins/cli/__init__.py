"""``reasonrank`` command line: each sub-command lives in its own module."""

from __future__ import annotations

import logging

import typer

app = typer.Typer(help="Reasoning listwise reranking (ReasonRank).", no_args_is_help=True)


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level.")) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(name)s: %(message)s"
    )


from . import rerank  # noqa: E402  (registers its commands on ``app``)
from . import eval as eval_commands  # noqa: E402,F401  (reasonrank eval, reasonrank compare)
from . import batch, demo, mcp, models, serve  # noqa: E402,F401

__all__ = ["app", "main", "rerank"]


def main() -> None:
    """The ``reasonrank`` entry point: a missing optional dependency is a one-line error naming the
    extra to install (the backends' and commands' ImportErrors say which), not a traceback."""
    try:
        app()
    except ImportError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(1) from exc
