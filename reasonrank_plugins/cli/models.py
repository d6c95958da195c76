"""``reasonrank models``: list the embedded models, assembling and verifying the installed ones."""

from __future__ import annotations

from typing import Optional

import typer

from . import app


@app.command()
def models(
    names: Optional[list[str]] = typer.Argument(None, help="Only these models (each must verify)."),
    verify: bool = typer.Option(True, help="Re-hash the assembled files."),
) -> None:
    """List the embedded models; assemble each installed one if needed and verify its sha256.

    Exits 1 when a model's parts or file do not match their pinned hashes, when a named model is not
    installed, or when no embedded model is installed at all."""
    from ..demo_model import ALIASES, MODELS, EmbeddedModelError, PartsNotInstalled, embedded_names, model_info

    unknown = sorted(set(names or ()) - set(embedded_names()))
    if unknown:
        raise typer.BadParameter(f"unknown model(s) {unknown}; the embedded models are {embedded_names()}")
    failed = available = 0
    for name in dict.fromkeys(ALIASES.get(n, n) for n in names or MODELS):
        model = MODELS[name]
        alias = "".join(f', model="{a}", the default' for a, target in ALIASES.items() if target == name)
        typer.secho(f"{name:<10} {model.title} (GGUF, llamacpp backend{alias})", bold=True)
        typer.echo(f"{'':<10} from   {model.provenance}")
        typer.echo(f"{'':<10} size   {model.size} bytes, sha256 {model.sha256}")
        typer.echo(f"{'':<10} budget {model.reasoning_budget} reasoning tokens by default; extra [{model.extra}]")
        try:
            info = model_info(name, verify=verify)
        except PartsNotInstalled:
            failed += bool(names)
            typer.echo(f"{'':<10} status not installed: {model.install_hint}")
            continue
        except EmbeddedModelError as exc:
            failed += 1
            typer.secho(f"{'':<10} status REFUSED: {exc}", fg="red")
            continue
        available += 1
        how = "verified (re-hashed)" if info.rehashed else "verified (stamp of an earlier hash check)"
        typer.echo(f"{'':<10} path   {info.path}")
        typer.echo(f"{'':<10} status {how}, {info.size} bytes")
    if failed or not available:
        raise typer.Exit(1)
