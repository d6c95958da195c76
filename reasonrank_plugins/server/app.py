"""The FastAPI app: ``POST /v1/rerank`` (also ``/v2/rerank`` for Cohere's v2 client), ``/healthz``,
``/metrics``. All requests share one ``ReasonRanker``, so windows of concurrent requests are batched
by its engine."""

from __future__ import annotations

import secrets
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from .. import __version__
from ..parse import ParseStatus
from ..ranker import ReasonRanker
from ..types import Passage, RerankResult
from .metrics import Metrics
from .schemas import ErrorBody, RerankRequest, RerankResponse, ResultItem, Usage


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
    """What the handlers share: the ranker, the limits, whether a request may choose its strategy,
    the queue count and the draining flag."""

    def __init__(
        self, ranker: ReasonRanker, limits: ServerLimits, allow_strategy_override: bool = True
    ) -> None:
        self.ranker = ranker
        self.limits = limits
        self.allow_strategy_override = allow_strategy_override
        self.queued = 0
        self.draining = False
        self.metrics = Metrics(ranker.engine, lambda: self.queued)


def error_response(
    status: int, type: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        ErrorBody(type=type, message=message).model_dump(), status_code=status, headers=headers
    )


def create_app(
    ranker: ReasonRanker,
    *,
    token: str | None = None,
    limits: ServerLimits | None = None,
    close_ranker: bool = False,
    allow_strategy_override: bool = True,
) -> FastAPI:
    """The rerank app over ``ranker``. With ``token`` every endpoint but ``/healthz`` needs
    ``Authorization: Bearer <token>``. ``close_ranker`` closes the ranker at shutdown. A request may
    name its own ``strategy`` unless ``allow_strategy_override`` is false (then it gets a 400)."""
    state = ServerState(ranker, limits or ServerLimits(), allow_strategy_override)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        state.draining = True
        if close_ranker:
            ranker.close()

    app = FastAPI(title="reasonrank", version=__version__, lifespan=lifespan)
    app.state.server = state
    bearer = HTTPBearer(auto_error=False)

    def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise ApiError(
                401, "unauthorized", "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
            )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        if exc.status in (413, 429, 503):
            state.metrics.rejected.labels(exc.type).inc()
        return error_response(exc.status, exc.type, exc.message, exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, "http_error", str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", str(exc.errors()))

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:  # the server logs the traceback
        return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        body = {
            "status": "draining" if state.draining else "ok",
            "model": ranker.model,
            "backend": ranker.backend.name,
            "strategy": ranker.config.strategy,
            "queued": state.queued,
            "max_queued": state.limits.max_queued,
        }
        return JSONResponse(body, status_code=503 if state.draining else 200)

    @app.get("/metrics", dependencies=[Depends(authorize)])
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    body_schema = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RerankRequest.model_json_schema()}},
        }
    }

    route = {"dependencies": [Depends(authorize)], "response_model_exclude_none": True}

    @app.post("/v1/rerank", openapi_extra=body_schema, **route)
    @app.post("/v2/rerank", include_in_schema=False, **route)
    async def rerank(request: Request) -> RerankResponse:
        began = time.perf_counter()
        status, admitted = 500, False
        try:
            if state.draining:
                raise ApiError(503, "shutting_down", "the server is shutting down")
            if state.queued >= state.limits.max_queued:
                message = f"{state.queued} requests queued (limit {state.limits.max_queued})"
                raise ApiError(429, "too_many_requests", message, {"Retry-After": "1"})
            state.queued += 1
            admitted = True
            response = await _rerank(state, request)
            status = 200
            return response
        except ApiError as exc:
            status = exc.status
            raise
        finally:
            state.queued -= admitted
            state.metrics.requests.labels(str(status)).inc()
            state.metrics.latency.observe(time.perf_counter() - began)

    return app


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


async def _rerank(state: ServerState, request: Request) -> RerankResponse:
    limits = state.limits
    body = await _read_body(request, limits.max_request_bytes)
    try:
        req = RerankRequest.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc
    if len(req.documents) > limits.max_documents:
        raise ApiError(
            413, "too_many_documents", f"{len(req.documents)} documents (limit {limits.max_documents})"
        )
    own = state.ranker.config.strategy
    if req.strategy not in (None, own) and not state.allow_strategy_override:
        raise ApiError(
            400, "strategy_override_forbidden",
            f"this server ranks with strategy {own!r} and does not take another one; leave 'strategy' out",
        )
    passages = [Passage(d) if isinstance(d, str) else Passage(d.text, d.title or None) for d in req.documents]
    try:
        result = await state.ranker.arerank(req.query, passages, top_k=req.top_n, strategy=req.strategy)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from exc
    state.metrics.observe(result)
    return _response(state.ranker.model, req, result)


def _response(model: str, req: RerankRequest, result: RerankResult) -> RerankResponse:
    def document(index: int) -> dict | None:
        if not req.return_documents:
            return None
        doc = req.documents[index]
        return {"text": doc} if isinstance(doc, str) else doc.model_dump(exclude_none=True)

    results = [
        ResultItem(index=h.index, relevance_score=h.score, document=document(h.index), reasoning=h.reasoning)
        for h in result.hits
    ]
    usage = Usage(
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        total_tokens=result.prompt_tokens + result.completion_tokens,
        windows=len(result.windows),
        forced=result.forced,
        seconds=round(result.seconds, 4),
        strategy=result.strategy,
        depth=result.depth,
        statuses={str(status): result.statuses[str(status)] for status in ParseStatus},
        timed_out=result.timed_out,
    )
    return RerankResponse(id=str(uuid.uuid4()), model=model, results=results, usage=usage)


__all__ = ["ServerLimits", "ServerState", "create_app"]
