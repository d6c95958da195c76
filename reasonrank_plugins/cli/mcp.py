"""``reasonrank mcp``: the ``rerank`` tool as a Model Context Protocol server over stdio."""

from __future__ import annotations

import typer

from . import app
from ..options import RankerOptions
from .options import ranker_options


@app.command("mcp")
@ranker_options()
def mcp_command(*, options: RankerOptions) -> None:
    """Serve one MCP tool, rerank(query, documents, top_n) -> ranked indices, scores and reasoning,
    over stdio (for agents: add `reasonrank mcp [options]` as a stdio MCP server)."""
    from ..server.mcp_tool import serve_stdio

    try:
        ranker = options.build()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    serve_stdio(ranker)
