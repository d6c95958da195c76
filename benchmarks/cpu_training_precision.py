"""Training and decoding speed on a CPU by precision, side by side in one run: fp32, bf16 autocast over
fp32 weights (the Trainer's ``--bf16``) and bf16 weights with autocast, on real SFT examples.

Each setting runs LoRA (r16, all linear layers, as the cpu-qrels recipe) forward and backward over the
same tokenised examples, after a warm-up on the first; the loss column shows how far each setting's
loss is from fp32's. ``--decode`` also times greedy decoding of a batch of those prompts.

    python benchmarks/cpu_training_precision.py --records WORK/teacher.jsonl --examples 8 --decode 64
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

SETTINGS = {  # name: (weights' dtype, autocast to bf16)
    "fp32": ("float32", False),
    "bf16 autocast, fp32 weights": ("float32", True),
    "bf16 weights and autocast": ("bfloat16", True),
}


def tokenised(records: Path, tok, n: int, max_passage_tokens: int) -> tuple[list, list]:
    from reasonrank_training.data import read_jsonl
    from reasonrank_training.examples import sft_example

    full, prompts = [], []
    for record in read_jsonl(records)[:n]:
        example = sft_example(record, tok, max_passage_tokens)
        prompt = tok.apply_chat_template(example["prompt"], add_generation_prompt=True, tokenize=False)
        completion = example["completion"][0]["content"]
        full.append(tok(prompt + completion + tok.eos_token, return_tensors="pt").input_ids)
        prompts.append(prompt)
    return full, prompts


def lora_model(model: str, dtype: str):
    import torch
    from peft import get_peft_model
    from reasonrank_training.sft import lora_config
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype))
    return get_peft_model(base, lora_config(16, 32))


def train_speed(model, sequences: list, autocast: bool) -> tuple[float, float]:
    """Seconds a sequence (forward and backward) after one warm-up, and the mean loss."""
    import torch

    def step(ids) -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        return loss.item()

    step(sequences[0])
    start = time.perf_counter()
    losses = [step(ids) for ids in sequences]
    return (time.perf_counter() - start) / len(sequences), sum(losses) / len(losses)


def decode_speed(model, tokenizer, prompts: list[str], new_tokens: int, autocast: bool) -> float:
    """Generated tokens a second, greedy, the prompts as one left-padded batch."""
    import torch

    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        model.generate(**batch, max_new_tokens=4, do_sample=False)  # warm-up
        start = time.perf_counter()
        out = model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    return (out.shape[1] - batch.input_ids.shape[1]) * len(prompts) / (time.perf_counter() - start)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--records", type=Path, required=True, help="SFT records (a teacher.jsonl)")
    parser.add_argument("--model", default=None, help="model folder (default: the demo student)")
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--max-passage-tokens", type=int, default=32)
    parser.add_argument("--decode", type=int, default=0, help="also time greedy decoding of this many tokens")
    args = parser.parse_args()

    import torch
    from reasonrank_training.sft import load_tokenizer

    if args.model is None:
        from reasonrank_plugins.demo_model import demo_model_folder

        args.model = str(demo_model_folder())
    tok = load_tokenizer(args.model)
    sequences, prompts = tokenised(args.records, tok, args.examples, args.max_passage_tokens)
    tokens = sum(s.shape[1] for s in sequences) / len(sequences)
    threads = torch.get_num_threads()
    print(f"{args.model}: {len(sequences)} examples of {tokens:.0f} tokens on average, {threads} threads")
    rows = []
    for name, (dtype, autocast) in SETTINGS.items():
        model = lora_model(args.model, dtype)
        seconds, loss = train_speed(model, sequences, autocast)
        rate = None
        if args.decode:
            rate = decode_speed(model, tok, prompts, args.decode, autocast)
        rows.append((name, seconds, loss, rate))
        del model
    base_s, base_loss, base_rate = rows[0][1], rows[0][2], rows[0][3]
    header = f"{'setting':30} {'s/sequence':>11} {'speed-up':>9} {'loss':>8} {'Δ loss':>8}"
    print(header + ("  decode tok/s  ratio" if args.decode else ""))
    for name, seconds, loss, rate in rows:
        line = f"{name:30} {seconds:11.2f} {base_s / seconds:8.2f}x {loss:8.4f} {loss - base_loss:+8.4f}"
        if rate is not None:
            line += f"  {rate:12.1f} {rate / base_rate:5.2f}x"
        print(line)


if __name__ == "__main__":
    main()
