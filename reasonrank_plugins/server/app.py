"""The FastAPI app: Cohere's ``POST /v1/rerank`` and ``/v2/rerank``, Text Embeddings Inference's
``POST /rerank``, ``/healthz`` and ``/metrics``. All requests share one ``ReasonRanker``, so windows
of concurrent requests are batched by its engine (and answered from its result cache, when on)."""

from __future__ import annotations

import logging
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException

from .. import __version__
from .cohere import cohere_rerank
from .schemas import ErrorBody, Health, RerankRequest, RerankResponse, TEIRank, TEIRerankRequest
from .state import ApiError, ServerLimits, ServerState
from .tei import tei_rerank
from ..ranker import ReasonRanker

logger = logging.getLogger(__name__)
T = TypeVar("T")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def error_response(
    status: int, type: str, message: str, request_id: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(type=type, message=message, request_id=request_id)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in [
        (400, "Bad input: an unknown model, a strategy the server refuses, a document without the ranked fields."),
        (401, "Missing or wrong token (a token is configured)."),
        (413, "Too many documents, or a body over the limit."),
        (422, "The body is not a valid request."),
        (429, "Too many requests queued; retry after the Retry-After header's seconds."),
        (500, "An internal error; its details are in the server's log under the request id."),
        (503, "The server is shutting down."),
    ]
}


def create_app(
    ranker: ReasonRanker,
    *,
    token: str | None = None,
    limits: ServerLimits | None = None,
    close_ranker: bool = False,
    allow_strategy_override: bool = True,
    model_names: Sequence[str] = (),
) -> FastAPI:
    """The rerank app over ``ranker``. With ``token`` every endpoint but ``/healthz`` needs an
    ``Authorization`` header of ``Bearer <token>`` or the bare ``<token>`` (as LlamaIndex's TEI
    client sends it). ``close_ranker`` closes the ranker at shutdown. A request may name its own
    ``strategy`` unless ``allow_strategy_override`` is false (then it gets a 400). The ``model`` a
    Cohere request names must be one the server serves: the ranker's model name, the model it
    was started with (``--model``), or one of ``model_names`` (aliases such as ``rerank-v3.5``)."""
    state = ServerState(ranker, limits or ServerLimits(), allow_strategy_override, model_names)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        state.draining = True
        if close_ranker:
            ranker.close()

    app = FastAPI(title="reasonrank", version=__version__, lifespan=lifespan)
    app.description = "Reasoning listwise reranking (ReasonRank) in Cohere's and TEI's rerank shapes."
    app.state.server = state
    header = APIKeyHeader(
        name="Authorization", auto_error=False, description="'Bearer <token>' or '<token>', when one is set."
    )

    def authorize(given: str | None = Depends(header)) -> None:
        if token is None:
            return
        value = (given or "").strip()
        if value[:7].lower() == "bearer ":
            value = value[7:].strip()
        if not secrets.compare_digest(value.encode(), token.encode()):
            raise ApiError(401, "unauthorized", "missing or wrong token", {"WWW-Authenticate": "Bearer"})

    @app.middleware("http")
    async def _request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Every response carries ``x-request-id`` (the client's, when it sent a plain one). An
        unhandled exception is logged with it and answered with a generic 500."""
        given = request.headers.get("x-request-id", "")
        rid = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request.state.request_id = rid
        try:
            response = await call_next(request)
        except Exception:
            logger.exception("request %s (%s %s) failed", rid, request.method, request.url.path)
            response = error_response(500, "internal_error", "internal server error", rid)
        response.headers["x-request-id"] = rid
        return response

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status in (413, 429, 503):
            state.metrics.rejected.labels(exc.type).inc()
        return error_response(exc.status, exc.type, exc.message, request_id(request), exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, "http_error", str(exc.detail), request_id(request), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", str(exc.errors()), request_id(request))

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health, "description": "Draining."}})
    async def healthz() -> JSONResponse:
        """Liveness and what is served; 503 while the server drains."""
        body = Health(
            status="draining" if state.draining else "ok",
            model=ranker.model,
            models=state.models,
            backend=ranker.backend.name,
            strategy=ranker.config.strategy,
            queued=state.queued,
            max_queued=state.limits.max_queued,
        )
        return JSONResponse(body.model_dump(), status_code=503 if state.draining else 200)

    @app.get(
        "/metrics",
        dependencies=[Depends(authorize)],
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text."},
            401: ERRORS[401],
        },
    )
    async def metrics() -> Response:
        """Prometheus metrics of this app."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def admitted(handle: Callable[[], Awaitable[T]]) -> T:
        """Run one rerank request under the queue limit, counting it in the metrics."""
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
            response = await handle()
            status = 200
            return response
        except ApiError as exc:
            status = exc.status
            raise
        finally:
            state.queued -= admitted
            state.metrics.requests.labels(str(status)).inc()
            state.metrics.latency.observe(time.perf_counter() - began)

    route = {"dependencies": [Depends(authorize)], "response_model_exclude_none": True, "responses": ERRORS}

    def cohere_route(version: str) -> Callable[[Request], Awaitable[RerankResponse]]:
        async def rerank(request: Request) -> RerankResponse:
            return await admitted(lambda: cohere_rerank(state, request, version))

        rerank.__doc__ = f"Cohere's rerank (client API v{version}), with reasoning per result and usage."
        return rerank

    for version in ("1", "2"):
        app.post(
            f"/v{version}/rerank", response_model=RerankResponse, openapi_extra=request_body(RerankRequest),
            name=f"rerank_v{version}", **route,
        )(cohere_route(version))

    @app.post("/rerank", response_model=list[TEIRank], openapi_extra=request_body(TEIRerankRequest), **route)
    async def rerank_tei(request: Request) -> list[TEIRank]:
        """Text Embeddings Inference's rerank: one entry per text, highest score first."""
        return await admitted(lambda: tei_rerank(state, request))

    def openapi() -> dict[str, Any]:
        """The generated schema plus the request bodies, which the handlers read themselves
        (to enforce the body limit while reading)."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            _, defs = models_json_schema(
                [(RerankRequest, "validation"), (TEIRerankRequest, "validation")],
                ref_template="#/components/schemas/{model}",
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


__all__ = ["ApiError", "ServerLimits", "ServerState", "create_app"]
