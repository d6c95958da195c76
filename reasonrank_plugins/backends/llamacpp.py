"""llama.cpp backend (llama-cpp-python) for GGUF models; the embedded demo model runs here."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .base import GREEDY, Backend, Generation, GenerationRequest
from .rendering import continue_prompt

logger = logging.getLogger(__name__)

# ``org/name[@revision]:path/in/repo.gguf``; a local file of that name wins
HUB_GGUF = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>[^:@]+))?:(?P<file>[^:]+\.gguf)$")

# ``GREEDY`` in llama-cpp-python's names, with its other samplers off (create_completion's defaults
# are top_k 40, top_p 0.95, min_p 0.05); llama.cpp's top_k 0 is "off", as in ``GREEDY``
SAMPLING: dict[str, float | int] = {
    "temperature": GREEDY["temperature"],
    "top_p": GREEDY["top_p"],
    "top_k": GREEDY["top_k"],
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_penalty": GREEDY["repetition_penalty"],
    "presence_penalty": GREEDY["presence_penalty"],
    "frequency_penalty": GREEDY["frequency_penalty"],
    "mirostat_mode": 0,
}


def resolve_gguf(model: str) -> Path:
    """A local ``.gguf`` file, or a hub GGUF ``org/name[@revision]:file.gguf`` fetched once with
    ``huggingface_hub`` into its cache (``HF_HUB_CACHE``) at that revision (a commit, tag or branch).
    Without ``@revision`` it is ``main``, and the commit that gave is logged so it can be pinned.
    With ``HF_HUB_OFFLINE=1`` only the cache is read."""
    path = Path(model)
    if path.is_file():
        return path
    match = HUB_GGUF.match(model)
    if not match:
        raise ValueError(
            "llamacpp backend needs a local .gguf file or a hub GGUF 'org/name[@revision]:file.gguf', "
            f"got {model!r}"
        )
    repo, revision, filename = match["repo"], match["revision"], match["file"]
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as exc:
        raise ImportError(f"{model!r} is on the hub: pip install huggingface-hub") from exc
    try:
        local = Path(hf_hub_download(repo, filename, revision=revision or "main"))
    except LocalEntryNotFoundError as exc:
        raise ValueError(
            f"{filename} of {repo} at revision {revision or 'main'} is not in the Hugging Face cache "
            f"and the hub cannot be reached (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}): {exc}"
        ) from exc
    except (HfHubHTTPError, OSError) as exc:
        raise ValueError(f"cannot fetch {filename} of {repo} at revision {revision or 'main'}: {exc}") from exc
    if not revision:  # the cache keeps it as snapshots/<commit>/<filename>
        commit = local.parents[len(Path(filename).parts) - 1].name
        logger.warning("%s: no revision given, used main (commit %s); pin it as %s@%s:%s",
                       repo, commit, repo, commit, filename)
    return local


def available_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota
    (``cpu.max``, as a container's ``--cpus`` sets it); ``os.cpu_count()`` counts the host's."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


class LlamaCppBackend(Backend):
    """One GGUF model in process. llama.cpp decodes one sequence at a time here, so windows are
    served in turn from a single worker thread; the prompt prefix shared with the previous call
    (for a forced answer, the whole prompt) is reused from the KV cache. ``context_length`` is
    ``n_ctx``; ``capacity`` is 1. ``n_threads`` defaults to the cores this process may use
    (``available_cores``). A larger ``n_batch`` and a second context were measured on 2 cores and
    did not pay (``benchmarks/cpu_speed.py``, docs/results.md); flash attention (``flash_attn=True``)
    was 1.10-1.12x faster per window there but stays off, because it changes the numerics the
    measured quality figures were taken with. Any llama.cpp option passes through."""

    name = "llamacpp"

    def __init__(
        self,
        model: str,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_batch: int = 512,
        chat_template: str | None = None,
        seed: int = 0,
        **llama_kwargs: Any,
    ) -> None:
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise ImportError("the llamacpp backend needs: pip install 'reasonrank-plugins[llamacpp]'") from exc
        path = resolve_gguf(model)
        self.model_name = path.name
        self.llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads or available_cores(),
            n_batch=n_batch,
            seed=seed,
            verbose=False,
            **llama_kwargs,
        )
        self.context_length = self.llm.n_ctx()
        self.capacity = 1
        template = chat_template or self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{path.name} has no chat template; pass chat_template=")
        vocab = self.llm._model
        self._bos = vocab.token_get_text(self.llm.token_bos()) if self.llm.token_bos() >= 0 else ""
        # llama.cpp's own BOS, when the model wants one; a template's BOS text is taken off the prompt
        self._bos_ids = [self.llm.token_bos()] if self._bos and vocab.add_bos_token() else []
        self._formatter = Jinja2ChatFormatter(
            template,
            eos_token=vocab.token_get_text(self.llm.token_eos()),
            bos_token=self._bos,
            add_generation_prompt=True,
        )
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")

    def render(self, request: GenerationRequest) -> str:
        """The chat-template prompt with the generation prompt, less a leading BOS, then the
        assistant prefix (see ``continue_prompt``)."""
        return continue_prompt(self._formatter(messages=request.messages).prompt, request.prefix, self._bos)

    def _tokens(self, request: GenerationRequest) -> list[int]:
        text = self.render(request).encode("utf-8")
        return self._bos_ids + self.llm.tokenize(text, add_bos=False, special=True)

    def count_tokens(self, request: GenerationRequest) -> int:
        return len(self._tokens(request))

    def _complete(self, request: GenerationRequest) -> Generation:
        out = self.llm.create_completion(
            self._tokens(request),
            max_tokens=request.max_tokens,
            stop=list(request.stop) or None,
            **SAMPLING,
        )
        choice, usage = out["choices"][0], out["usage"]
        return Generation(
            text=choice["text"],
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            finish_reason=choice["finish_reason"] or "stop",
        )

    async def generate(self, request: GenerationRequest) -> Generation:
        return await asyncio.get_running_loop().run_in_executor(self._worker, self._complete, request)

    def truncate(self, text: str, max_tokens: int) -> str:
        tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        if len(tokens) <= max_tokens:
            return text
        return self.llm.detokenize(tokens[:max_tokens]).decode("utf-8", errors="ignore")

    def close(self) -> None:
        if getattr(self, "llm", None) is not None:
            self._worker.shutdown(wait=True)
            self.llm.close()
            self.llm = None
