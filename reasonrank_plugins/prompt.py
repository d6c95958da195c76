"""The ReasonRank prompt, reproduced byte for byte (the published checkpoints were trained on it).

The order of operations is the reference's (8421BCD/ReasonRank, ``create_prompt`` and
``convert_doc_to_prompt_content``):

- query: ``[n]`` -> ``(n)``, then ``strip()``; it gets no ftfy pass of its own;
- passage: ``Title: {title} Content: {text}`` when the title is non-empty, ``strip()``,
  ``ftfy.fix_text``, truncation to ``max_passage_tokens`` tokens, then ``[n]`` -> ``(n)``;
- the prompt rendered with the chat template goes through ``ftfy.fix_text`` once more
  (:func:`finalize_prompt`), which also reaches the query;
- the model may write ``reasoning_budget + 100`` tokens (:func:`generation_budget`).
"""

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
ANSWER_TOKENS = 100  # the reference's generation limit is its reasoning length plus this

_FAKE_ID = re.compile(r"\[(\d+)\]")  # \d: any Unicode decimal digit, as in the reference
# The rendered prompt always holds a "<" (the system prompt's tags) before the user message, so
# ftfy's unescape_html="auto" is off there: per message, the final pass must leave HTML alone.
_FINAL_PER_MESSAGE = ftfy.TextFixerConfig(unescape_html=False)

Truncate = Callable[[str, int], str]
"""``truncate(text, n)``: ``text`` cut to its first ``n`` tokens of the model's tokenizer, as the
reference does it: ``tokenizer.convert_tokens_to_string(tokenizer.tokenize(text)[:n])``. The
reference round-trips every passage, short or long, and a cut inside a multi-byte character
leaves U+FFFD (byte-level BPE decodes with ``errors="replace"``)."""


def replace_ids(text: str) -> str:
    """Every ``[n]`` (decimal digits only) becomes ``(n)`` so it cannot pose as an identifier."""
    return _FAKE_ID.sub(r"(\1)", text)


def prepare_query(query: str) -> str:
    """The query as the reference puts it in the prompt: ``[n]`` -> ``(n)``, then stripped."""
    return replace_ids(query).strip()


def passage_content(
    passage: str | Passage, *, max_tokens: int | None = None, truncate: Truncate | None = None
) -> str:
    """``Title: {title} Content: {text}`` (or the text), stripped, ftfy-fixed, truncated, ``[n]`` ->
    ``(n)``. An empty (or whitespace) passage gives ``""``, which renders as ``[k] `` + newline."""
    if isinstance(passage, Passage):
        text = f"Title: {passage.title} Content: {passage.text}" if passage.title else passage.text
    else:
        text = passage
    text = ftfy.fix_text(text.strip())
    if max_tokens is not None:
        if truncate is None:
            raise ValueError("max_tokens needs truncate=, the model tokenizer's cut (prompt.Truncate)")
        text = truncate(text, max_tokens)
    return replace_ids(text)


def render_messages(query: str, contents: Sequence[str]) -> list[dict[str, str]]:
    """Chat messages for one window from a prepared query and passage contents."""
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
    """The system and user messages for one window, equal to the reference's ``messages`` before
    its chat template; the rendered prompt still needs :func:`finalize_prompt`."""
    contents = [passage_content(p, max_tokens=max_passage_tokens, truncate=truncate) for p in passages]
    return render_messages(prepare_query(query), contents)


def finalize_prompt(rendered: str) -> str:
    """The reference's last step: ``ftfy.fix_text`` over the prompt rendered with the chat template
    (generation prompt included), before any assistant prefix is appended."""
    return ftfy.fix_text(rendered)


def finalize_messages(messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """:func:`finalize_prompt` for a server that applies the chat template itself: each content
    fixed with HTML unescaping off. Equal to the rendered pass when the template puts each message
    on lines of its own (ChatML, as Qwen's)."""
    return [{**m, "content": ftfy.fix_text(m["content"], _FINAL_PER_MESSAGE)} for m in messages]


def generation_budget(reasoning_budget: int) -> int:
    """Tokens the model may write for one window: the reasoning budget plus the answer's 100."""
    return reasoning_budget + ANSWER_TOKENS
