"""Text Embeddings Inference's ``POST /rerank``: ``{"query", "texts", ...}`` in, a bare list of
``{"index", "score", "text"?}`` out, one entry per text, highest score first."""

from __future__ import annotations

from starlette.requests import Request

from ..types import Passage
from .cohere import ranked
from .schemas import TEIRank, TEIRerankRequest
from .state import ServerState, check_documents, read_request


async def tei_rerank(state: ServerState, request: Request) -> list[TEIRank]:
    req = await read_request(request, TEIRerankRequest, state.limits)
    check_documents(len(req.texts), state.limits)
    result = await ranked(state, req.query, [Passage(text) for text in req.texts])
    return [
        TEIRank(index=hit.index, score=hit.score, text=req.texts[hit.index] if req.return_text else None)
        for hit in result.hits
    ]
