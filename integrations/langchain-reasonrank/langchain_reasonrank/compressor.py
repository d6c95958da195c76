"""ReasonRank reasoning listwise reranking as a LangChain document compressor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables import RunnableLambda
from pydantic import Field, PrivateAttr

from reasonrank_plugins import Passage, RankedPassage, ReasonRanker
from reasonrank_plugins.adapter_fields import EngineFields
from reasonrank_plugins.adapters import annotate, arerank, check_top_k, rerank

SCORE_KEY = "relevance_score"


class ReasonRankCompressor(BaseDocumentCompressor, EngineFields):
    """Rerank documents with a reasoning listwise model (ReasonRank).

    ``ContextualCompressionRetriever(base_compressor=ReasonRankCompressor(top_n=5), base_retriever=r)``.
    Returns copies in rank order (``Document.id`` and metadata kept, the input untouched) with
    ``metadata["relevance_score"]`` and ``metadata["reasonrank_reasoning"]``. The engine is built
    once; pass ``ranker=`` to share one ``ReasonRanker``. Callbacks see a "ReasonRankCompressor" run.
    """

    top_n: int | None = Field(default=5, description="Documents to return; None keeps all.")
    keep_retrieval_score: bool = Field(
        default=False, description="Move an existing relevance_score to metadata['retrieval_score']."
    )
    _ranker: ReasonRanker = PrivateAttr()

    def __init__(self, *, ranker: ReasonRanker | None = None, **data: Any) -> None:
        super().__init__(**data)
        check_top_k(self.top_n, "top_n")
        self._ranker = self.build_ranker(ranker)

    @property
    def ranker(self) -> ReasonRanker:
        return self._ranker

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        if not documents:
            return []
        return self._runnable().invoke({"query": query, "documents": documents}, {"callbacks": callbacks})

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        if not documents:
            return []
        return await self._runnable().ainvoke(
            {"query": query, "documents": documents}, {"callbacks": callbacks}
        )

    def _runnable(self) -> RunnableLambda:
        return RunnableLambda(self._rank, afunc=self._arank, name="ReasonRankCompressor")

    def _rank(self, inputs: dict[str, Any]) -> list[Document]:
        docs = inputs["documents"]
        return self._copies(docs, rerank(self._ranker, inputs["query"], _passages(docs), self.top_n))

    async def _arank(self, inputs: dict[str, Any]) -> list[Document]:
        docs = inputs["documents"]
        return self._copies(docs, await arerank(self._ranker, inputs["query"], _passages(docs), self.top_n))

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


def _passages(docs: Sequence[Document]) -> list[Passage]:
    return [Passage(doc.page_content, id=doc.id) for doc in docs]
