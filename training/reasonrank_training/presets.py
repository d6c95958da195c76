"""Hyperparameter presets: the paper's 7B and 32B recipes and CPU smoke runs (keyword arguments of
TRL's ``SFTConfig`` / ``GRPOConfig``; command-line options override them).

Sources: the authors' LLaMA-Factory configs (README of 8421BCD/ReasonRank, ``qwen_full_sft.yaml`` and
``qwen_lora_sft.yaml``) and verl scripts (``verl/train_grpo.sh``, ``verl/train_grpo_lora.sh``, with
verl 0.4's ``ppo_trainer.yaml`` defaults: constant LR, no warm-up, weight decay 0.01, clip 0.2,
one PPO epoch, token-mean loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_CHECKPOINTS = {"save_only_model": True, "save_total_limit": 3}  # a 7B checkpoint is ~15 GB

SFT_PRESETS: dict[str, dict[str, Any]] = {
    # cold-start SFT of Qwen2.5-7B-Instruct, full fine-tuning (qwen_full_sft.yaml)
    "7b": {
        "learning_rate": 5e-6,
        "num_train_epochs": 5,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.1,  # a float below 1 is a ratio of the training steps (warmup_ratio 0.1)
        "bf16": True,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 8,
        "max_length": 23552,  # cutoff_len
        "gradient_checkpointing": True,
        "logging_steps": 10,
        "save_strategy": "epoch",
        **_CHECKPOINTS,
    },
    # Qwen2.5-32B-Instruct with LoRA r32, alpha 32 on all linear layers (qwen_lora_sft.yaml; LORA_PRESETS)
    "32b": {
        "learning_rate": 1e-4,
        "num_train_epochs": 7,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.1,
        "bf16": True,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 8,
        "max_length": 23552,
        "gradient_checkpointing": True,
        "logging_steps": 10,
        "save_strategy": "epoch",
        **_CHECKPOINTS,
    },
    # seconds on a CPU with a tiny model; also the base for small real runs on CPU
    "cpu-smoke": {
        "learning_rate": 1e-3,
        "num_train_epochs": 3,
        "lr_scheduler_type": "constant",
        "bf16": False,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "max_length": 4096,
        "gradient_checkpointing": False,
        "logging_steps": 1,
        "save_strategy": "no",
    },
}


@dataclass(frozen=True)
class PaperBatch:
    """verl's GRPO batch: ``prompts_per_step`` prompts (``data.train_batch_size``) with
    ``num_generations`` rollouts each (``rollout.n``), one policy update per ``mini_batch_prompts``
    prompts (``ppo_mini_batch_size``, counted in prompts), ``micro_batch`` completions a GPU a
    forward pass (``ppo_micro_batch_size_per_gpu``), ``steps`` such steps."""

    prompts_per_step: int = 16
    num_generations: int = 8
    mini_batch_prompts: int = 8
    micro_batch: int = 1
    steps: int = 200

    @property
    def updates_per_generation(self) -> int:
        return self.prompts_per_step // self.mini_batch_prompts


def grpo_batch(batch: PaperBatch, num_processes: int) -> dict[str, Any]:
    """TRL arguments with verl's policy updates on ``num_processes`` processes.

    TRL generates ``per_device_train_batch_size * num_processes * steps_per_generation`` completions
    at once and steps the optimizer every ``gradient_accumulation_steps`` micro-batches, so one
    update of ``mini_batch_prompts * num_generations`` completions needs that many over
    ``micro_batch * num_processes`` accumulation steps, and a generation of ``prompts_per_step``
    prompts holds ``updates_per_generation`` updates. ``max_steps`` counts optimizer updates.
    """
    completions = batch.mini_batch_prompts * batch.num_generations
    per_pass = batch.micro_batch * num_processes
    if num_processes < 1 or completions % per_pass or batch.prompts_per_step % batch.mini_batch_prompts:
        raise ValueError(
            f"{batch.mini_batch_prompts} prompts x {batch.num_generations} rollouts an update do not split "
            f"over {num_processes} processes x {batch.micro_batch}, or {batch.prompts_per_step} prompts a "
            f"step are no whole number of updates"
        )
    accumulation = completions // per_pass
    return {
        "num_generations": batch.num_generations,
        "per_device_train_batch_size": batch.micro_batch,
        "gradient_accumulation_steps": accumulation,
        "steps_per_generation": accumulation * batch.updates_per_generation,
        "num_iterations": 1,  # ppo_epochs
        "max_steps": batch.steps * batch.updates_per_generation,
    }


_GRPO_PAPER = {
    "beta": 0.001,  # kl_loss_coef (low_var_kl is TRL's k3 estimator)
    "epsilon": 0.2,  # clip_ratio
    "loss_type": "dapo",  # verl's token-mean over the mini-batch
    "temperature": 1.0,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "weight_decay": 0.01,
    "max_completion_length": 3072,  # data.max_response_length
    "bf16": True,
    "gradient_checkpointing": True,
    "use_vllm": True,
    "vllm_mode": "colocate",
    "logging_steps": 1,
    "save_steps": 50,
    **_CHECKPOINTS,
}

GRPO_PRESETS: dict[str, dict[str, Any]] = {
    "7b": {**_GRPO_PAPER, "learning_rate": 1e-6},  # train_grpo.sh
    "32b": {**_GRPO_PAPER, "learning_rate": 1e-5},  # train_grpo_lora.sh (LoRA r32, alpha 32)
    "cpu-smoke": {
        "num_generations": 4,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "beta": 0.001,
        "temperature": 1.0,
        "learning_rate": 1e-4,
        "max_completion_length": 48,
        "max_steps": 1,
        "bf16": False,
        "gradient_checkpointing": False,
        "use_vllm": False,
        "logging_steps": 1,
        "save_strategy": "no",
    },
}
GRPO_BATCHES: dict[str, PaperBatch] = {"7b": PaperBatch(), "32b": PaperBatch()}

# presets trained as LoRA adapters: (r, alpha)
LORA_PRESETS: dict[str, tuple[int, int]] = {"32b": (32, 32)}


def preset(table: dict[str, dict[str, Any]], name: str, **overrides: Any) -> dict[str, Any]:
    if name not in table:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(table)}")
    return {**table[name], **{k: v for k, v in overrides.items() if v is not None}}


def grpo_preset(name: str, num_processes: int, **overrides: Any) -> dict[str, Any]:
    """``GRPOConfig`` arguments of preset ``name`` for ``num_processes`` training processes."""
    batch = grpo_batch(GRPO_BATCHES[name], num_processes) if name in GRPO_BATCHES else {}
    return preset(GRPO_PRESETS, name, **{**batch, **{k: v for k, v in overrides.items() if v is not None}})


def for_this_machine(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``use_cpu`` set where it asks for bf16 and no GPU can run it: transformers refuses
    bf16 on a CPU otherwise, though torch runs it there (autocast; with AMX a step is about 1.7x faster)."""
    from transformers.utils import is_torch_bf16_gpu_available

    if config.get("bf16") and not config.get("use_cpu") and not is_torch_bf16_gpu_available():
        return {**config, "use_cpu": True}
    return config


def checkpoint_every(save_steps: int | None) -> dict[str, Any]:
    """Trainer arguments that save a checkpoint every ``save_steps`` steps (None: the preset's own)."""
    if save_steps is None:
        return {}
    if save_steps < 1:
        raise ValueError(f"save_steps must be at least 1, got {save_steps}")
    return {"save_strategy": "steps", "save_steps": save_steps}


def lora_settings(name: str, lora: bool | None, r: int | None, alpha: int | None) -> tuple[bool, int, int]:
    """(use LoRA, r, alpha): a LoRA preset turns LoRA on unless ``lora`` is False; alpha defaults to 2r."""
    preset_r, preset_alpha = LORA_PRESETS.get(name, (16, None))
    use = (name in LORA_PRESETS) if lora is None else lora
    r = r or preset_r
    return use, r, alpha or preset_alpha or 2 * r
