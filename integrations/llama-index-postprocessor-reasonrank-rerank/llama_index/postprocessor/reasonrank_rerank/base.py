"""ReasonRank reasoning listwise reranking as a LlamaIndex node postprocessor."""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from reasonrank_plugins import Passage, RankedPassage, ReasonRanker
from reasonrank_plugins.adapter_fields import EngineFields
from reasonrank_plugins.adapters import META_KEYS, annotate, arerank, check_top_k, rerank

dispatcher = get_dispatcher(__name__)


class ReasonRankRerank(BaseNodePostprocessor, EngineFields):
    """Rerank retrieved nodes with a reasoning listwise model (ReasonRank).

    ``index.as_query_engine(node_postprocessors=[ReasonRankRerank(top_n=5)])``. The engine is
    built once; pass ``ranker=`` to share one ``ReasonRanker`` between components. Scores are
    replaced by the rerank score; metadata gains ``reasonrank_reasoning`` (and
    ``reasonrank_note``, ``retrieval_score``), which are kept out of the LLM and embedding text.
    """

    top_n: int | None = Field(default=5, description="Nodes to return; None keeps all.")
    keep_retrieval_score: bool = Field(default=False, description="Keep the old score in metadata.")
    _ranker: ReasonRanker = PrivateAttr()

    def __init__(self, *, ranker: ReasonRanker | None = None, **data: Any) -> None:
        super().__init__(**data)
        check_top_k(self.top_n, "top_n")
        self._ranker = self.build_ranker(ranker)

    @classmethod
    def class_name(cls) -> str:
        return "ReasonRankRerank"

    @property
    def ranker(self) -> ReasonRanker:
        return self._ranker

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        query, passages = self._start(nodes, query_bundle)
        with self.callback_manager.event(CBEventType.RERANKING, payload=self._payload(nodes, query)) as event:
            out = self._nodes(nodes, rerank(self._ranker, query, passages, self.top_n))
            event.on_end(payload={EventPayload.NODES: out})
        dispatcher.event(ReRankEndEvent(nodes=out))
        return out

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        query, passages = self._start(nodes, query_bundle)
        with self.callback_manager.event(CBEventType.RERANKING, payload=self._payload(nodes, query)) as event:
            out = self._nodes(nodes, await arerank(self._ranker, query, passages, self.top_n))
            event.on_end(payload={EventPayload.NODES: out})
        dispatcher.event(ReRankEndEvent(nodes=out))
        return out

    def _start(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> tuple[str, list[Passage]]:
        if query_bundle is None:
            raise ValueError("ReasonRankRerank needs the query: pass query_bundle or query_str")
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle, nodes=nodes, top_n=self.top_n or len(nodes), model_name=self._ranker.model
            )
        )
        return query_bundle.query_str, [Passage(_content(n), id=n.node.node_id) for n in nodes]

    def _payload(self, nodes: list[NodeWithScore], query: str) -> dict[str, Any]:
        return {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self._ranker.model,
            EventPayload.QUERY_STR: query,
            EventPayload.TOP_K: self.top_n,
        }

    def _nodes(self, nodes: list[NodeWithScore], hits: list[RankedPassage]) -> list[NodeWithScore]:
        """Copies in rank order; the input nodes are left as they were."""
        out = []
        for hit in hits:
            old = nodes[hit.index]
            meta = annotate(
                old.node.metadata,
                hit,
                keep_retrieval_score=self.keep_retrieval_score,
                retrieval_score=old.score,
            )
            node = old.node.model_copy(
                update={
                    "metadata": meta,
                    "excluded_embed_metadata_keys": _hide(old.node.excluded_embed_metadata_keys),
                    "excluded_llm_metadata_keys": _hide(old.node.excluded_llm_metadata_keys),
                }
            )
            out.append(NodeWithScore(node=node, score=hit.score))
        return out


def _content(node: NodeWithScore) -> str:
    """The embedding view (text with metadata); "" when the node has no text of its own."""
    if not node.node.get_content(metadata_mode=MetadataMode.NONE).strip():
        return ""
    return node.node.get_content(metadata_mode=MetadataMode.EMBED)


def _hide(excluded: list[str]) -> list[str]:
    return [*excluded, *(k for k in META_KEYS if k not in excluded)]
