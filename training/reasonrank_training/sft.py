"""Stage 3: cold-start SFT with TRL's SFTTrainer on the completion only (full or LoRA)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .data import read_jsonl
from .examples import sft_example
from .presets import SFT_PRESETS, for_this_machine, lora_settings, preset

logger = logging.getLogger(__name__)


@dataclass
class SFTResult:
    output_dir: str
    examples: int
    lora: bool
    loss_before: float | None  # mean completion loss on the training set, before and after
    loss_after: float | None
    losses: list[float] = field(default_factory=list)  # logged training losses, in order


def lora_config(r: int = 16, alpha: int = 32, dropout: float = 0.05) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )


def last_checkpoint(output_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


def load_tokenizer(model: str, tokenizer: str | None = None) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer or model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def train_sft(
    data: str | Path,
    model: str,
    output_dir: str | Path,
    *,
    preset_name: str = "cpu-smoke",
    lora: bool | None = None,
    lora_r: int | None = None,
    lora_alpha: int | None = None,
    max_passage_tokens: int = 512,
    tokenizer: str | None = None,
    measure_loss: bool = True,
    seed: int = 0,
    **overrides: Any,
) -> SFTResult:
    """Train on the filtered records in ``data``; resumes from the last checkpoint in ``output_dir``.
    ``lora=None`` follows the preset (32b: LoRA r32, alpha 32)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    lora, lora_r, lora_alpha = lora_settings(preset_name, lora, lora_r, lora_alpha)
    tok = load_tokenizer(model, tokenizer)
    records = read_jsonl(data)
    if not records:
        raise ValueError(f"no training records in {data}")
    dataset = Dataset.from_list([sft_example(r, tok, max_passage_tokens) for r in records])
    config = SFTConfig(
        output_dir=str(output_dir),
        report_to="none",
        seed=seed,
        completion_only_loss=True,
        **for_this_machine(preset(SFT_PRESETS, preset_name, **overrides)),
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        eval_dataset=dataset if measure_loss else None,  # the same examples: is the loss going down?
        processing_class=tok,
        peft_config=lora_config(lora_r, lora_alpha) if lora else None,
    )
    before = trainer.evaluate(metric_key_prefix="before")["before_loss"] if measure_loss else None
    trainer.train(resume_from_checkpoint=last_checkpoint(output_dir))
    after = trainer.evaluate(metric_key_prefix="after")["after_loss"] if measure_loss else None
    trainer.save_model(str(output_dir))
    tok.save_pretrained(str(output_dir))
    result = SFTResult(
        str(output_dir),
        len(dataset),
        lora,
        before,
        after,
        [h["loss"] for h in trainer.state.log_history if "loss" in h],
    )
    summary = {
        "stage": "sft",
        "base_model": model,
        "data": str(data),
        "preset": preset_name,
        **asdict(result),
    }
    (Path(output_dir) / "training_summary.json").write_text(json.dumps(summary, indent=1))
    logger.info("sft: loss %.4f -> %.4f on %d examples", before or 0, after or 0, len(dataset))
    return result
