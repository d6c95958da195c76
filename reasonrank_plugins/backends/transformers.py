"""Hugging Face transformers backend: local folder or hub id, micro-batched greedy ``generate``."""

from __future__ import annotations

import logging
from typing import Any

from .base import Backend, Generation, GenerationRequest
from .batching import MicroBatcher

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


class TransformersBackend(Backend):
    """Concurrent windows are gathered into batches of up to ``batch_size`` (left padding)."""

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
        **model_kwargs: Any,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise ImportError(
                "the transformers backend needs: pip install 'reasonrank-plugins[transformers]'"
            ) from exc
        self.model_name = model
        self.device = _pick_device(device)
        self.dtype = _pick_dtype(dtype, self.device)
        self._torch = torch
        load = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(
            tokenizer or model, trust_remote_code=trust_remote_code, **({} if tokenizer else load)
        )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            model, dtype=self.dtype, trust_remote_code=trust_remote_code, **load, **model_kwargs
        )
        if adapter:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, adapter)
        self.model.to(self.device).eval()
        self._batcher = MicroBatcher(self._run_batch, batch_size, thread_name="transformers")
        logger.info("transformers backend: %s on %s (%s)", model, self.device, self.dtype)

    @property
    def batch_sizes(self) -> list[int]:
        return self._batcher.batch_sizes

    def render(self, request: GenerationRequest) -> str:
        prompt = self.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
        return prompt + request.prefix

    def _run_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        torch = self._torch
        enc = self.tokenizer(
            [self.render(r) for r in requests], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=max(r.max_tokens for r in requests),
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        width = enc["input_ids"].shape[1]
        results = []
        for row, request in enumerate(requests):
            tokens = out[row, width:].tolist()[: request.max_tokens]
            ended = next((i for i, t in enumerate(tokens) if t in eos_ids), None)
            finish = "stop" if ended is not None else ("length" if len(tokens) >= request.max_tokens else "stop")
            tokens = tokens[:ended] if ended is not None else tokens
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
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
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) <= max_tokens:
            return text
        return self.tokenizer.decode(ids[:max_tokens])

    def close(self) -> None:
        if getattr(self, "model", None) is None:
            return
        self._batcher.close()
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
