"""``reasonrank serve``: Cohere's ``/v1/rerank`` and ``/v2/rerank`` and TEI's ``/rerank`` over one
shared ``ReasonRanker``; ``reasonrank mcp``: the same ranker as an MCP tool (``mcp_tool``).

Importing this package is cheap; FastAPI and uvicorn are imported by ``app`` and ``run``, the mcp
SDK by ``mcp_tool``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerLimits", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "ServerLimits"):
        from . import app

        return getattr(app, name)
    if name == "serve":
        from .run import serve

        return serve
    raise AttributeError(name)
