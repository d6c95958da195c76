"""Make the student: the demo GGUF dequantised to a float32 Hugging Face folder (once, ~1 min).

The tokenizer is the exact Qwen2.5 one from ``reasonrank_plugins.testing.make_qwen25_tokenizer``
(it gives the GGUF vocabulary's ids), which skips transformers' slow GGUF tokenizer conversion.
Prints the folder. Usage: ``python prepare.py [TARGET]`` (default: the reasonrank cache).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from reasonrank_plugins.demo_model import cache_dir, demo_model_path
from reasonrank_plugins.testing import make_qwen25_tokenizer

EOS_IDS = [151645, 151643]  # <|im_end|>, <|endoftext|>


def build(target: Path) -> Path:
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM

    gguf = demo_model_path()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    make_qwen25_tokenizer(tmp)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # dequantised: save plain float32 weights
    model.config.__dict__.pop("quantization_config", None)
    model.generation_config.eos_token_id = EOS_IDS
    model.save_pretrained(tmp)
    config = json.loads((tmp / "config.json").read_text())
    config["eos_token_id"] = EOS_IDS[0]
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


if __name__ == "__main__":
    default = cache_dir() / "qwen2.5-coder-0.5b-instruct-hf-fp32"
    sys.stdout.write(f"{build(Path(sys.argv[1]) if len(sys.argv) > 1 else default)}\n")
