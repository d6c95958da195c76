"""``--backend scripted``: model-free dry runs of the eval pipeline (and its subprocess tests).

The model name picks the script: ``identity`` keeps each window's order, ``reverse`` reverses
it, ``overlap`` ranks by how many distinct query words a passage contains. ``latency`` makes
each call slow; ``log`` appends every request's query to a file (one JSON string a line).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..backends.base import Generation, GenerationRequest
from ..testing import Respond, ScriptedBackend, answer_by_score, parse_window

_WORD = re.compile(r"\w+")


def _answer(ids: list[int]) -> str:
    return f"<think>ranked {len(ids)} passages</think> <answer>{' > '.join(f'[{i}]' for i in ids)}</answer>"


def _overlap(query: str, content: str) -> float:
    return len(set(_WORD.findall(query.lower())) & set(_WORD.findall(content.lower())))


SCRIPTS: dict[str, Respond] = {
    "identity": lambda query, contents: _answer(list(range(1, len(contents) + 1))),
    "reverse": lambda query, contents: _answer(list(range(len(contents), 0, -1))),
    "overlap": answer_by_score(_overlap),
}


class LoggingScriptedBackend(ScriptedBackend):
    """A ``ScriptedBackend`` that also appends each request's query to ``log``."""

    def __init__(
        self, respond: Respond, *, latency: float = 0.0, log: str | None = None, model_name: str
    ) -> None:
        super().__init__(respond, latency=latency, model_name=model_name)
        self.log = Path(log) if log else None

    async def generate(self, request: GenerationRequest) -> Generation:
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(parse_window(request.messages)[0]) + "\n")
        return await super().generate(request)


def scripted_backend(model: str, *, latency: float = 0.0, log: str | None = None) -> ScriptedBackend:
    """The scripted backend named by ``model`` (one of ``SCRIPTS``)."""
    if model not in SCRIPTS:
        raise ValueError(f"the scripted backend's model must be one of {sorted(SCRIPTS)}, got {model!r}")
    return LoggingScriptedBackend(
        SCRIPTS[model], latency=float(latency), log=log, model_name=f"scripted-{model}"
    )
