"""What the LlamaIndex, LangChain and Haystack adapters share: building the engine once, ranking
(sync or natively async), turning documents into passages, the metadata they attach and the checks
on what a loaded configuration may turn on. No framework is imported here.

Every adapter writes the same keys into a document's metadata:

- ``reasonrank_reasoning``: the reasoning of the window that last placed the document (absent
  when there is none: a single candidate, an empty document, a window that failed or timed out);
- ``reasonrank_status``: the status of that window (``ok``, ``repaired``, ``failed``, ``error``,
  ``timeout``; absent when no window held the document);
- ``reasonrank_usage``: ``{"prompt_tokens": ..., "completion_tokens": ...}`` summed over every
  window the document was in (zeros when the model never saw it);
- ``reasonrank_note``: why the document was not ranked by the model, when it was not (empty
  content, a single candidate, the window that last held it failed: ``window error: ...``, or the
  deadline passed: ``deadline passed ...``);
- ``retrieval_score``: the first-stage score, with ``keep_retrieval_score=True`` (when there was one).

The rerank score itself goes where each framework keeps scores (``NodeWithScore.score``,
``metadata["relevance_score"]``, ``Document.score``): a float in (0, 1], strictly decreasing
with rank. Model trouble (a window whose backend call raised or ran out of time) never raises
unless the engine was built with ``on_error="raise"``: the documents keep their order and say why.

Titles reach the prompt as ``Passage.title`` from ``metadata[title_key]`` (default ``"title"``).
An adapter refuses ``trust_remote_code`` in ``backend_options`` unless ``REASONRANK_ALLOW_REMOTE_CODE=1``
(so a loaded pipeline file cannot turn on code execution; build a ``ReasonRanker`` yourself and pass
``ranker=`` to allow it in code), and ``api_key`` there (it would be written out as plain text;
each adapter takes ``api_key`` as its framework's secret type).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .backends import resolve_backend
from .options import OPTION_NAMES, RankerOptions
from .ranker import ReasonRanker
from .types import Passage, RankedPassage

REASONING_KEY = "reasonrank_reasoning"
STATUS_KEY = "reasonrank_status"
USAGE_KEY = "reasonrank_usage"
NOTE_KEY = "reasonrank_note"
RETRIEVAL_SCORE_KEY = "retrieval_score"
META_KEYS = (REASONING_KEY, STATUS_KEY, USAGE_KEY, NOTE_KEY, RETRIEVAL_SCORE_KEY)
SINGLE_NOTE = "single candidate: returned without the model"
REMOTE_CODE_ENV = "REASONRANK_ALLOW_REMOTE_CODE"
API_KEY_ENV_VARS = ("REASONRANK_API_KEY", "OPENAI_API_KEY")
SHARED_RANKER = "<a shared ReasonRanker: not serializable>"

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
            raise ValueError(f"ranker must be a ReasonRanker, got {type(ranker).__name__}")
        if given:
            raise ValueError(
                f"pass either ranker= (a shared ReasonRanker) or engine options, not both: got ranker= "
                f"and {sorted(given)}; configure the shared ranker instead"
            )
        return ranker
    return ReasonRanker(options=RankerOptions(**given))


def build_for(component: Any, ranker: ReasonRanker | None) -> ReasonRanker:
    """The engine of a pydantic adapter (LlamaIndex, LangChain): its ``top_n``, ``score_threshold``
    and ``backend_options`` checked, then ``ranker`` or one built from the engine fields it was
    given explicitly, with its ``api_key`` (a ``SecretStr``) for a server backend."""
    check_top_k(component.top_n, "top_n")
    check_threshold(component.score_threshold)
    check_backend_options(component.backend_options)
    options = {k: getattr(component, k) for k in ENGINE_OPTIONS if k in component.model_fields_set}
    if ranker is not None:
        return make_ranker(ranker, options)
    key = component.api_key.get_secret_value() if component.api_key else None
    return make_ranker(None, with_api_key(options, key))


def check_top_k(top_k: object, name: str = "top_k") -> None:
    """``None`` keeps every document; otherwise a positive int."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        raise ValueError(f"{name} must be None or an int > 0, got {top_k!r}")


def check_threshold(score_threshold: object) -> None:
    """``None`` keeps every document; otherwise a number (scores lie in (0, 1])."""
    if score_threshold is not None and (
        isinstance(score_threshold, bool) or not isinstance(score_threshold, int | float)
    ):
        raise ValueError(f"score_threshold must be None or a number, got {score_threshold!r}")


def check_documents(documents: object, kind: type, name: str = "documents") -> None:
    """``documents`` is a list (or tuple) of ``kind``."""
    if isinstance(documents, str | bytes) or not isinstance(documents, Sequence):
        msg = f"{name} must be a list of {kind.__name__}, got {type(documents).__name__}"
        raise ValueError(msg)  # noqa: TRY004 - bad input is a ValueError here
    for n, doc in enumerate(documents):
        if not isinstance(doc, kind):
            msg = f"{name}[{n}] must be a {kind.__name__}, got {type(doc).__name__}"
            raise ValueError(msg)  # noqa: TRY004 - bad input is a ValueError here


