"""Backends: each lives in its own module and imports its heavy library lazily."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

from ..demo_model import is_embedded
from .base import Backend, Generation, GenerationRequest

__all__ = ["Backend", "Generation", "GenerationRequest", "BACKENDS", "load_backend", "resolve_backend"]

logger = logging.getLogger(__name__)

BACKENDS = {
    "llamacpp": "reasonrank_plugins.backends.llamacpp:LlamaCppBackend",
    "transformers": "reasonrank_plugins.backends.transformers:TransformersBackend",
    "vllm": "reasonrank_plugins.backends.vllm:VLLMBackend",
    "openai": "reasonrank_plugins.backends.openai:OpenAIBackend",
    "scripted": "reasonrank_plugins.backends.scripted:ScriptedModelBackend",  # model-free; never "auto"
}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda() -> bool:
    if not _installed("torch"):
        return False
    import torch

    return torch.cuda.is_available()


def resolve_backend(model: str, backend: str = "auto", **options: Any) -> str:
    """Pick a backend name: the embedded models (``"demo"``, ``"demo-0.5b"``, ``"demo-1.5b"``), ``.gguf`` files and hub
    GGUFs (``org/name[@rev]:file.gguf``) run on llama.cpp, a ``base_url`` means a server, otherwise
    vLLM when it and a GPU are there, else transformers."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise ValueError(f"backend must be 'auto' or one of {sorted(BACKENDS)}, got {backend!r}")
        return backend
    if options.get("base_url"):
        return "openai"
    if is_embedded(model) or str(model).endswith(".gguf") or options.get("gguf_file"):
        return "llamacpp"
    if _installed("vllm") and _cuda():
        return "vllm"
    return "transformers"


def load_backend(model: str = "demo", backend: str = "auto", **options: Any) -> Backend:
    """Construct the backend for ``model``; ``"demo"`` (the default, an alias of
    ``demo_model.DEFAULT_MODEL``), ``"demo-0.5b"`` and ``"demo-1.5b"`` are the embedded GGUFs
    (``reasonrank_plugins.demo_model``)."""
    if not isinstance(model, (str, Path)) or not str(model):
        raise ValueError(
            f"model must be an embedded name ('demo', 'demo-0.5b', 'demo-1.5b'), a local path or a hub id, got {model!r}"
        )
    name = resolve_backend(str(model), backend, **options)
    if is_embedded(model) and name == "openai":
        model = "auto"  # a server: rank with the model it serves
    if is_embedded(model) and name == "scripted":
        model = "overlap"  # the script that looks at the text
    if is_embedded(model):
        from ..demo_model import model_path

        if name != "llamacpp":
            raise ValueError(f"model={model!r} is a GGUF file and runs on backend 'llamacpp', not {name!r}")
        model = str(model_path(str(model)))
    module, _, cls = BACKENDS[name].partition(":")
    logger.info("loading %s backend for %s", name, model)
    return getattr(importlib.import_module(module), cls)(str(model), **options)
