"""Training examples in the core engine's exact ReasonRank prompt."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from reasonrank_plugins.prompt import build_messages

from .data import to_passage
from .filtering import teacher_order


def tokenizer_truncate(tokenizer: Any) -> Callable[[str, int], str]:
    """Cut text to ``max_tokens`` tokens as the backends do at inference."""
    from reasonrank_plugins.backends.rendering import ChatRenderer

    return ChatRenderer(tokenizer).truncate


def ranking_text(order: Sequence[int]) -> str:
    """A 0-based permutation as the answer ``[2] > [1] > ...``."""
    return " > ".join(f"[{i + 1}]" for i in order)


def prompt_messages(record: dict[str, Any], tokenizer: Any, max_passage_tokens: int) -> list[dict[str, str]]:
    return build_messages(
        record["query"],
        [to_passage(c) for c in record["candidates"]],
        max_passage_tokens=max_passage_tokens,
        truncate=tokenizer_truncate(tokenizer),
    )


def target_text(record: dict[str, Any]) -> str:
    """``<think>{reasoning}</think> <answer>{full teacher ranking}</answer>`` (missing ids appended
    in prior order by the core parser, as the engine would)."""
    order = record.get("order") or teacher_order(record)[0]
    return f"<think>{record.get('reasoning', '').strip()}</think> <answer>{ranking_text(order)}</answer>"


def sft_example(record: dict[str, Any], tokenizer: Any, max_passage_tokens: int) -> dict[str, Any]:
    """A prompt-completion chat example (TRL trains on the completion only)."""
    return {
        "id": record.get("id", record["qid"]),
        "prompt": prompt_messages(record, tokenizer, max_passage_tokens),
        "completion": [{"role": "assistant", "content": target_text(record)}],
    }


def grpo_example(record: dict[str, Any], tokenizer: Any, max_passage_tokens: int) -> dict[str, Any]:
    """A prompt with what the reward needs: ``initial_list``, ``relevant_docids``, ``gold_list``."""
    order = record.get("order") or teacher_order(record)[0]
    return {
        "id": record.get("id", record["qid"]),
        "prompt": prompt_messages(record, tokenizer, max_passage_tokens),
        "initial_list": list(record["initial_list"]),
        "relevant_docids": list(record.get("relevant_docids") or []),
        "gold_list": ranking_text(order),
    }
