"""Request and response bodies of ``/v1/rerank``: the Cohere/Jina rerank shape plus an optional
``strategy`` in the request, ``reasoning`` per result and ``usage`` with tokens, seconds and the
windows' statuses (fields clients do not know are ignored by them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DocumentObject(BaseModel):
    """A document given as an object: ``text`` is ranked, other fields come back untouched."""

    model_config = ConfigDict(extra="allow")
    text: str
    title: str | None = None


class RerankRequest(BaseModel):
    """Fields other clients send (``rank_fields``, ``max_tokens_per_doc``, ...) are ignored."""

    model: str | None = Field(None, description="Accepted and echoed; the server ranks with its own model.")
    query: str = Field(..., min_length=1)
    documents: list[str | DocumentObject] = Field(..., min_length=1)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False
    strategy: str | None = Field(
        None, description="Window strategy for this request ('sliding', 'tdpart'); default: the server's."
    )


class ResultItem(BaseModel):
    index: int
    relevance_score: float
    document: dict[str, Any] | None = None
    reasoning: str | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    windows: int
    forced: int  # windows whose answer had to be forced
    seconds: float
    strategy: str
    depth: int  # dependent rounds of windows
    statuses: dict[str, int]  # windows per status: ok, repaired, failed, error, timeout
    timed_out: bool  # the server's deadline passed before every window finished


class RerankResponse(BaseModel):
    id: str
    model: str
    results: list[ResultItem]
    usage: Usage


class ErrorBody(BaseModel):
    type: str
    message: str
