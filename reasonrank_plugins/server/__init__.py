"""``reasonrank serve``: a Cohere/Jina-compatible ``/v1/rerank`` service over one shared ``ReasonRanker``.

Importing this package is cheap; FastAPI and uvicorn are imported by ``app`` and ``run``.
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
