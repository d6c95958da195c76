"""Stage 1: ask a teacher for relevance labels (pointwise) and a reasoned ranking (listwise).

Per window, one pointwise call (with the gold answer when there is one) names the relevant
passages, and one listwise call in RankGPT's multi-turn form (or the core's ReasonRank prompt,
``prompt="reasonrank"``, for self-distillation) writes the reasoning and a full ranking.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from reasonrank_plugins.engine import default_answer_budget, forcing_prefix, needs_answer
from reasonrank_plugins.parse import split_output
from reasonrank_plugins.prompt import Truncate, passage_content, prepare_query, render_messages

from .data import QueryItem, Window, append_jsonl, read_jsonl, to_passage, windows
from .examples import tokenizer_truncate
from .teacher import Teacher, Usage

logger = logging.getLogger(__name__)

PromptStyle = Literal["rankgpt", "reasonrank"]
RANKGPT_SYSTEM = (
    "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."
)
# DeepSeek's API counts the chain of thought in max_tokens (default 32K, at most 64K for
# deepseek-reasoner: api-docs.deepseek.com/guides/reasoning_model), so the defaults are its maximum;
# a local server with a shorter context needs an explicit, smaller --max-tokens.
R1_MAX_TOKENS = 65536
_RELEVANT_LINE = re.compile(r"relevant\s*:(.*)$", re.IGNORECASE | re.MULTILINE)
_ID = re.compile(r"\[(\d+)\]")


def word_truncate(text: str, max_tokens: int) -> str:
    """Whitespace words stand in for the remote teacher's tokenizer."""
    words = text.split()
    return text if len(words) <= max_tokens else " ".join(words[:max_tokens])


def contents(window: Window, limit: int | None, truncate: Truncate = word_truncate) -> list[str]:
    """The window's passages as the core prompt renders them (``passage_content``)."""
    return [passage_content(to_passage(c), max_tokens=limit, truncate=truncate) for c in window.candidates]


