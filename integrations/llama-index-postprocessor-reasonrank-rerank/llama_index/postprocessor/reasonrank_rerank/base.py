"""ReasonRank reasoning listwise reranking as a LlamaIndex node postprocessor."""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import (
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from reasonrank_plugins import Passage, RankedPassage
from reasonrank_plugins.adapter_fields import PydanticAdapter
from reasonrank_plugins.adapters import (
    META_KEYS,
    SHARED_RANKER,
    annotate,
    arerank,
    check_documents,
    rerank,
    to_passage,
)

dispatcher = get_dispatcher(__name__)


class ReasonRankRerank(BaseNodePostprocessor, PydanticAdapter):
    """Rerank retrieved nodes with a reasoning listwise model (ReasonRank).

    ``index.as_query_engine(node_postprocessors=[ReasonRankRerank(top_n=5)])``. The engine is
    built once; pass ``ranker=`` to share one ``ReasonRanker`` between components (the dump of such
    a postprocessor cannot be loaded back). Scores are replaced by the rerank score; metadata gains
    ``reasonrank_reasoning``, ``reasonrank_status``, ``reasonrank_usage`` (and ``reasonrank_note``,
    ``retrieval_score``), which are kept out of the LLM and embedding text. ``metadata[title_key]``
    is the passage title in the prompt. ``api_key`` (for the ``openai`` backend; default:
    ``REASONRANK_API_KEY`` or ``OPENAI_API_KEY``) is never dumped. ``close()`` (or ``with``) frees
    the engine it built. Unknown arguments raise ``ValueError``.
    """

    def __init__(self, **data: Any) -> None:
        if data.get("class_name") == self.class_name():
            del data["class_name"]  # to_dict's tag, so model_validate(to_dict()) loads too
        super().__init__(**data)

    @model_serializer(mode="wrap")
    def custom_model_dump(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data = handler(self)
        data["class_name"] = self.class_name()
        if self._shared:
            data["ranker"] = SHARED_RANKER  # loading it back refuses, rather than building the demo model
        return data

    @classmethod
    def class_name(cls) -> str:
        return "ReasonRankRerank"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        query, passages = self._start(nodes, query_bundle)
        with self.callback_manager.event(CBEventType.RERANKING, payload=self._payload(nodes, query)) as event:
            out = self._nodes(nodes, rerank(self._ranker, query, passages, self.top_n, self.score_threshold))
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
            out = self._nodes(
                nodes, await arerank(self._ranker, query, passages, self.top_n, self.score_threshold)
            )
            event.on_end(payload={EventPayload.NODES: out})
        dispatcher.event(ReRankEndEvent(nodes=out))
        return out

    def _start(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> tuple[str, list[Passage]]:
        if query_bundle is None:
            raise ValueError("ReasonRankRerank needs the query: pass query_bundle or query_str")
        check_documents(nodes, NodeWithScore, "nodes")
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle, nodes=nodes, top_n=self.top_n or len(nodes), model_name=self._ranker.model
            )
        )
        return query_bundle.query_str, [self._passage(n) for n in nodes]

    def _passage(self, node: NodeWithScore) -> Passage:
        """The embedding view of the node (its text with the metadata it embeds) without the title,
        which goes to the prompt as the passage title."""
        inner = node.node
        if not inner.get_content(metadata_mode=MetadataMode.NONE).strip():
            return Passage("", id=inner.node_id)
        if self.title_key and self.title_key in inner.metadata:
            excluded = [*inner.excluded_embed_metadata_keys, self.title_key]
            inner = inner.model_copy(update={"excluded_embed_metadata_keys": excluded})
        text = inner.get_content(metadata_mode=MetadataMode.EMBED)
        return to_passage(text, inner.metadata, id=inner.node_id, title_key=self.title_key)

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


def _hide(excluded: list[str]) -> list[str]:
    return [*excluded, *(k for k in META_KEYS if k not in excluded)]