def check_backend_options(backend_options: Mapping[str, Any] | None) -> None:
    """Refuse what a configuration file must not carry in ``backend_options``: ``trust_remote_code``
    (at any depth) without ``REASONRANK_ALLOW_REMOTE_CODE=1``, and a plain-text ``api_key``."""
    if not backend_options:
        return
    if not isinstance(backend_options, Mapping):
        msg = f"backend_options must be a dict, got {type(backend_options).__name__}"
        raise ValueError(msg)  # noqa: TRY004 - bad input is a ValueError here
    if "api_key" in backend_options:
        raise ValueError(
            "backend_options['api_key'] would be serialized as plain text: pass api_key= "
            "(a secret) to the component instead"
        )
    if _remote_code(backend_options) and os.environ.get(REMOTE_CODE_ENV) != "1":
        raise ValueError(
            f"backend_options sets trust_remote_code, which runs code from the model repository; "
            f"set {REMOTE_CODE_ENV}=1 to allow it, or pass ranker=ReasonRanker(..., trust_remote_code=True)"
        )


def _remote_code(options: Mapping[str, Any]) -> bool:
    return any(
        (k == "trust_remote_code" and v is not False and v is not None)
        or (isinstance(v, Mapping) and _remote_code(v))
        for k, v in options.items()
    )


def api_key_from_env() -> str | None:
    """The first of ``REASONRANK_API_KEY`` and ``OPENAI_API_KEY`` that is set."""
    return next((os.environ[k] for k in API_KEY_ENV_VARS if os.environ.get(k)), None)


def invalid_arguments(
    component: str, errors: Iterable[Mapping[str, Any]], known: Iterable[str]
) -> ValueError:
    """One ``ValueError`` naming every bad argument of a pydantic component, from
    ``ValidationError.errors()`` (an unknown one with the closest known name)."""
    known = list(known)
    parts = []
    for error in errors:
        name = ".".join(str(p) for p in error.get("loc", ())) or "arguments"
        if error.get("type") == "extra_forbidden":
            near = difflib.get_close_matches(name, known, n=1)
            parts.append(f"unknown argument {name!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        else:
            parts.append(f"{name}: {error.get('msg')}, got {error.get('input')!r:.80}")
    return ValueError(f"{component}: " + "; ".join(parts))


def check_ranker(ranker: object) -> None:
    """A ``ranker=`` that came from a dump (not a ``ReasonRanker``) cannot be rebuilt: say so."""
    if ranker is None or isinstance(ranker, ReasonRanker):
        return
    if ranker == SHARED_RANKER:
        raise ValueError(
            "this configuration was saved from a component built with ranker= (a shared ReasonRanker), "
            "which cannot be rebuilt from it; pass engine options (model=, backend=, ...) or ranker= again"
        )
    raise ValueError(f"ranker must be a ReasonRanker, got {type(ranker).__name__}")


def with_api_key(options: Mapping[str, Any], api_key: str | None) -> dict[str, Any]:
    """``options`` with ``api_key`` added to ``backend_options`` when the backend is a server
    (``openai``); other backends do not take a key."""
    options = dict(options)
    extra = dict(options.get("backend_options") or {})
    model, backend = options.get("model") or "demo", options.get("backend") or "auto"
    if api_key and isinstance(backend, str) and resolve_backend(model, backend, **extra) == "openai":
        options["backend_options"] = {**extra, "api_key": api_key}
    return options


def to_passage(
    text: str | None,
    metadata: Mapping[str, Any],
    *,
    id: str | None = None,
    title_key: str | None = "title",
    meta_fields_to_embed: Sequence[str] = (),
    embedding_separator: str = "\n",
) -> Passage:
    """A document as the engine sees it: ``metadata[title_key]`` as the title, the non-empty
    ``meta_fields_to_embed`` values before the text (joined by ``embedding_separator``, as Haystack's
    rankers do). A document without text of its own stays empty (ranked as empty content)."""
    text = text or ""
    if not text.strip():
        return Passage("", id=id)
    title = metadata.get(title_key) if title_key else None
    values = [str(metadata[k]) for k in meta_fields_to_embed if metadata.get(k) not in (None, "")]
    return Passage(
        embedding_separator.join([*values, text]) if values else text,
        title=str(title) if title not in (None, "") else None,
        id=id,
    )


def rerank(
    ranker: ReasonRanker,
    query: str,
    passages: Sequence[Passage],
    top_k: int | None = None,
    score_threshold: float | None = None,
) -> list[RankedPassage]:
    """Ranked hits for ``passages``; no input means no model call."""
    check_top_k(top_k)
    check_threshold(score_threshold)
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
    check_threshold(score_threshold)
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
    """A new metadata dict: ``metadata`` plus this hit's reasoning, status, usage and note (stale
    ones dropped)."""
    meta = {k: v for k, v in metadata.items() if k not in (REASONING_KEY, STATUS_KEY, NOTE_KEY)}
    if keep_retrieval_score and retrieval_score is not None:
        meta[RETRIEVAL_SCORE_KEY] = retrieval_score
    if hit.reasoning:
        meta[REASONING_KEY] = hit.reasoning
    if hit.status is not None:
        meta[STATUS_KEY] = hit.status
    meta[USAGE_KEY] = {"prompt_tokens": hit.prompt_tokens, "completion_tokens": hit.completion_tokens}
    if hit.note is not None:
        meta[NOTE_KEY] = hit.note
    return meta


def _finish(hits: list[RankedPassage], n: int, score_threshold: float | None) -> list[RankedPassage]:
    if n == 1 and hits and hits[0].note is None:
        hits = [dataclasses.replace(hits[0], note=SINGLE_NOTE)]
    if score_threshold is not None:
        hits = [h for h in hits if h.score >= score_threshold]
    return hits