def rankgpt_messages(query: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """RankGPT's multi-turn listwise form, asking for reasoning before the full ranking."""
    num = len(passages)
    messages = [
        {"role": "system", "content": RANKGPT_SYSTEM},
        {
            "role": "user",
            "content": f"I will provide you with {num} passages, each indicated by number identifier []. \n"
            f"Rank the passages based on their relevance to query: {query}.",
        },
        {"role": "assistant", "content": "Okay, please provide the passages."},
    ]
    for i, content in enumerate(passages, start=1):
        messages.append({"role": "user", "content": f"[{i}] {content}"})
        messages.append({"role": "assistant", "content": f"Received passage [{i}]."})
    messages.append(
        {
            "role": "user",
            "content": f"Search Query: {query}. \nRank the {num} passages above based on their relevance to the "
            "search query. Think it through inside <think> </think> first, then output the ranking of all "
            f"{num} passages in descending order of relevance using identifiers, in the format [] > [], "
            "e.g., [2] > [1].",
        }
    )
    return messages


def pointwise_messages(query: str, passages: Sequence[str], answer: str | None) -> list[dict[str, str]]:
    """Ask which passages are relevant, given the gold ``answer`` when there is one."""
    listing = "".join(f"[{i}] {p}\n" for i, p in enumerate(passages, start=1))
    gold = f"Reference answer: {answer}\n" if answer else ""
    return [
        {"role": "system", "content": "You are an expert relevance assessor for a search engine."},
        {
            "role": "user",
            "content": f"Search Query: {query}\n{gold}\nPassages:\n{listing}\n"
            "Which passages are relevant to the query, i.e. contain information that answers it"
            + (" consistently with the reference answer" if answer else "")
            + "? Think briefly, then end with one line `Relevant: [i], [j], ...` listing every relevant "
            "passage, or `Relevant: none`.",
        },
    ]


def relevant_ids(content: str, n: int) -> list[int]:
    """1-based ids from the last ``Relevant:`` line (else from the whole reply), in range, unique."""
    lines = _RELEVANT_LINE.findall(content)
    text = lines[-1] if lines else content
    return list(dict.fromkeys(i for i in map(int, _ID.findall(text)) if 1 <= i <= n))


@dataclass
class SynthConfig:
    prompt: PromptStyle = "rankgpt"
    window_size: int = 20
    step: int | None = None  # default: half a window
    first_window_only: bool = True
    samples: int = 1  # listwise samples per window (self-distillation samples several)
    temperature: float = 0.0
    max_tokens: int = R1_MAX_TOKENS
    pointwise_max_tokens: int = R1_MAX_TOKENS
    max_passage_words: int | None = 300
    # with the teacher's tokenizer: cut passages to this many tokens, as the student will see them
    # at inference (instead of max_passage_words)
    max_passage_tokens: int | None = None
    pointwise: Literal["auto", "always", "never"] = "auto"  # auto: only where qrels do not label the query
    min_rel: int = 1
    force_answer: bool = True  # reasonrank prompt, teacher with a tokenizer: force a missing <answer>


def _windows(items: list[QueryItem], config: SynthConfig) -> list[Window]:
    all_windows = list(windows(items, config.window_size, config.step or max(config.window_size // 2, 1)))
    if config.first_window_only:  # the top window of each query: the last one the engine ranks
        return [w for w in all_windows if w.start == 0]
    return all_windows


async def _synth_window(
    teacher: Teacher,
    window: Window,
    config: SynthConfig,
    qrels: dict[str, dict[str, int]] | None,
    done: set[str],
    cut: tuple[int | None, Truncate],
) -> list[dict[str, Any]]:
    item = window.item
    texts = contents(window, *cut)
    judged = qrels.get(item.qid) if qrels is not None else None
    base = window.record(teacher.model)
    usage = Usage()
    pointwise = None
    if config.pointwise == "always" or (config.pointwise == "auto" and judged is None):
        reply = await teacher.chat(
            pointwise_messages(item.query, texts, item.answer), max_tokens=config.pointwise_max_tokens
        )
        ids = relevant_ids(reply.content or reply.reasoning, len(texts))
        pointwise = {"reasoning": reply.reasoning, "content": reply.content, "ids": ids}
        _account(usage, teacher, reply)
    if judged is not None:
        relevant = [d for d in window.initial_list if judged.get(d, 0) >= config.min_rel]
        source = "qrels"
    else:
        relevant = [window.initial_list[i - 1] for i in (pointwise or {}).get("ids", [])]
        source = "teacher"
    if config.prompt == "reasonrank":
        messages = render_messages(prepare_query(item.query), texts)  # build_messages on the cut passages
    else:
        messages = rankgpt_messages(item.query, texts)
    records = []
    for sample in range(config.samples):
        rid = f"{window.key}#{sample}"
        if rid in done:
            continue
        seed = sample if config.samples > 1 else None
        reply = await teacher.chat(
            messages, max_tokens=config.max_tokens, temperature=config.temperature, seed=seed
        )
        reasoning, final = reply.reasoning, reply.content
        sample_usage = Usage(**vars(usage))
        _account(sample_usage, teacher, reply)
        forced = False
        if config.prompt == "reasonrank":  # the reply is <think>..</think> <answer>..</answer>
            text = (f"<think>{reasoning}</think>" if reasoning else "") + final
            if (
                config.force_answer
                and teacher.tokenizer is not None
                and needs_answer(text, reply.finish_reason)
            ):
                # as the core engine does: close the reasoning, open <answer>, decode only the ranking
                prefix = forcing_prefix(text)
                extra = await teacher.chat(
                    messages, max_tokens=default_answer_budget(len(texts)), temperature=config.temperature, seed=seed,
                    prefix=prefix, stop=["</answer>"],
                )  # fmt: skip
                _account(sample_usage, teacher, extra)
                closing = "</answer>" if extra.finish_reason == "stop" else ""
                text, forced = prefix + extra.content + closing, True
            reasoning, answer, _ = split_output(text)
            final = answer or ""
        records.append(
            {
                "id": rid,
                **base,
                "sample": sample,
                "relevant_docids": relevant,
                "relevant_source": source,
                "pointwise": pointwise,
                "reasoning": reasoning,
                "final_list": final,
                "finish_reason": reply.finish_reason,
                "truncated": reply.finish_reason == "length",  # the filter drops these
                "forced": forced,
                "usage": asdict(sample_usage),
            }
        )
        usage = Usage()  # the pointwise call is charged to the first sample only
    return records


def _truncation(teacher: Teacher, config: SynthConfig) -> tuple[int | None, Truncate]:
    """Passage limit and cut: tokens of the teacher's tokenizer when asked for, else words."""
    if config.max_passage_tokens is None:
        return config.max_passage_words, word_truncate
    if teacher.tokenizer is None:
        raise ValueError("max_passage_tokens cuts passages with the teacher's tokenizer: pass tokenizer=")
    return config.max_passage_tokens, tokenizer_truncate(teacher.tokenizer)


def _account(usage: Usage, teacher: Teacher, reply: Any) -> None:
    usage.calls += 1
    usage.cached += reply.cached
    if not reply.cached:
        usage.prompt_tokens += reply.prompt_tokens
        usage.completion_tokens += reply.completion_tokens
        usage.cost_usd += teacher.cost(reply)


async def synthesize(
    items: list[QueryItem],
    teacher: Teacher,
    output: str | Path,
    config: SynthConfig,
    *,
    qrels: dict[str, dict[str, int]] | None = None,
    show_progress: bool = True,
) -> Usage:
    """Append one record per window sample to ``output``, skipping those already there."""
    from tqdm.auto import tqdm

    cut = _truncation(teacher, config)  # a bad configuration fails before any request
    done = {row["id"] for row in read_jsonl(output)}
    todo = [
        w for w in _windows(items, config) if any(f"{w.key}#{s}" not in done for s in range(config.samples))
    ]
    logger.info("synth: %d windows to do, %d records already in %s", len(todo), len(done), output)
    pending = iter(todo)  # shared by the workers: windows finish (and are written) roughly in order
    with tqdm(total=len(todo), desc="synth", unit="window", disable=not show_progress) as bar:

        async def worker() -> None:
            for window in pending:
                append_jsonl(output, await _synth_window(teacher, window, config, qrels, done, cut))
                bar.update()

        await asyncio.gather(*(worker() for _ in range(max(1, min(teacher.concurrency, len(todo))))))
    return teacher.usage
