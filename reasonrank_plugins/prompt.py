"""The ReasonRank prompt, reproduced byte for byte (the published checkpoints were trained on it)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import ftfy

from .types import Passage

SYSTEM_PROMPT = (
    "You are RankLLM, an intelligent assistant that can rank passages based on their relevance to the "
    "query. Given a query and a passage list, you first thinks about the reasoning process in the mind "
    "and then provides the answer (i.e., the reranked passage list). The reasoning process and answer "
    "are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> "
    "reasoning process here </think> <answer> answer here </answer>."
)

_FAKE_ID = re.compile(r"\[(\d+)\]")

Truncate = Callable[[str, int], str]


def sanitize(text: str) -> str:
    """Clean text with ftfy and turn every ``[n]`` into ``(n)`` so it cannot fake an identifier."""
    return _FAKE_ID.sub(r"(\1)", ftfy.fix_text(text))


def passage_content(
    passage: str | Passage, *, max_tokens: int | None = None, truncate: Truncate | None = None
) -> str:
    """``Title: {title} Content: {text}`` (or the text), stripped, truncated, sanitized."""
    if isinstance(passage, Passage):
        text = f"Title: {passage.title} Content: {passage.text}" if passage.title else passage.text
    else:
        text = passage
    text = text.strip()
    if max_tokens is not None and truncate is not None:
        text = truncate(text, max_tokens)
    return sanitize(text)


def render_messages(query: str, contents: Sequence[str]) -> list[dict[str, str]]:
    """Chat messages for one window from an already sanitized query and passage contents."""
    num = len(contents)
    user = (
        f"I will provide you with {num} passages, each indicated by a numerical identifier []. "
        f"Rank the passages based on their relevance to the search query: {query}.\n"
        "\n"
        + "".join(f"[{i}] {content}\n" for i, content in enumerate(contents, start=1))
        + f"Search Query: {query}.\n"
        f"Rank the {num} passages above based on their relevance to the search query. All the passages "
        "should be included and listed using identifiers, in descending order of relevance. The format "
        "of the answer should be [] > [], e.g., [2] > [1]."
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def build_messages(
    query: str,
    passages: Sequence[str | Passage],
    *,
    max_passage_tokens: int | None = None,
    truncate: Truncate | None = None,
) -> list[dict[str, str]]:
    """The system and user messages for one window of ``passages``."""
    contents = [passage_content(p, max_tokens=max_passage_tokens, truncate=truncate) for p in passages]
    return render_messages(sanitize(query), contents)
