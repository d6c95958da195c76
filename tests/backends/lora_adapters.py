"""LoRA adapters for the vLLM tests (the base model is ``demo_model_folder()``, the demo GGUF
dequantised to a Hugging Face folder)."""

from __future__ import annotations

from pathlib import Path


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
