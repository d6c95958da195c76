"""ReasonRank reasoning listwise reranking as a Haystack ranker component."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.utils import Secret, deserialize_secrets_inplace

from reasonrank_plugins import Passage, RankedPassage, ReasonRanker
from reasonrank_plugins.options import RankerOptions
from reasonrank_plugins.adapters import (
    API_KEY_ENV_VARS,
    ENGINE_OPTIONS,
    annotate,
    arerank,
    check_backend_options,
    check_documents,
    check_ranker,
    check_threshold,
    check_top_k,
    make_ranker,
    rerank,
    to_passage,
    with_api_key,
)

DEFAULT_API_KEY = Secret.from_env_var(list(API_KEY_ENV_VARS), strict=False)


@component
class ReasonRankRanker:
    """Rerank documents with a reasoning listwise model (ReasonRank).

    ``pipeline.add_component("ranker", ReasonRankRanker(top_k=5))`` after a retriever. Documents
    are deduplicated by id and returned as copies in rank order, with ``score`` set to the rerank
    score and ``meta["reasonrank_reasoning"]`` (``meta["reasonrank_note"]`` when the model did not
    rank one: empty, or its window failed or ran out of time), ``meta["reasonrank_status"]`` and
    ``meta["reasonrank_usage"]``. ``meta[title_key]`` is the passage title in the prompt, and the
    ``meta_fields_to_embed`` go before the content, joined by ``embedding_separator``, as in
    Haystack's other rankers. The engine options (``model``, ``backend``, ``window_size``,
    ``strategy``, ...) are the fields of :class:`~reasonrank_plugins.options.RankerOptions`, passed
    as keywords; those not given (or ``None``) take its defaults (the demo model on llama.cpp,
    windows of 20, step 10, ``strategy="sliding"``). ``api_key`` is passed on for the ``openai`` backend
    only. ``ranker=`` shares an existing ``ReasonRanker`` (not serializable; ``close`` leaves it
    open). ``trust_remote_code`` in ``backend_options`` needs ``REASONRANK_ALLOW_REMOTE_CODE=1``.
    """

    def __init__(
        self,
        *,
        top_k: int | None = 10,
        api_key: Secret | None = DEFAULT_API_KEY,
        score_threshold: float | None = None,
        keep_retrieval_score: bool = False,
        title_key: str | None = "title",
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        ranker: ReasonRanker | None = None,
        **engine_options: Any,
    ) -> None:
        unknown = sorted(set(engine_options) - set(ENGINE_OPTIONS))
        if unknown:
            raise ValueError(
                f"ReasonRankRanker: unknown arguments {unknown}; the engine options are {list(ENGINE_OPTIONS)}"
            )
        backend, backend_options = engine_options.get("backend"), engine_options.get("backend_options")
        check_top_k(top_k)
        check_threshold(score_threshold)
        check_ranker(ranker)
        check_backend_options(backend_options)
        _check_text_options(title_key, meta_fields_to_embed, embedding_separator)
        if api_key is not None and not isinstance(api_key, Secret):
            raise ValueError(
                f"api_key must be a haystack Secret (Secret.from_env_var), got {type(api_key).__name__}"
            )
        if backend is not None and not isinstance(backend, str):
            raise ValueError(
                "backend must be a backend name; wrap a Backend instance in ranker=ReasonRanker(...)"
            )
        if ranker is None:  # checked now, built at warm_up
            RankerOptions(**{k: v for k, v in engine_options.items() if v is not None})
        self.top_k = top_k
        self.options: dict[str, Any] = {k: engine_options.get(k) for k in ENGINE_OPTIONS}  # None: the default
        self.api_key = api_key
        self.score_threshold = score_threshold
        self.keep_retrieval_score = keep_retrieval_score
        self.title_key = title_key
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self._shared = ranker is not None
        self._ranker = make_ranker(ranker, self.options) if ranker is not None else None
        self._lock = threading.Lock()  # concurrent first runs (run_async in threads) build one engine

    def warm_up(self) -> None:
        """Load the engine (the model). Idempotent and thread-safe."""
        with self._lock:
            if self._ranker is None:
                key = self.api_key.resolve_value() if self.api_key else None
                self._ranker = make_ranker(None, with_api_key(self.options, key))

    async def warm_up_async(self) -> None:
        """:meth:`warm_up` off the event loop (loading the model must not block it)."""
        if self._ranker is None:
            await asyncio.to_thread(self.warm_up)

    def close(self) -> None:
        """Free the engine this component built; a shared ``ranker=`` stays open. Idempotent; the
        next run builds a new engine."""
        with self._lock:
            if self._ranker is not None and not self._shared:
                self._ranker.close()
                self._ranker = None

    async def close_async(self) -> None:
        """:meth:`close` off the event loop."""
        await asyncio.to_thread(self.close)

    def to_dict(self) -> dict[str, Any]:
        if self._shared:
            raise ValueError(
                "a ReasonRankRanker built with ranker= cannot be serialized; pass engine options"
            )
        return default_to_dict(
            self,
            top_k=self.top_k,
            **self.options,
            api_key=self.api_key.to_dict() if self.api_key else None,
            score_threshold=self.score_threshold,
            keep_retrieval_score=self.keep_retrieval_score,
            title_key=self.title_key,
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReasonRankRanker:
        """Build from :meth:`to_dict`'s output; an unknown init parameter raises ``ValueError``
        naming it, ``trust_remote_code`` in ``backend_options`` needs ``REASONRANK_ALLOW_REMOTE_CODE=1``."""
        params = dict(data.get("init_parameters", {}))  # a copy: the caller's dict is left as it was
        own = set(inspect.signature(cls.__init__).parameters) - {"self", "ranker", "engine_options"}
        known = own | set(ENGINE_OPTIONS)
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(
                f"ReasonRankRanker: unknown init parameters {unknown}; expected some of {sorted(known)}"
            )
        deserialize_secrets_inplace(params, keys=["api_key"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, documents: list[Document], top_k: int | None = None
    ) -> dict[str, list[Document]]:
        """Rerank ``documents`` for ``query``; ``top_k`` overrides the component's."""
        top_k, docs = self._prepare(documents, top_k)
        if not docs:
            return {"documents": []}
        self.warm_up()
        hits = rerank(self._ranker, query, self._passages(docs), top_k, self.score_threshold)
        return {"documents": self._documents(docs, hits)}

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query: str, documents: list[Document], top_k: int | None = None
    ) -> dict[str, list[Document]]:
        """:meth:`run` on the engine's native async path."""
        top_k, docs = self._prepare(documents, top_k)
        if not docs:
            return {"documents": []}
        await self.warm_up_async()
        hits = await arerank(self._ranker, query, self._passages(docs), top_k, self.score_threshold)
        return {"documents": self._documents(docs, hits)}

    def _prepare(self, documents: list[Document], top_k: int | None) -> tuple[int | None, list[Document]]:
        check_top_k(top_k)
        check_documents(documents, Document)
        return (self.top_k if top_k is None else top_k), _dedupe(documents)

    def _passages(self, docs: list[Document]) -> list[Passage]:
        return [
            to_passage(
                d.content,
                d.meta,
                id=d.id,
                title_key=self.title_key,
                meta_fields_to_embed=self.meta_fields_to_embed,
                embedding_separator=self.embedding_separator,
            )
            for d in docs
        ]

    def _documents(self, docs: list[Document], hits: list[RankedPassage]) -> list[Document]:
        return [
            dataclasses.replace(
                docs[h.index],
                score=h.score,
                meta=annotate(
                    docs[h.index].meta,
                    h,
                    keep_retrieval_score=self.keep_retrieval_score,
                    retrieval_score=docs[h.index].score,
                ),
            )
            for h in hits
        ]


def _check_text_options(title_key: object, meta_fields: object, separator: object) -> None:
    if title_key is not None and not isinstance(title_key, str):
        raise ValueError(f"title_key must be None or a metadata key (str), got {title_key!r}")
    if meta_fields is not None and (
        not isinstance(meta_fields, list | tuple) or not all(isinstance(k, str) for k in meta_fields)
    ):
        raise ValueError(f"meta_fields_to_embed must be a list of metadata keys, got {meta_fields!r}")
    if not isinstance(separator, str):
        msg = f"embedding_separator must be a str, got {separator!r}"
        raise ValueError(msg)  # noqa: TRY004 - bad input is a ValueError here


def _dedupe(documents: list[Document]) -> list[Document]:
    """One document per id (the highest-scoring), in order of first appearance."""
    best: dict[str, Document] = {}
    for doc in documents:
        kept = best.get(doc.id)
        if kept is None or (doc.score is not None and (kept.score is None or doc.score > kept.score)):
            best[doc.id] = doc
    return list(best.values())
