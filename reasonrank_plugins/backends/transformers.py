"""Hugging Face transformers backend: local folder or hub id, micro-batched greedy ``generate``."""

from __future__ import annotations

import logging
from typing import Any

from .base import GREEDY, Backend, Generation, GenerationRequest
from .batching import MicroBatcher
from .rendering import ChatRenderer, load_tokenizer

logger = logging.getLogger(__name__)


def _pick_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _pick_dtype(dtype: Any, device: str) -> Any:
    import torch

    if dtype != "auto":
        return getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32  # bf16 kernels are slow on CPU


def greedy_generation_config(source: Any) -> Any:
    """A generation config with ``source``'s special token ids and greedy decoding, and nothing else
    from it: a ``generation_config.json`` that sets ``repetition_penalty`` (Qwen2.5: 1.05), sampling
    or n-gram blocking must not change the output. Sampling warpers (``top_k``, ``top_p``,
    temperature) do not run with ``do_sample=False``."""
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=source.bos_token_id,
        eos_token_id=source.eos_token_id,
        pad_token_id=source.pad_token_id,
        do_sample=False,
        num_beams=1,
        top_p=GREEDY["top_p"],
        repetition_penalty=GREEDY["repetition_penalty"],
    )


class TransformersBackend(Backend):
    """Concurrent windows are gathered into batches of up to ``batch_size`` (left padding), decoded
    exactly greedy whatever the model's ``generation_config.json`` says.

    ``context_length`` defaults to the config's ``max_position_embeddings``."""

    name = "transformers"

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: Any = "auto",
        batch_size: int = 8,
        tokenizer: str | None = None,
        gguf_file: str | None = None,
        adapter: str | None = None,
        trust_remote_code: bool = False,
        context_length: int | None = None,
        **model_kwargs: Any,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM
        except ImportError as exc:
            raise ImportError(
                "the transformers backend needs: pip install 'reasonrank-plugins[transformers]'"
            ) from exc
        if context_length is not None and context_length < 1:
            raise ValueError(f"context_length must be >= 1, got {context_length}")
        self.model_name = model
        self.device = _pick_device(device)
        self.dtype = _pick_dtype(dtype, self.device)
        self._torch = torch
        load = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = load_tokenizer(
            tokenizer or model, trust_remote_code=trust_remote_code, **({} if tokenizer else load)
        )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.renderer = ChatRenderer(self.tokenizer)
        self.model = AutoModelForCausalLM.from_pretrained(
            model, dtype=self.dtype, trust_remote_code=trust_remote_code, **load, **model_kwargs
        )
        self.model.generation_config = greedy_generation_config(self.model.generation_config)
        if adapter:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, adapter)
        self.model.to(self.device).eval()
        self.context_length = context_length or getattr(self.model.config, "max_position_embeddings", None)
        self.capacity = batch_size
        self._batcher = MicroBatcher(self._run_batch, batch_size, thread_name="transformers")
        logger.info("transformers backend: %s on %s (%s)", model, self.device, self.dtype)

    @property
    def batch_sizes(self) -> list[int]:
        return self._batcher.batch_sizes

    def render(self, request: GenerationRequest) -> str:
        return self.renderer.render(request.messages, request.prefix)

    def _run_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        torch = self._torch
        enc = self.renderer.batch([self.render(r) for r in requests]).to(self.device)
        eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=max(r.max_tokens for r in requests),
                pad_token_id=self.tokenizer.pad_token_id,
            )
        width = enc["input_ids"].shape[1]
        results = []
        for row, request in enumerate(requests):
            tokens = out[row, width:].tolist()[: request.max_tokens]
            ended = next((i for i, t in enumerate(tokens) if t in eos_ids), None)
            finish = "stop" if ended is not None else ("length" if len(tokens) >= request.max_tokens else "stop")
            tokens = tokens[:ended] if ended is not None else tokens
            text = self.renderer.decode(tokens)
            for stop in request.stop:
                if stop in text:
                    text, finish = text.split(stop)[0], "stop"
            results.append(
                Generation(
                    text=text,
                    prompt_tokens=int(enc["attention_mask"][row].sum()),
                    completion_tokens=len(tokens) + (ended is not None),
                    finish_reason=finish,
                )
            )
        return results

    async def generate(self, request: GenerationRequest) -> Generation:
        return await self._batcher.submit(request)

    def truncate(self, text: str, max_tokens: int) -> str:
        return self.renderer.truncate(text, max_tokens)

    def count_tokens(self, request: GenerationRequest) -> int:
        return self.renderer.count(request)

    def close(self) -> None:
        if getattr(self, "model", None) is None:
            return
        self._batcher.close()
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
