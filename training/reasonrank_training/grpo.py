"""Stage 4: GRPO with TRL's GRPOTrainer on single windows and the multi-view ranking reward."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .data import read_jsonl
from .examples import grpo_example
from .presets import for_this_machine, grpo_preset, lora_settings
from .reward import ranking_reward

logger = logging.getLogger(__name__)


@dataclass
class GRPOResult:
    output_dir: str
    prompts: int
    steps: int
    rewards: list[float] = field(default_factory=list)  # mean reward of each logged step
    reward_stds: list[float] = field(default_factory=list)


def completion_text(completion: Any) -> str:
    """TRL passes chat completions as ``[{"role": "assistant", "content": ...}]``."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion)
    return str(completion)


def make_reward(ndcg_weight: float = 1.0, recall_weight: float = 0.2, rbo_weight: float = 0.1) -> Any:
    """A TRL reward function over the dataset's ``initial_list``, ``relevant_docids``, ``gold_list``."""

    def ranking(completions: list[Any], initial_list: list, relevant_docids: list, gold_list: list, **_: Any):
        return [
            ranking_reward(
                completion_text(c),
                initial_list=il,
                relevant_docids=rd,
                gold_list=gl,
                ndcg_weight=ndcg_weight,
                recall_weight=recall_weight,
                rbo_weight=rbo_weight,
            )
            for c, il, rd, gl in zip(completions, initial_list, relevant_docids, gold_list, strict=True)
        ]

    return ranking


def policy_folder(model: str | Path, output_dir: str | Path) -> str:
    """A folder with the full SFT weights to start a full-weight GRPO run from.

    An SFT LoRA adapter folder is merged once into ``output_dir/sft-merged``: TRL builds the
    reference model of a full fine-tune from the policy's ``config._name_or_path``, which for a model
    merged in memory is the base model, so the KL term would pull towards the base, not the SFT
    model.
    """
    if not (Path(model) / "adapter_config.json").exists():
        return str(model)
    from .export import load_merged
    from .sft import load_tokenizer

    merged = Path(output_dir) / "sft-merged"
    if not (merged / "config.json").exists():
        load_merged(model).save_pretrained(str(merged))
        load_tokenizer(str(model)).save_pretrained(str(merged))
    return str(merged)


def world_size() -> int:
    """Training processes of this launch (``accelerate launch`` / ``torchrun`` set ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def train_grpo(
    data: str | Path,
    model: str,
    output_dir: str | Path,
    *,
    preset_name: str = "cpu-smoke",
    lora: bool | None = None,
    lora_r: int | None = None,
    lora_alpha: int | None = None,
    max_passage_tokens: int = 512,
    ndcg_weight: float = 1.0,
    recall_weight: float = 0.2,
    rbo_weight: float = 0.1,
    seed: int = 0,
    **overrides: Any,
) -> GRPOResult:
    """RL from ``model`` (a folder, LoRA adapters merged first: :func:`policy_folder`) on the records
    in ``data``. The 7b/32b presets fit verl's batch to :func:`world_size` processes."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from .export import load_merged
    from .sft import last_checkpoint, load_tokenizer, lora_config

    lora, lora_r, lora_alpha = lora_settings(preset_name, lora, lora_r, lora_alpha)
    # with new LoRA adapters TRL's reference is the policy with them disabled: the SFT model merged in memory
    source, model = model, (str(model) if lora else policy_folder(model, output_dir))
    tok = load_tokenizer(model)
    records = read_jsonl(data)
    if not records:
        raise ValueError(f"no training records in {data}")
    dataset = Dataset.from_list([grpo_example(r, tok, max_passage_tokens) for r in records])
    config = GRPOConfig(
        output_dir=str(output_dir),
        report_to="none",
        seed=seed,
        **for_this_machine(grpo_preset(preset_name, world_size(), **overrides)),
    )
    trainer = GRPOTrainer(
        model=load_merged(model),
        reward_funcs=make_reward(ndcg_weight, recall_weight, rbo_weight),
        args=config,
        train_dataset=dataset,
        processing_class=tok,
        peft_config=lora_config(lora_r, lora_alpha) if lora else None,
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(output_dir))
    trainer.save_model(str(output_dir))
    tok.save_pretrained(str(output_dir))
    logged = [h for h in trainer.state.log_history if "reward" in h]
    result = GRPOResult(
        str(output_dir),
        len(dataset),
        trainer.state.global_step,
        [h["reward"] for h in logged],
        [h.get("reward_std", 0.0) for h in logged],
    )
    summary = {
        "stage": "grpo",
        "base_model": source,
        "data": str(data),
        "preset": preset_name,
        **asdict(result),
    }
    (Path(output_dir) / "training_summary.json").write_text(json.dumps(summary, indent=1))
    return result
