"""ReasonRank reasoning listwise reranking as a LangChain document compressor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables import RunnableLambda
from pydantic import (
    SerializerFunctionWrapHandler,
    model_serializer,
)

from reasonrank_plugins import Passage, RankedPassage
from reasonrank_plugins.adapter_fields import PydanticAdapter
from reasonrank_plugins.adapters import (
    SHARED_RANKER,
    annotate,
    arerank,
    check_documents,
    rerank,
    to_passage,
)

SCORE_KEY = "relevance_score"


class ReasonRankCompressor(BaseDocumentCompressor, PydanticAdapter):
    """Rerank documents with a reasoning listwise model (ReasonRank).

    ``ContextualCompressionRetriever(base_compressor=ReasonRankCompressor(top_n=5), base_retriever=r)``.
    Returns copies in rank order (``Document.id`` and metadata kept, the input untouched) with
    ``metadata["relevance_score"]``, ``["reasonrank_reasoning"]``, ``["reasonrank_status"]`` and
    ``["reasonrank_usage"]``; ``metadata[title_key]`` is the passage title in the prompt. The engine
    is built once; pass ``ranker=`` to share one ``ReasonRanker`` (the dump of such a compressor
    cannot be loaded back). ``api_key`` (for the ``openai`` backend; default: ``REASONRANK_API_KEY``
    or ``OPENAI_API_KEY``) is never dumped. ``close()`` (or ``with``) frees the engine it built.
    Unknown arguments raise ``ValueError``. Callbacks see a "ReasonRankCompressor" run.
    """

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if self._shared:
            data["ranker"] = SHARED_RANKER  # loading it back refuses, rather than building the demo model
        return data

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        check_documents(documents, Document)
        if not documents:
            return []
        return self._runnable().invoke({"query": query, "documents": documents}, {"callbacks": callbacks})

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        check_documents(documents, Document)
        if not documents:
            return []
        return await self._runnable().ainvoke(
            {"query": query, "documents": documents}, {"callbacks": callbacks}
        )

    def _runnable(self) -> RunnableLambda:
        return RunnableLambda(self._rank, afunc=self._arank, name="ReasonRankCompressor")

    def _rank(self, inputs: dict[str, Any]) -> list[Document]:
        docs = inputs["documents"]
        hits = rerank(self._ranker, inputs["query"], self._passages(docs), self.top_n, self.score_threshold)
        return self._copies(docs, hits)

    async def _arank(self, inputs: dict[str, Any]) -> list[Document]:
        docs = inputs["documents"]
        hits = await arerank(
            self._ranker, inputs["query"], self._passages(docs), self.top_n, self.score_threshold
        )
        return self._copies(docs, hits)

    def _passages(self, docs: Sequence[Document]) -> list[Passage]:
        return [to_passage(d.page_content, d.metadata, id=d.id, title_key=self.title_key) for d in docs]

    def _copies(self, docs: Sequence[Document], hits: list[RankedPassage]) -> list[Document]:
        out = []
        for hit in hits:
            doc = docs[hit.index]
            meta = annotate(
                doc.metadata,
                hit,
                keep_retrieval_score=self.keep_retrieval_score,
                retrieval_score=doc.metadata.get(SCORE_KEY),
            )
            meta[SCORE_KEY] = hit.score
            out.append(doc.model_copy(update={"metadata": meta}))
        return out
