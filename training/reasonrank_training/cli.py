"""``reasonrank-train``: synth (or import) -> filter -> sft -> grpo -> export (and evaluate)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict
from pathlib import Path

import typer
from reasonrank_plugins.engine import REFERENCE_BUDGET

from .presets import checkpoint_every

app = typer.Typer(help="Train a ReasonRank-style reasoning reranker.", no_args_is_help=True)


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level.")) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(name)s: %(message)s"
    )


def _items(source: Path, run: Path | None, depth: int, offset: int, limit: int | None):
    from .data import load_items

    items = load_items(source, run=run, depth=depth)
    return items[offset : offset + limit if limit is not None else None]


def _qrels(path: Path | None):
    from .data import load_qrels

    return load_qrels(path) if path else None


BF16 = typer.Option(
    None, "--bf16/--no-bf16", help="bf16 mixed precision (7b/32b: on, cpu-smoke: off); fast on CPUs with AMX."
)
SOURCE = typer.Option(
    ..., "--input", "-i", help="BEIR folder (with a TREC run) or JSONL of {qid, query, candidates}."
)
RUN = typer.Option(None, help="TREC run for a BEIR folder (default: its run.bm25.trec).")
QRELS = typer.Option(None, help="TREC qrels; labels its queries instead of the teacher.")


@app.command()
def synth(
    source: Path = SOURCE,
    output: Path = typer.Option(..., "--output", "-o", help="JSONL to append records to (resumable)."),
    base_url: str = typer.Option(..., envvar="TEACHER_BASE_URL", help="OpenAI-compatible endpoint."),
    model: str = typer.Option("deepseek-reasoner", envvar="TEACHER_MODEL"),
    api_key: str = typer.Option("EMPTY", envvar="TEACHER_API_KEY"),
    run: Path | None = RUN,
    qrels: Path | None = QRELS,
    depth: int = typer.Option(20, help="Candidates a query (first-stage order)."),
    offset: int = typer.Option(0, help="Skip this many queries."),
    limit: int | None = typer.Option(None, help="At most this many queries."),
    prompt: str = typer.Option("rankgpt", help="Listwise prompt: rankgpt (multi-turn) or reasonrank (core)."),
    window_size: int = 20,
    step: int | None = typer.Option(None, help="Window step (default: half a window)."),
    all_windows: bool = typer.Option(False, help="Every sliding window, not only the top one."),
    samples: int = typer.Option(1, help="Listwise samples a window."),
    temperature: float = 0.0,
    max_tokens: int = typer.Option(
        65536, help="Listwise reply budget, chain of thought included (DeepSeek-R1's API maximum)."
    ),
    pointwise_max_tokens: int = typer.Option(
        65536, help="Pointwise reply budget, chain of thought included."
    ),
    max_passage_words: int = 300,
    max_passage_tokens: int | None = typer.Option(
        None, help="Cut passages to this many tokens of --tokenizer (as the student sees them), not words."
    ),
    pointwise: str = typer.Option("auto", help="auto (when no qrels), always or never."),
    concurrency: int = 4,
    max_retries: int = 5,
    cache: Path | None = typer.Option(None, help="Request cache (default: OUTPUT.cache.jsonl)."),
    price_prompt: float = typer.Option(0.0, help="USD per million prompt tokens."),
    price_completion: float = typer.Option(0.0, help="USD per million completion tokens."),
    tokenizer: str | None = typer.Option(
        None,
        help="The teacher's tokenizer (folder or hub id): with --prompt reasonrank, a reply without "
        "an <answer> block is then forced through /v1/completions, as the core engine does.",
    ),
) -> None:
    """Ask the teacher for relevance labels and reasoned rankings."""
    from .synth import SynthConfig, synthesize
    from .teacher import Teacher

    config = SynthConfig(
        prompt=prompt,
        window_size=window_size,
        step=step,
        first_window_only=not all_windows,  # type: ignore[arg-type]
        samples=samples,
        temperature=temperature,
        max_tokens=max_tokens,
        pointwise_max_tokens=pointwise_max_tokens,
        max_passage_words=max_passage_words,
        max_passage_tokens=max_passage_tokens,
        pointwise=pointwise,  # type: ignore[arg-type]
    )

    async def go():
        teacher = Teacher(
            base_url,
            model,
            api_key=api_key,
            concurrency=concurrency,
            max_retries=max_retries,
            cache=cache or output.with_suffix(".cache.jsonl"),
            price_prompt=price_prompt,
            price_completion=price_completion,
            tokenizer=tokenizer,
        )
        try:
            return await synthesize(
                _items(source, run, depth, offset, limit), teacher, output, config, qrels=_qrels(qrels)
            )
        finally:
            await teacher.close()

    usage = asyncio.run(go())
    typer.echo(json.dumps({"output": str(output), **asdict(usage)}))


@app.command("import")
def import_(
    source: str = typer.Argument(..., help="Hub dataset id (liuwenhan/reasonrank_data_...) or a local copy."),
    fmt: str = typer.Option(..., "--format", "-f", help="13k, sft or rl (the published layouts)."),
    output: Path = typer.Option(..., "--output", "-o", help="JSONL of synth records (overwritten)."),
    disjoint_from: list[Path] = typer.Option(
        [], help="Imported JSONL whose queries this import must not contain (SFT vs RL)."
    ),
    overlap: str = typer.Option("drop", help="drop (and count) or error on queries in --disjoint-from."),
    join_13k: str | None = typer.Option(
        None, help="13k source: take qids, docids and relevance of sft/rl rows from it (same query)."
    ),
    split: str | None = typer.Option(None, help="rl only: train or val (default: both)."),
) -> None:
    """Read the paper's published data into records that filter, sft and grpo take."""
    from .data import read_jsonl, write_jsonl
    from .importing import import_published

    if overlap not in ("drop", "error"):
        raise typer.BadParameter("--overlap is drop or error")
    try:
        records, report = import_published(
            fmt,  # type: ignore[arg-type]
            source,
            disjoint_from=[read_jsonl(p) for p in disjoint_from],
            overlap=overlap,  # type: ignore[arg-type]
            join_13k=join_13k,
            split=split,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    write_jsonl(output, records)
    typer.echo(json.dumps({"output": str(output), **asdict(report)}))


@app.command()
def split(
    source: Path = typer.Option(..., "--input", "-i", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for train.jsonl, heldout.jsonl, split.json."),
    run: Path | None = typer.Option(
        None, help="TREC first-stage run (default: the folder's run.bm25.trec, else bm25s, saved to OUTPUT)."
    ),
    depth: int = typer.Option(8, help="Passages a window: the first-stage top DEPTH of each query."),
    heldout: int = typer.Option(100, help="Queries held out for evaluation."),
    train: int | None = typer.Option(None, help="Queries to train on (default: all the others)."),
    seed: int = typer.Option(0, help="Fixes the split and each window's shuffle."),
    shuffle: bool = typer.Option(True, help="Shuffle each window's passages (seeded)."),
    require_relevant: bool = typer.Option(
        True, help="Drop queries whose window holds no relevant passage (every order scores 0)."
    ),
) -> None:
    """Split a BEIR folder's judged queries into train and held-out windows, shuffled with a seed."""
    from reasonrank_plugins.eval.data import load_beir, write_trec_run
    from reasonrank_plugins.eval.retrieve import first_stage

    from .data import write_jsonl
    from .qrels_teacher import split_windows

    data = load_beir(source)
    output.mkdir(parents=True, exist_ok=True)
    try:
        run_found, origin = first_stage(data, depth, run=run, root=source)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--run") from exc
    if origin["kind"] == "bm25s":
        write_trec_run(run_found, output / "run.bm25.trec", "bm25s")
    try:
        parts = split_windows(
            data.queries, data.corpus, run_found, data.qrels, depth=depth, heldout=heldout, train=train,
            seed=seed, shuffle=shuffle, require_relevant=require_relevant, dataset=data.name,
        )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    for name, items in (("train", parts.train), ("heldout", parts.heldout)):
        write_jsonl(output / f"{name}.jsonl", (asdict(item) for item in items))
    summary = {**parts.summary(seed, depth, shuffle), "first_stage": origin}
    (output / "split.json").write_text(json.dumps(summary, indent=1))
    typer.echo(json.dumps({k: len(v) if isinstance(v, list) else v for k, v in summary.items()}))


@app.command()
def teach(
    source: Path = typer.Option(..., "--input", "-i", help="JSONL of {qid, query, candidates} (split's train.jsonl)."),
    qrels: Path = typer.Option(..., help="TREC qrels: the teacher."),
    output: Path = typer.Option(..., "--output", "-o", help="JSONL of synth records (overwritten)."),
) -> None:
    """The qrels teacher: gold rankings with a templated rationale (a stand-in for R1, labelled so)."""
    from .data import load_qrels, load_records, write_jsonl
    from .qrels_teacher import qrels_records

    n = write_jsonl(output, qrels_records(load_records(source), load_qrels(qrels)))
    typer.echo(json.dumps({"output": str(output), "records": n}))


@app.command("filter")
def filter_(
    source: Path = typer.Option(..., "--input", "-i", help="Synth JSONL."),
    output: Path = typer.Option(..., "--output", "-o"),
    alpha: float = typer.Option(0.4, help="Keep samples with NDCG@10 >= alpha."),
    qrels: Path | None = typer.Option(None, help="Real qrels (else each record's relevant_docids)."),
    require_complete: bool = typer.Option(False, help="Also drop teacher answers that miss or repeat ids."),
    keep_truncated: bool = typer.Option(
        False, help="Keep replies that hit the teacher's token limit (smoke runs with a tiny budget only)."
    ),
    report: Path | None = typer.Option(None, help="Report JSON (default: OUTPUT.report.json)."),
) -> None:
    """Keep the samples whose teacher ranking is good enough; report counts per dataset."""
    from .data import read_jsonl, write_jsonl
    from .filtering import filter_records

    kept, summary = filter_records(
        read_jsonl(source),
        alpha=alpha,
        qrels=_qrels(qrels),
        require_complete=require_complete,
        keep_truncated=keep_truncated,
    )
    write_jsonl(output, kept)
    report_data = summary.as_dict()
    (report or output.with_suffix(".report.json")).write_text(json.dumps(report_data, indent=1))
    typer.echo(json.dumps(report_data))


@app.command()
def sft(
    data: Path = typer.Option(..., "--input", "-i", help="Filtered JSONL."),
    model: str = typer.Option(..., help="Student model folder or hub id."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder (checkpoints resume)."),
    preset: str = typer.Option("cpu-smoke", help="7b, 32b (LoRA r32, alpha 32) or cpu-smoke."),
    lora: bool | None = typer.Option(
        None, "--lora/--no-lora", help="Train LoRA adapters (PEFT) instead of all weights (32b: on)."
    ),
    lora_r: int | None = typer.Option(None, help="LoRA rank (default 16; 32b: 32)."),
    lora_alpha: int | None = typer.Option(None, help="LoRA alpha (default 2 x rank; 32b: 32)."),
    max_passage_tokens: int = 512,
    learning_rate: float | None = None,
    epochs: float | None = typer.Option(None, help="Overrides num_train_epochs."),
    max_steps: int | None = None,
    max_length: int | None = None,
    batch_size: int | None = None,
    grad_accum: int | None = None,
    measure_loss: bool = typer.Option(True, help="Completion loss on the training set before and after."),
    bf16: bool | None = BF16,
    save_steps: int | None = typer.Option(
        None, help="Checkpoint every N steps, so that a stopped run resumes there (cpu-smoke saves none)."
    ),
) -> None:
    """Cold-start SFT on the core engine's prompt, loss on the completion only."""
    from .sft import train_sft

    result = train_sft(
        data,
        model,
        output,
        preset_name=preset,
        lora=lora,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        max_passage_tokens=max_passage_tokens,
        measure_loss=measure_loss,
        learning_rate=learning_rate,
        num_train_epochs=epochs,
        max_steps=max_steps,
        max_length=max_length,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        bf16=bf16,
        **checkpoint_every(save_steps),
    )
    typer.echo(json.dumps(asdict(result)))


@app.command()
def grpo(
    data: Path = typer.Option(..., "--input", "-i", help="Filtered JSONL."),
    model: str = typer.Option(..., help="Policy folder (an SFT output; LoRA adapters are merged)."),
    output: Path = typer.Option(..., "--output", "-o"),
    preset: str = typer.Option(
        "cpu-smoke", help="7b, 32b (LoRA r32, alpha 32) or cpu-smoke; 7b/32b fit verl's batch to WORLD_SIZE."
    ),
    lora: bool | None = typer.Option(None, "--lora/--no-lora", help="Train new LoRA adapters (32b: on)."),
    lora_r: int | None = typer.Option(None, help="LoRA rank (default 16; 32b: 32)."),
    lora_alpha: int | None = typer.Option(None, help="LoRA alpha (default 2 x rank; 32b: 32)."),
    max_passage_tokens: int = 512,
    ndcg_weight: float = 1.0,
    recall_weight: float = typer.Option(0.2, help="0 with --rbo-weight 0 is the NDCG-only ablation."),
    rbo_weight: float = 0.1,
    learning_rate: float | None = None,
    max_steps: int | None = None,
    num_generations: int | None = None,
    batch_size: int | None = typer.Option(None, help="Completions per device and step."),
    grad_accum: int | None = None,
    max_completion_length: int | None = None,
    temperature: float | None = typer.Option(None, help="Rollout temperature (presets: 1.0)."),
    use_vllm: bool | None = typer.Option(None, "--use-vllm/--no-vllm"),
    vllm_mode: str | None = typer.Option(None, help="colocate or server (trl vllm-serve)."),
    bf16: bool | None = BF16,
    save_steps: int | None = typer.Option(
        None, help="Checkpoint every N steps, so that a stopped run resumes there (cpu-smoke saves none)."
    ),
) -> None:
    """RL with GRPO and the multi-view ranking reward."""
    from .grpo import train_grpo

    result = train_grpo(
        data,
        model,
        output,
        preset_name=preset,
        lora=lora,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        max_passage_tokens=max_passage_tokens,
        ndcg_weight=ndcg_weight,
        recall_weight=recall_weight,
        rbo_weight=rbo_weight,
        learning_rate=learning_rate,
        max_steps=max_steps,
        num_generations=num_generations,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        max_completion_length=max_completion_length,
        temperature=temperature,
        use_vllm=use_vllm,
        vllm_mode=vllm_mode,
        bf16=bf16,
        **checkpoint_every(save_steps),
    )
    typer.echo(json.dumps(asdict(result)))


@app.command()
def export(
    model: Path = typer.Option(..., help="SFT or GRPO output folder (LoRA is merged)."),
    output: Path = typer.Option(..., "--output", "-o"),
    summary: list[Path] = typer.Option([], help="More training_summary.json / filter reports for the card."),
    dtype: str | None = typer.Option(None, help="e.g. bfloat16 (default: as trained)."),
) -> None:
    """Write a model folder that ReasonRanker(model=folder) loads, with a model card."""
    from .export import export_model

    typer.echo(str(export_model(model, output, summaries=summary, dtype=dtype)))


@app.command()
def evaluate(
    model: str = typer.Option(..., help="Model folder (or 'demo')."),
    source: Path = SOURCE,
    qrels: Path = typer.Option(..., help="TREC qrels."),
    run: Path | None = RUN,
    backend: str = "transformers",
    window_size: int = 20,
    offset: int = 0,
    limit: int | None = None,
    max_passage_tokens: int = 512,
    reasoning_budget: int = typer.Option(
        REFERENCE_BUDGET, help="Reasoning tokens a window (the reference's new tokens)."
    ),
    batch_size: int | None = typer.Option(
        None, help="Windows decoded together (transformers backend; default 8). More helps a CPU."
    ),
    dtype: str | None = typer.Option(
        None, help="Weights' dtype on the transformers backend, e.g. bfloat16 (default: bf16 on CUDA, else float32)."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the full result as JSON."),
) -> None:
    """Rerank each query's top window: share of complete answers, parse status, nDCG@10."""
    from .evaluate import evaluate_model

    result = evaluate_model(
        model,
        _items(source, run, window_size, offset, limit),
        _qrels(qrels) or {},
        backend=backend,
        window_size=window_size,
        max_passage_tokens=max_passage_tokens,
        reasoning_budget=reasoning_budget,
        **({"batch_size": batch_size} if batch_size else {}),
        **({"dtype": dtype} if dtype else {}),
    )
    data = asdict(result)
    if output:
        output.write_text(json.dumps(data, indent=1))
    data.pop("per_window")
    typer.echo(json.dumps(data))


@app.command()
def compare(
    reports: list[Path] = typer.Argument(..., help="evaluate -o outputs on the same windows; the first is the baseline."),
) -> None:
    """nDCG@10 of each report against the first, paired by query: the difference, its paired
    bootstrap 95% interval and the paired t-test (the core's ``reasonrank compare`` statistics)."""
    from reasonrank_plugins.eval.compare import paired_test

    loaded = []
    for path in reports:
        if not path.exists():
            raise typer.BadParameter(f"{path} does not exist")
        loaded.append(json.loads(path.read_text()))

    def values(report: dict, key: str = "ndcg@10") -> dict[str, float]:
        return {w["qid"]: w[key] for w in report["per_window"]}

    base = loaded[0]
    rows = [("identity (window order)", values(base, "ndcg@10_initial"))]
    if all("ndcg@10_oracle" in w for w in base["per_window"]):
        rows.append(("oracle (qrels order)", values(base, "ndcg@10_oracle")))
    rows += [(f"{r['model']} ({p.name})", values(r)) for p, r in zip(reports, loaded)]
    reference = values(base)
    width = max(len(name) for name, _ in rows) + 1  # whole names: a long model path stays readable
    typer.echo(f"{'':<{width}}{'nDCG@10':>9}{'vs first':>10}{'95% CI':>20}{'p':>8}{'n':>5}")
    for name, vals in rows:
        test = paired_test("ndcg@10", reference, vals)
        ci = "n/a" if test.ci_low is None else f"[{test.ci_low:+.4f}, {test.ci_high:+.4f}]"
        p = "n/a" if test.p is None else f"{test.p:.3f}"
        typer.echo(f"{name:<{width}}{test.b:>9.4f}{test.delta:>+10.4f}{ci:>20}{p:>8}{test.n:>5}")
    typer.echo("vs first: paired by query; 95% CI: paired bootstrap (10,000 resamples, seed 0); p: paired t-test.")


def main() -> None:
    app()


if __name__ == "__main__":  # ``accelerate launch -m reasonrank_training.cli ...``
    main()
