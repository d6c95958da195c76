"""The paper presets as TRL builds them: batch arithmetic for 8 processes, scheduler, checkpoints,
LoRA, and the reference model of GRPO after a LoRA SFT."""

from __future__ import annotations

import pytest
from reasonrank_training.presets import (
    GRPO_PRESETS,
    SFT_PRESETS,
    PaperBatch,
    checkpoint_every,
    for_this_machine,
    grpo_batch,
    grpo_preset,
    lora_settings,
    preset,
)


@pytest.fixture
def eight_processes(monkeypatch):
    """TrainingArguments read the world size from the launched process group; here TRL's own
    batch checks see 8 processes without launching any."""
    from trl import GRPOConfig

    monkeypatch.setattr(GRPOConfig, "world_size", property(lambda self: 8))
    return 8


def grpo_config(tmp_path, name: str, processes: int, **overrides):
    from trl import GRPOConfig

    kwargs = grpo_preset(name, processes, **overrides)
    kwargs.update(bf16=False, use_vllm=False)  # no GPU and no vLLM here; neither changes the arithmetic
    return GRPOConfig(output_dir=str(tmp_path), report_to="none", **kwargs)


def test_grpo_7b_makes_verls_updates_on_8_processes(tmp_path, eight_processes):
    config = grpo_config(tmp_path, "7b", eight_processes)
    # verl: 16 prompts x 8 rollouts a step; ppo_mini_batch_size 8 prompts -> 2 updates a step;
    # micro-batch 1 a GPU
    assert config.per_device_train_batch_size == 1 and config.num_generations == 8
    completions_per_update = (
        config.per_device_train_batch_size * eight_processes * config.gradient_accumulation_steps
    )
    assert completions_per_update == 8 * 8  # 8 prompts of 8 rollouts
    assert config.generation_batch_size == 16 * 8  # TRL's own derivation: 16 prompts a generation
    assert config.generation_batch_size // config.num_generations == 16
    assert config.steps_per_generation // config.gradient_accumulation_steps == 2  # updates a generation
    assert config.num_iterations == 1
    assert config.max_steps == 400  # optimizer updates: 200 of the paper's steps of 16 prompts
    prompts_seen = config.max_steps // 2 * config.generation_batch_size // config.num_generations
    assert prompts_seen == 200 * 16


def test_grpo_batch_on_other_world_sizes():
    assert grpo_batch(PaperBatch(), 1)["gradient_accumulation_steps"] == 64
    assert grpo_batch(PaperBatch(), 4) == {
        "num_generations": 8,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 16,
        "steps_per_generation": 32,
        "num_iterations": 1,
        "max_steps": 400,
    }
    with pytest.raises(ValueError, match="do not split"):
        grpo_batch(PaperBatch(), 7)  # 64 completions an update over 7 processes


def test_grpo_7b_scheduler_is_constant_with_weight_decay(tmp_path, eight_processes):
    import torch
    from transformers import get_scheduler

    config = grpo_config(tmp_path, "7b", eight_processes)
    assert (config.learning_rate, config.weight_decay, config.beta, config.epsilon) == (
        1e-6,
        0.01,
        0.001,
        0.2,
    )
    assert config.lr_scheduler_type == "constant" and config.get_warmup_steps(config.max_steps) == 0
    assert config.max_completion_length == 3072 and config.loss_type == "dapo"
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=config.learning_rate)
    scheduler = get_scheduler(
        config.lr_scheduler_type,
        optimizer,
        num_warmup_steps=config.get_warmup_steps(config.max_steps),
        num_training_steps=config.max_steps,
    )
    rates = []
    for _ in range(config.max_steps):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[0] == rates[199] == rates[-1] == 1e-6


def test_checkpoints_keep_model_only_and_a_limit(tmp_path, eight_processes):
    from trl import SFTConfig

    config = grpo_config(tmp_path, "7b", eight_processes)
    assert config.save_only_model and config.save_total_limit == 3
    for name in ("7b", "32b"):
        sft = SFTConfig(
            output_dir=str(tmp_path), report_to="none", **{**preset(SFT_PRESETS, name), "bf16": False}
        )
        assert sft.save_only_model and sft.save_total_limit == 3
        assert sft.max_length == 23552 and sft.lr_scheduler_type == "cosine"
        assert sft.per_device_train_batch_size * sft.gradient_accumulation_steps == 8
        assert sft.get_warmup_steps(1000) == 100  # warmup ratio 0.1
    assert preset(SFT_PRESETS, "7b")["learning_rate"] == 5e-6
    assert preset(SFT_PRESETS, "32b")["learning_rate"] == 1e-4


