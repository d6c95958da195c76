"""Cohere's rerank (``/v1/rerank``, ``/v2/rerank``): documents as strings or objects ranked on
their ``rank_fields``, ``max_tokens_per_doc``, the requested ``model`` and ``meta.billed_units``."""

from __future__ import annotations

import math
from collections.abc import Sequence

from starlette.requests import Request

from ..parse import ParseStatus
from ..types import Passage, RerankResult
from .schemas import (
    ApiVersion, BilledUnits, DocumentObject, Meta, RerankRequest, RerankResponse, ResultItem, Usage,
)
from .state import ApiError, ServerState, check_documents, read_request

#: Cohere bills one search unit per query and 100 documents.
DOCUMENTS_PER_UNIT = 100


async def cohere_rerank(state: ServerState, request: Request, version: str) -> RerankResponse:
    req = await read_request(request, RerankRequest, state.limits)
    check_documents(len(req.documents), state.limits)
    if req.model is not None and req.model not in state.models:
        raise ApiError(400, "unknown_model", f"this server serves {state.models}, not {req.model!r}")
    own = state.ranker.config.strategy
    if req.strategy not in (None, own) and not state.allow_strategy_override:
        raise ApiError(
            400, "strategy_override_forbidden",
            f"this server ranks with strategy {own!r} and does not take another one; leave 'strategy' out",
        )
    cut = None
    if req.max_tokens_per_doc is not None:
        cut = min(req.max_tokens_per_doc, state.ranker.config.max_passage_tokens)
    passages = [to_passage(doc, req.rank_fields, n) for n, doc in enumerate(req.documents)]
    result = await ranked(
        state, req.query, passages, top_k=req.top_n, strategy=req.strategy, max_passage_tokens=cut
    )
    rid = getattr(request.state, "request_id", None) or ""
    return response(rid, req.model or state.ranker.model, version, req, result)


def to_passage(doc: str | DocumentObject, rank_fields: Sequence[str] | None, n: int) -> Passage:
    """A document as the model sees it: a string is the text; an object's ``rank_fields`` (default
    ``text``, with ``title`` when present) are ranked, ``title`` as the prompt's title and the
    others as the text (``name: value`` lines when there are several)."""
    if isinstance(doc, str):
        return Passage(doc)
    fields = doc.model_dump(exclude_none=True)
    if rank_fields:
        names = list(rank_fields)
    else:
        names = ["title", "text"] if "title" in fields else ["text"]
    missing = [name for name in names if name not in fields]
    if missing:
        hint = "" if rank_fields else "; name the fields to rank with rank_fields"
        raise ApiError(400, "invalid_request", f"documents[{n}] has no field {missing[0]!r}{hint}")
    wrong = [name for name in names if not isinstance(fields[name], str)]
    if wrong:
        raise ApiError(400, "invalid_request", f"documents[{n}].{wrong[0]} must be a string")
    body = [name for name in names if name != "title"]
    text = fields[body[0]] if len(body) == 1 else "\n".join(f"{name}: {fields[name]}" for name in body)
    return Passage(text, fields.get("title") if "title" in names else None)


async def ranked(state: ServerState, query: str, passages: list[Passage], **call: object) -> RerankResult:
    """The ranker's result; bad input is a 400 saying what was wrong."""
    try:
        result = await state.ranker.arerank(query, passages, **call)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from exc
    state.metrics.observe(result)
    return result


def response(rid: str, model: str, version: str, req: RerankRequest, result: RerankResult) -> RerankResponse:
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
        cached=result.cached,
    )
    units = math.ceil(len(req.documents) / DOCUMENTS_PER_UNIT)
    meta = Meta(api_version=ApiVersion(version=version), billed_units=BilledUnits(search_units=units))
    return RerankResponse(id=rid, model=model, results=results, meta=meta, usage=usage)
