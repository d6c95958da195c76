"""Hyperparameter presets: the paper's 7B recipe and CPU smoke runs (keyword arguments of TRL's
``SFTConfig`` / ``GRPOConfig``; command-line options override them)."""

from __future__ import annotations

from typing import Any

SFT_PRESETS: dict[str, dict[str, Any]] = {
    # ReasonRank cold-start SFT of Qwen2.5-7B-Instruct (paper, section 4.1)
    "7b": {
        "learning_rate": 5e-6,
        "num_train_epochs": 5,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.1,
        "bf16": True,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 8,
        "max_length": 23000,
        "gradient_checkpointing": True,
        "logging_steps": 10,
        "save_strategy": "epoch",
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

GRPO_PRESETS: dict[str, dict[str, Any]] = {
    # 8 processes x 8 completions x 2 accumulation = 128 = 16 prompts x 8 rollouts a step (TRL
    # counts completions); with another number of processes adjust --grad-accum to match.
    "7b": {
        "num_generations": 8,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 2,
        "beta": 0.001,
        "temperature": 1.0,
        "learning_rate": 1e-6,
        "max_completion_length": 3072,
        "max_steps": 200,
        "bf16": True,
        "gradient_checkpointing": True,
        "use_vllm": True,
        "vllm_mode": "colocate",
        "logging_steps": 1,
        "save_steps": 50,
    },
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


def preset(table: dict[str, dict[str, Any]], name: str, **overrides: Any) -> dict[str, Any]:
    if name not in table:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(table)}")
    return {**table[name], **{k: v for k, v in overrides.items() if v is not None}}