def test_checkpoint_every_turns_step_saving_on(tmp_path):
    smoke = grpo_config(tmp_path, "cpu-smoke", 1)
    assert smoke.save_strategy == "no"
    every = grpo_config(tmp_path, "cpu-smoke", 1, **checkpoint_every(2))
    assert (every.save_strategy, every.save_steps) == ("steps", 2)
    assert checkpoint_every(None) == {}
    with pytest.raises(ValueError, match="save_steps"):
        checkpoint_every(0)


def test_bf16_on_a_machine_without_a_gpu_trains_on_the_cpu(tmp_path):
    """transformers refuses bf16 without a bf16 GPU unless use_cpu is set; --bf16 on a CPU must build."""
    from trl import GRPOConfig, SFTConfig
    from transformers.utils import is_torch_bf16_gpu_available

    if is_torch_bf16_gpu_available():
        pytest.skip("a bf16 GPU is here: use_cpu is left alone")
    sft = preset(SFT_PRESETS, "cpu-smoke", bf16=True)
    with pytest.raises(ValueError, match="bf16"):
        SFTConfig(output_dir=str(tmp_path), report_to="none", **sft)
    config = SFTConfig(output_dir=str(tmp_path), report_to="none", **for_this_machine(sft))
    assert config.bf16 and config.use_cpu
    smoke = for_this_machine(grpo_preset("cpu-smoke", 1, bf16=True))
    assert GRPOConfig(output_dir=str(tmp_path), report_to="none", **smoke).use_cpu
    assert "use_cpu" not in for_this_machine(preset(SFT_PRESETS, "cpu-smoke"))  # fp32: untouched


def test_overrides_win_over_the_arithmetic(tmp_path, eight_processes):
    config = grpo_config(tmp_path, "7b", eight_processes, max_steps=10, learning_rate=2e-6)
    assert (config.max_steps, config.learning_rate, config.steps_per_generation) == (10, 2e-6, 16)
    assert "steps_per_generation" not in GRPO_PRESETS["cpu-smoke"]
    smoke = grpo_config(tmp_path, "cpu-smoke", 1)
    assert smoke.steps_per_generation == smoke.gradient_accumulation_steps == 1


def test_lora_settings_express_the_32b_preset():
    assert lora_settings("32b", None, None, None) == (True, 32, 32)
    assert lora_settings("32b", False, None, None) == (False, 32, 32)
    assert lora_settings("7b", None, None, None) == (False, 16, 32)
    assert lora_settings("7b", True, 8, None) == (True, 8, 16)
    assert lora_settings("7b", True, 32, 32) == (True, 32, 32)
    assert preset(GRPO_PRESETS, "32b")["learning_rate"] == 1e-5  # train_grpo_lora.sh


def test_lora_config_takes_alpha():
    from reasonrank_training.sft import lora_config

    config = lora_config(32, 32)
    assert (config.r, config.lora_alpha) == (32, 32)


@pytest.fixture(scope="module")
def sft_adapter(tiny_student, tmp_path_factory):
    """A LoRA SFT output of the tiny student whose merge really changes the weights."""
    import torch
    from peft import get_peft_model
    from reasonrank_training.sft import load_tokenizer, lora_config
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_student)), lora_config(4, 8))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    out = tmp_path_factory.mktemp("sft-adapter")
    model.save_pretrained(str(out))
    load_tokenizer(str(tiny_student)).save_pretrained(str(out))
    return out


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_grpo_reference_is_the_sft_model_not_the_base(tiny_student, sft_adapter, tmp_path):
    from datasets import Dataset
    from reasonrank_training.export import load_merged
    from reasonrank_training.grpo import policy_folder
    from reasonrank_training.sft import load_tokenizer
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    base = _weights(AutoModelForCausalLM.from_pretrained(str(tiny_student)))
    sft = _weights(load_merged(sft_adapter))
    assert not _same(base, sft)
    tok = load_tokenizer(str(sft_adapter))
    data = Dataset.from_list([{"prompt": "rank"}] * 4)
    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        report_to="none",
        **{**preset(GRPO_PRESETS, "cpu-smoke"), "beta": 0.001},
    )

    def trainer(model):
        return GRPOTrainer(model=model, reward_funcs=lambda completions, **_: [0.0] * len(completions),
                           args=args, train_dataset=data, processing_class=tok)  # fmt: skip

    # merged in memory, TRL rebuilds the reference from config._name_or_path: the base model
    assert _same(_weights(trainer(load_merged(sft_adapter)).ref_model), base)
    # from policy_folder, policy and reference both start from the SFT weights
    folder = policy_folder(sft_adapter, tmp_path / "grpo")
    built = trainer(load_merged(folder))
    assert _same(_weights(built.ref_model), sft) and _same(_weights(built.model), sft)
    assert policy_folder(tiny_student, tmp_path / "other") == str(tiny_student)  # full folders pass through
