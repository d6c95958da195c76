"""Stage 5: merge LoRA and write a model folder the core engine loads, with a model card."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from reasonrank_plugins import __version__ as core_version

from . import __version__

logger = logging.getLogger(__name__)


def load_merged(path: str | Path, dtype: Any = None) -> Any:
    """A causal LM from a model folder, or from a LoRA adapter folder with the adapter merged."""
    from transformers import AutoModelForCausalLM

    if (Path(path) / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM

        return AutoPeftModelForCausalLM.from_pretrained(str(path), dtype=dtype or "auto").merge_and_unload()
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or "auto")


def _summaries(sources: list[Path]) -> list[dict[str, Any]]:
    found = []
    for source in sources:
        path = source / "training_summary.json" if source.is_dir() else source
        if path.exists():
            found.append(json.loads(path.read_text()))
    return found


def model_card(name: str, summaries: list[dict[str, Any]]) -> str:
    """A Markdown model card: what the stages trained on and what they measured."""
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [reranking, reasonrank, listwise]",
        "---",
        f"# {name}",
        "",
        (
            f"A reasoning listwise reranker trained with `reasonrank-training` {__version__} (ReasonRank "
            "recipe: synthesised reasoning data, self-consistency filter, SFT, GRPO) on the prompt of "
            f"`reasonrank-plugins` {core_version}. Serve it with that engine:"
        ),
        "",
        "```bash",
        f'pip install "reasonrank-plugins[transformers]=={core_version}"',
        "```",
        "",
        "```python",
        "from reasonrank_plugins import ReasonRanker",
        f'ranker = ReasonRanker(model="{name}", backend="transformers")  # or backend="vllm"',
        "```",
        "",
        "## Training data and metrics",
    ]
    if not summaries:
        lines.append("No training summary was found next to the model.")
    for summary in summaries:
        lines += ["", f"### {summary.get('stage', 'stage')}", ""]
        lines += [
            f"- `{k}`: {json.dumps(v)}"
            for k, v in summary.items()
            if k != "stage" and not isinstance(v, list)
        ]
        for k, v in summary.items():
            if isinstance(v, list) and v:
                lines.append(f"- `{k}`: {len(v)} values, first {v[0]!r}, last {v[-1]!r}")
    return "\n".join(lines) + "\n"


def export_model(
    model: str | Path,
    output: str | Path,
    *,
    summaries: list[str | Path] = (),  # type: ignore[assignment]
    dtype: str | None = None,
) -> Path:
    """Write ``output`` (safetensors, tokenizer with chat template, ``README.md``)."""
    from transformers import AutoTokenizer

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    merged = load_merged(model, dtype)
    merged.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(model)).save_pretrained(str(out))
    sources = [Path(model), *map(Path, summaries)]
    (out / "README.md").write_text(model_card(out.name, _summaries(sources)))
    logger.info("exported %s to %s", model, out)
    return out
