"""What the LlamaIndex, LangChain and Haystack adapters share: building the engine once, ranking
(sync or natively async) and the metadata they attach. No framework is imported here.

Every adapter writes the same keys into a document's metadata:

- ``reasonrank_reasoning``: the reasoning of the window that last placed the document (absent
  when there is none: a single candidate, an empty document, a window that failed or timed out);
- ``reasonrank_note``: why the document was not ranked by the model, when it was not (empty
  content, a single candidate, the window that last held it failed: ``window error: ...``, or the
  deadline passed: ``deadline passed ...``);
- ``retrieval_score``: the first-stage score, with ``keep_retrieval_score=True`` (when there was one).

The rerank score itself goes where each framework keeps scores (``NodeWithScore.score``,
``metadata["relevance_score"]``, ``Document.score``): a float in (0, 1], strictly decreasing
with rank.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from .options import OPTION_NAMES, RankerOptions
from .ranker import ReasonRanker
from .types import Passage, RankedPassage

REASONING_KEY = "reasonrank_reasoning"
NOTE_KEY = "reasonrank_note"
RETRIEVAL_SCORE_KEY = "retrieval_score"
META_KEYS = (REASONING_KEY, NOTE_KEY, RETRIEVAL_SCORE_KEY)
SINGLE_NOTE = "single candidate: returned without the model"

#: ``ReasonRanker`` arguments an adapter accepts: the fields of ``RankerOptions``.
ENGINE_OPTIONS = OPTION_NAMES


def make_ranker(ranker: ReasonRanker | None, options: Mapping[str, Any]) -> ReasonRanker:
    """Return ``ranker``, or build one from the engine ``options`` the caller set explicitly.

    Options whose value is ``None`` (or empty ``backend_options``) count as not set. Giving both
    is an error: the options would silently be ignored.
    """
    given = {k: v for k, v in options.items() if v is not None and not (k == "backend_options" and not v)}
    unknown = set(given) - set(ENGINE_OPTIONS)
    if unknown:
        raise ValueError(f"unknown engine options {sorted(unknown)}; expected some of {ENGINE_OPTIONS}")
    if ranker is not None:
        if not isinstance(ranker, ReasonRanker):
            raise TypeError(f"ranker must be a ReasonRanker, got {type(ranker).__name__}")
        if given:
            raise ValueError(
                f"pass either ranker= (a shared ReasonRanker) or engine options, not both: got ranker= "
                f"and {sorted(given)}; configure the shared ranker instead"
            )
        return ranker
    return ReasonRanker(options=RankerOptions(**given))


def check_top_k(top_k: object, name: str = "top_k") -> None:
    """``None`` keeps every document; otherwise a positive int."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        raise ValueError(f"{name} must be None or an int > 0, got {top_k!r}")


def rerank(
    ranker: ReasonRanker,
    query: str,
    passages: Sequence[Passage],
    top_k: int | None = None,
    score_threshold: float | None = None,
) -> list[RankedPassage]:
    """Ranked hits for ``passages``; no input means no model call."""
    check_top_k(top_k)
    if not passages:
        return []
    return _finish(ranker.rerank(query, passages, top_k).hits, len(passages), score_threshold)


async def arerank(
    ranker: ReasonRanker,
    query: str,
    passages: Sequence[Passage],
    top_k: int | None = None,
    score_threshold: float | None = None,
) -> list[RankedPassage]:
    """Async :func:`rerank` on the engine's native async path."""
    check_top_k(top_k)
    if not passages:
        return []
    return _finish((await ranker.arerank(query, passages, top_k)).hits, len(passages), score_threshold)


def annotate(
    metadata: Mapping[str, Any],
    hit: RankedPassage,
    *,
    keep_retrieval_score: bool = False,
    retrieval_score: float | None = None,
) -> dict[str, Any]:
    """A new metadata dict: ``metadata`` plus this hit's reasoning and note (stale ones dropped)."""
    meta = {k: v for k, v in metadata.items() if k not in (REASONING_KEY, NOTE_KEY)}
    if keep_retrieval_score and retrieval_score is not None:
        meta[RETRIEVAL_SCORE_KEY] = retrieval_score
    if hit.reasoning:
        meta[REASONING_KEY] = hit.reasoning
    if hit.note is not None:
        meta[NOTE_KEY] = hit.note
    return meta


def _finish(hits: list[RankedPassage], n: int, score_threshold: float | None) -> list[RankedPassage]:
    if n == 1 and hits and hits[0].note is None:
        hits = [dataclasses.replace(hits[0], note=SINGLE_NOTE)]
    if score_threshold is not None:
        hits = [h for h in hits if h.score >= score_threshold]
    return hits
