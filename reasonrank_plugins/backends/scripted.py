"""``backend="scripted"``: a model-free backend for dry runs, demos, load tests and CLI tests.

The model name picks the script: ``identity`` keeps each window's order, ``reverse`` reverses it,
``overlap`` ranks by the fraction of the query's words a passage contains (``"demo"`` means
``overlap``), ``fail`` raises ``ConnectionError`` on every window (a replica that is down).
``latency`` is seconds per window, ``max_batch`` the windows that run together, ``context_length``
the words (prompt and output) a window may take, none by default, and ``log`` a file that gets each
request's query (one JSON string a line).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..testing import Respond, ScriptedBackend, answer_by_score, parse_window
from .base import Generation, GenerationRequest

__all__ = ["SCRIPTS", "ScriptedModelBackend", "overlap_score"]

_WORD = re.compile(r"\w+")
KEPT_REQUESTS = 64  # the latest requests, for inspection


def overlap_score(query: str, content: str) -> float:
    """Fraction of the query's distinct words that occur in ``content`` (case-insensitive)."""
    words = set(_WORD.findall(query.lower()))
    if not words:
        return 0.0
    return len(words & set(_WORD.findall(content.lower()))) / len(words)


def _answer(ids: list[int]) -> str:
    return f"<think>ranked {len(ids)} passages</think> <answer>{' > '.join(f'[{i}]' for i in ids)}</answer>"


def _fail(query: str, contents: list[str]) -> str:
    raise ConnectionError("the scripted model 'fail' is down")


SCRIPTS: dict[str, Respond] = {
    "identity": lambda query, contents: _answer(list(range(1, len(contents) + 1))),
    "reverse": lambda query, contents: _answer(list(range(len(contents), 0, -1))),
    "overlap": answer_by_score(overlap_score),
    "fail": _fail,
}


class ScriptedModelBackend(ScriptedBackend):
    """The ``ScriptedBackend`` running the script named ``model`` (one of ``SCRIPTS``); keeps only
    the latest ``KEPT_REQUESTS`` requests in ``requests``."""

    def __init__(
        self,
        model: str,
        *,
        latency: float = 0.0,
        max_batch: int | None = None,
        context_length: int | None = None,
        log: str | Path | None = None,
    ) -> None:
        if model not in SCRIPTS:
            raise ValueError(f"the scripted backend's model must be one of {sorted(SCRIPTS)}, got {model!r}")
        super().__init__(
            SCRIPTS[model],
            latency=float(latency),
            max_batch=int(max_batch) if max_batch else None,
            model_name=f"scripted-{model}",
            keep_requests=KEPT_REQUESTS,
            context_length=int(context_length) if context_length else None,
        )
        self.log = Path(log) if log else None

    async def generate(self, request: GenerationRequest) -> Generation:
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(parse_window(request.messages)[0]) + "\n")
        return await super().generate(request)
