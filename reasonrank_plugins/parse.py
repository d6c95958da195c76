"""Parse a model's output into a window permutation, reading ids from ``<answer>`` only."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

_BRACKET_ID = re.compile(r"\[([^\[\]]*)\]")  # every bracketed token; non-ids count as invalid
_BARE_ID = re.compile(r"(?<![0-9\-.])[0-9]+(?![0-9])")
_MAX_ID_DIGITS = 9  # longer numbers are out of range for any window; never int() them


class ParseStatus(str, Enum):
    """How well a window's output could be turned into a ranking."""

    OK = "ok"  # a complete, well-formed answer listing every id once
    REPAIRED = "repaired"  # usable answer with missing, duplicate or invalid ids, or a truncated tag
    FAILED = "failed"  # no usable answer: the window keeps its input order
    ERROR = "error"  # the backend call raised: the window keeps its input order (``WindowRecord.error``)
    TIMEOUT = "timeout"  # the call's deadline passed first: the window keeps its input order

    def __str__(self) -> str:
        return self.value


@dataclass
class ParsedAnswer:
    """A 0-based permutation of ``range(n)`` and how it was obtained."""

    order: list[int]
    status: ParseStatus
    reasoning: str = ""
    answer: str = ""
    missing: list[int] = field(default_factory=list)  # 0-based ids appended in prior order
    duplicates: int = 0
    invalid: int = 0


def split_output(text: str) -> tuple[str, str | None, bool]:
    """Split raw output into (reasoning, answer block or None, answer tag closed).

    The reasoning is everything up to the last ``</think>``; an unclosed ``<think>``
    makes the rest of the text reasoning. The answer is the first ``<answer>`` block
    after the reasoning, up to its ``</answer>`` or the end of the text.
    """
    close = text.rfind("</think>")
    if close >= 0:
        reasoning, rest = text[:close], text[close + len("</think>") :]
    else:
        opened = text.find("<think>")
        if opened >= 0:
            reasoning, rest = text[opened:], text[:opened]
        else:
            reasoning, rest = "", text
    reasoning = reasoning.replace("<think>", "", 1).strip()
    start = rest.find("<answer>")
    if start < 0:
        return reasoning, None, False
    if not reasoning:
        reasoning = rest[:start].strip()
    body = rest[start + len("<answer>") :]
    end = body.find("</answer>")
    if end < 0:
        return reasoning, body.strip(), False
    return reasoning, body[:end].strip(), True


def parse_answer(text: str, n: int) -> ParsedAnswer:
    """Turn ``text`` into a permutation of ``range(n)``; never raises on model output.

    Ids are 1-based ``[i]`` identifiers read from the answer block only (bare numbers
    are accepted when the answer has no brackets at all). Duplicates and out-of-range ids are
    dropped, and missing ids are appended in their prior order.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    reasoning, answer, closed = split_output(text)
    identity = list(range(n))
    if answer is None:
        return ParsedAnswer(identity, ParseStatus.FAILED, reasoning=reasoning)

    tokens = _BRACKET_ID.findall(answer)
    bare = not tokens and "[" not in answer  # "2 > 1" is accepted; "[-1]" is not read as 1
    if bare:
        tokens = _BARE_ID.findall(answer)
    order: list[int] = []
    seen: set[int] = set()
    duplicates = invalid = 0
    for token in tokens:
        token = token.strip()
        digits = token.lstrip("0") if token.isascii() and token.isdigit() else ""
        value = int(digits) if digits and len(digits) <= _MAX_ID_DIGITS else 0
        if not 1 <= value <= n:
            invalid += 1
        elif value - 1 in seen:
            duplicates += 1
        else:
            seen.add(value - 1)
            order.append(value - 1)
    if not order and n > 0:
        return ParsedAnswer(identity, ParseStatus.FAILED, reasoning, answer, invalid=invalid)
    missing = [i for i in identity if i not in seen]
    clean = closed and not bare and not missing and not duplicates and not invalid
    return ParsedAnswer(
        order + missing,
        ParseStatus.OK if clean else ParseStatus.REPAIRED,
        reasoning,
        answer,
        missing=missing,
        duplicates=duplicates,
        invalid=invalid,
    )
