"""Request and response bodies: Cohere's rerank shape (``/v1/rerank``, ``/v2/rerank``) plus an
optional ``strategy`` in the request, ``reasoning`` per result and ``usage`` with tokens, seconds
and the windows' statuses (fields clients do not know are ignored by them); Text Embeddings
Inference's shape (``/rerank``); the error body of every endpoint."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class DocumentObject(BaseModel):
    """A document given as an object: the ``rank_fields`` (default ``text``, and ``title`` when
    present) are ranked, every field comes back untouched."""

    model_config = ConfigDict(extra="allow")
    text: str | None = None
    title: str | None = None


class RerankRequest(BaseModel):
    """Cohere's rerank request (v1 and v2); ``max_chunks_per_doc`` and other fields are ignored."""

    model: str | None = Field(
        None, description="A model this server serves (see /healthz 'models'); echoed. Default: the server's."
    )
    query: str = Field(..., min_length=1)
    documents: list[str | DocumentObject] = Field(..., min_length=1)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False
    rank_fields: list[str] | None = Field(
        None,
        min_length=1,
        description="Fields of object documents to rank, in order; 'title' goes to the prompt's title. "
        "Default: 'text' (and 'title' when present).",
    )
    max_tokens_per_doc: int | None = Field(
        None, ge=1, description="Tokens kept of each document, capped by the server's max_passage_tokens."
    )
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
    forced: int = Field(description="Windows whose answer had to be forced.")
    seconds: float
    strategy: str
    depth: int = Field(description="Dependent rounds of windows.")
    statuses: dict[str, int] = Field(description="Windows per status: ok, repaired, failed, error, timeout.")
    timed_out: bool = Field(description="The server's deadline passed before every window finished.")
    cached: bool = Field(False, description="The result came from the server's result cache.")


class ApiVersion(BaseModel):
    version: str


class BilledUnits(BaseModel):
    search_units: int = Field(description="One per query and 100 documents, as Cohere bills.")


class Meta(BaseModel):
    api_version: ApiVersion
    billed_units: BilledUnits


class RerankResponse(BaseModel):
    id: str = Field(description="The request id (also the x-request-id header).")
    model: str = Field(description="The requested model, else the server's.")
    results: list[ResultItem]
    meta: Meta
    usage: Usage


class TEIRerankRequest(BaseModel):
    """Text Embeddings Inference's rerank request. Passages are always cut to the server's
    ``max_passage_tokens`` from the end (TEI's ``Right``); ``raw_scores`` is accepted and changes
    nothing (scores come from the rank)."""

    query: str = Field(..., min_length=1)
    texts: list[str] = Field(..., min_length=1)
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool | None = None
    truncation_direction: Literal["Right", "right"] = Field(
        "Right", description="Only 'Right' (keep each text's start): this server does not cut from the left."
    )


class TEIRank(BaseModel):
    index: int
    score: float
    text: str | None = None


class Health(BaseModel):
    status: Literal["ok", "draining"]
    model: str
    models: list[str] = Field(description="Names a request's 'model' may give.")
    backend: str
    strategy: str
    queued: int
    max_queued: int


class ErrorBody(BaseModel):
    type: str
    message: str
    request_id: str | None = Field(None, description="The request id (also the x-request-id header).")
