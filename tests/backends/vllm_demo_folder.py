"""A Hugging Face model folder (float32) made once from the embedded demo GGUF, for vLLM tests.

vLLM on CPU cannot load GGUF, so the demo Qwen2.5-Coder-0.5B-Instruct is dequantised with
transformers (``gguf_file=``) and saved next to the GGUF in the reasonrank cache. The tokenizer
is the exact Qwen2.5 one from ``make_qwen25_tokenizer`` (checked against the GGUF's own
vocabulary), which skips the slow GGUF tokenizer conversion. Run as a script to build it:
``python tests/backends/vllm_demo_folder.py``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from reasonrank_plugins.demo_model import cache_dir, demo_model_path
from reasonrank_plugins.testing import make_qwen25_tokenizer

FOLDER_NAME = "qwen2.5-coder-0.5b-instruct-hf-fp32"
EOS_IDS = [151645, 151643]  # <|im_end|>, <|endoftext|>
SAMPLE = "Rank [1] > [2]: BM25 überholt TF-IDF? <think>ok</think>\n<answer>[3] > [1]</answer> 数字 ١٢٣"


def demo_folder() -> Path:
    return cache_dir() / FOLDER_NAME


def _check_tokenizer(tokenizer: object, gguf: Path) -> None:
    """The Qwen2.5 tokenizer must give the GGUF vocabulary's ids (checked with llama.cpp if present)."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return
    llm = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    try:
        ours = tokenizer.encode(SAMPLE, add_special_tokens=False)  # type: ignore[attr-defined]
        theirs = llm.tokenize(SAMPLE.encode(), add_bos=False, special=True)
    finally:
        llm.close()
    if ours != theirs:
        raise RuntimeError(f"Qwen2.5 tokenizer does not match {gguf.name}: {ours} != {theirs}")


def build_demo_folder(target: Path | None = None) -> Path:
    """Build the folder once (about a minute); later calls return the cached one."""
    target = target or demo_folder()
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = demo_model_path()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    make_qwen25_tokenizer(tmp)
    tokenizer = AutoTokenizer.from_pretrained(tmp)
    _check_tokenizer(tokenizer, gguf)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are dequantised: save them as plain float32
    model.config.__dict__.pop("quantization_config", None)
    model.generation_config.eos_token_id = EOS_IDS
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    config = json.loads((tmp / "config.json").read_text())
    config["eos_token_id"] = EOS_IDS[0]
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def make_lora_adapters(model_dir: Path, out: Path, rank: int = 8) -> tuple[Path, Path]:
    """Two PEFT LoRA adapters on q_proj/v_proj: a no-op one (B = 0, PEFT's default init) and a
    random one (seeded) that changes the model's output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    paths = []
    for name, init in (("noop", True), ("random", False)):
        torch.manual_seed(0)
        config = LoraConfig(
            r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], init_lora_weights=init
        )
        peft_model = get_peft_model(model, config)
        peft_model.save_pretrained(out / name)
        model = peft_model.unload()
        paths.append(out / name)
    return paths[0], paths[1]


if __name__ == "__main__":
    sys.stdout.write(f"{build_demo_folder()}\n")
