"""What the handlers share: the limits, the state of one app, reading a request body."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from ..ranker import ReasonRanker
from .metrics import Metrics

M = TypeVar("M", bound=BaseModel)


@dataclass
class ServerLimits:
    max_documents: int = 1000  # per request (413 beyond)
    max_request_bytes: int = 4 * 1024 * 1024  # request body (413 beyond)
    max_queued: int = 64  # rerank requests admitted and not finished (429 beyond)


class ApiError(Exception):
    def __init__(self, status: int, type: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.headers = status, type, message, headers


class ServerState:
    """What the handlers share: the ranker, the limits, the model names a request may give,
    whether a request may choose its strategy, the queue count and the draining flag."""

    def __init__(
        self,
        ranker: ReasonRanker,
        limits: ServerLimits,
        allow_strategy_override: bool = True,
        model_names: Sequence[str] = (),
    ) -> None:
        self.ranker = ranker
        self.limits = limits
        self.allow_strategy_override = allow_strategy_override
        started = [ranker.options.model] if isinstance(ranker.options.backend, str) else []
        self.models = list(dict.fromkeys([ranker.model, *started, *model_names]))
        self.queued = 0
        self.draining = False
        self.metrics = Metrics(ranker.engine, lambda: self.queued)


async def read_request(request: Request, model: type[M], limits: ServerLimits) -> M:
    """The body read under ``max_request_bytes`` and validated as ``model`` (422 when it is not)."""
    body = await _read_body(request, limits.max_request_bytes)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc


def check_documents(count: int, limits: ServerLimits) -> None:
    if count > limits.max_documents:
        raise ApiError(413, "too_many_documents", f"{count} documents (limit {limits.max_documents})")


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(413, "request_too_large", f"request body is {length} bytes (limit {limit})")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "request_too_large", f"request body is over {limit} bytes")
    return bytes(body)
