"""Prompt rendering, counting and truncation with a Hugging Face tokenizer, shared by every backend.

The chat template renders the messages with the generation prompt; a leading BOS the template
writes is taken off the text (whoever tokenizes it adds the BOS back: a server, llama.cpp, or
``ChatRenderer.encode``), so the model sees exactly one. A ``<think>`` prefix is not repeated after
a template that already opened ``<think>``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..prompt import finalize_prompt
from .base import GenerationRequest

__all__ = ["ChatRenderer", "continue_prompt", "find_tokenizer", "load_tokenizer"]

logger = logging.getLogger(__name__)

THINK = "<think>"


def continue_prompt(prompt: str, prefix: str, bos_token: str | None = None) -> str:
    """``prompt`` (a rendered chat template ending in the generation prompt) continued by the
    assistant ``prefix``: the rendered prompt gets the reference's final ftfy pass
    (``prompt.finalize_prompt``; never the model's own output in ``prefix``), a leading ``bos_token``
    is dropped, and a ``<think>`` opening the prefix is dropped when the template already opened one."""
    prompt = finalize_prompt(prompt)
    if bos_token and prompt.startswith(bos_token):
        prompt = prompt[len(bos_token) :]
    if prefix.startswith(THINK) and prompt.rstrip("\n").endswith(THINK):
        prefix = prefix[len(THINK) :].lstrip("\n")
    return prompt + prefix


class ChatRenderer:
    """Renders, encodes, counts and truncates with one tokenizer, serialised by a lock: a Hugging Face
    fast tokenizer raises "Already borrowed" when two threads use it at once with different
    padding or truncation settings, so every call here holds the lock."""

    def __init__(self, tokenizer: Any) -> None:
        if not callable(getattr(tokenizer, "apply_chat_template", None)):
            msg = f"tokenizer must be a Hugging Face tokenizer (with apply_chat_template), got {tokenizer!r}"
            raise ValueError(msg)  # noqa: TRY004 - bad input is a ValueError here
        self.tokenizer = tokenizer
        self._lock = threading.RLock()
        self._bos_id: int | None = None  # set when the template writes a BOS: encode adds it back
        self._probed = False

    def render(self, messages: list[dict[str, str]], prefix: str = "") -> str:
        """The chat template with the generation prompt, less a leading BOS, then ``prefix``."""
        with self._lock:
            prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            bos = self.tokenizer.bos_token
            if bos and prompt.startswith(bos):
                self._bos_id = self.tokenizer.bos_token_id
            self._probed = True
        return continue_prompt(prompt, prefix, bos)

    def encode(self, prompt: str) -> list[int]:
        """The token ids the model reads for a rendered ``prompt``: the template's BOS (when it has
        one), then the text with its special tokens parsed and nothing else added."""
        with self._lock:
            if not self._probed:  # learn whether the template writes a BOS
                self.render([{"role": "user", "content": "x"}])
            ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        return ids if self._bos_id is None else [self._bos_id, *ids]

    def count(self, request: GenerationRequest) -> int:
        """Prompt tokens of ``request`` as rendered."""
        return len(self.encode(self.render(request.messages, request.prefix)))

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to its first ``max_tokens`` tokens (special tokens are not added)."""
        with self._lock:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            return text if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens])

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        with self._lock:
            return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def batch(self, prompts: Sequence[str], return_tensors: str = "pt") -> Any:
        """The rendered ``prompts`` encoded and padded on the tokenizer's padding side into one batch
        (``input_ids`` and ``attention_mask``)."""
        encoded = [{"input_ids": self.encode(p)} for p in prompts]
        with self._lock:
            return self.tokenizer.pad(encoded, padding=True, return_tensors=return_tensors)


def load_tokenizer(spec: Any, **options: Any) -> Any:
    """A tokenizer from ``spec``: a tokenizer object (returned as is), a local folder, or a hub id
    (read from the Hugging Face cache when ``HF_HUB_OFFLINE=1``). ``options`` go to
    ``AutoTokenizer.from_pretrained``."""
    if not isinstance(spec, (str, Path)):
        return spec
    if not str(spec):
        raise ValueError("tokenizer must be a local folder, a hub id or a tokenizer, got ''")
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise ImportError("loading a tokenizer needs: pip install transformers") from exc
    return AutoTokenizer.from_pretrained(str(spec), **options)


def find_tokenizer(model: str) -> tuple[Any, str | None]:
    """The tokenizer of ``model`` when it is a local folder or a hub id in the local Hugging Face
    cache (never downloaded), else ``None`` with the reason. Any failure to load is such a reason:
    the caller falls back and warns."""
    if Path(model).is_dir():
        try:
            return load_tokenizer(model), None
        except Exception as exc:  # noqa: BLE001 - transformers raises many kinds for a bad folder
            return None, f"the folder {model} has no tokenizer that loads ({exc})"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None, "huggingface_hub is not installed"
    try:
        cached = try_to_load_from_cache(model, "tokenizer_config.json")
    except ValueError:  # not a valid hub id
        return None, f"{model!r} is neither a local folder nor a hub id"
    if not isinstance(cached, str):
        return None, f"{model!r} is not a local folder and not in the Hugging Face cache"
    try:
        return load_tokenizer(model, local_files_only=True), None
    except Exception as exc:  # noqa: BLE001
        return None, f"the cached {model} has no tokenizer that loads ({exc})"
