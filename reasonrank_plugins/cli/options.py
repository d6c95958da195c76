"""The ranker options of every command that builds a ranker, generated from
:class:`~reasonrank_plugins.options.RankerOptions` so that they are declared once."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Any, Optional, get_type_hints

import typer

from ..options import RankerOptions, option_fields, option_help

#: Options the CLI adds to the declared ones: they become backend options.
EXTRA = {
    "base_url": (list[str], typer.Option([], help="OpenAI-compatible endpoint (openai backend); repeat it for "
                                         "several replicas.")),
    "option": (list[str], typer.Option([], "--option", "-o", help="Backend option key=value (repeatable; "
                                       "values are read as JSON where they parse).")),
    "latency": (float, typer.Option(0.0, help="scripted backend: seconds per window.")),
    "max_batch": (Optional[int], typer.Option(None, help="scripted backend: windows that run together.")),
}
ALIASES = {"window_size": ("--window",)}


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value is read as JSON when it parses (numbers, booleans), else text."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="--option")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _cli_param(name: str, hint: Any, default: Any, help: str) -> inspect.Parameter:
    flag = "--" + name.replace("_", "-")
    if name == "backend":
        hint = str  # a Backend instance is for Python callers
    if hint is bool:
        flags = (f"{flag}/--no-{flag[2:]}",)
    else:
        flags = (flag, *ALIASES.get(name, ()))
    option = typer.Option(default, *flags, help=help)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=hint)


def ranker_options(*, exclude: tuple[str, ...] = (), **defaults: Any) -> Callable:
    """Give a typer command every ranker option (``RankerOptions``' fields, less ``exclude``, with
    ``defaults`` overridden) plus ``--base-url``, ``--option``, ``--latency`` and ``--max-batch``;
    the command receives them as one checked ``options: RankerOptions``."""
    declared = [(f, hint) for f, hint in option_fields() if f.name not in exclude and f.name != "backend_options"]
    params = [_cli_param(f.name, hint, defaults.get(f.name, f.default), option_help(f)) for f, hint in declared]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=o, annotation=h)
               for n, (h, o) in EXTRA.items()]
    names = [p.name for p in params]

    def decorate(command: Callable) -> Callable:
        own = inspect.signature(command)
        hints = get_type_hints(command)
        kept = [p.replace(annotation=hints.get(p.name, p.annotation))
                for p in own.parameters.values() if p.name != "options"]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {n: kwargs.pop(n) for n in names if n in kwargs}
            return command(*args, options=build_options(**values), **kwargs)

        wrapper.__signature__ = own.replace(parameters=kept + params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in kept + params}
        return wrapper

    return decorate


def build_options(
    *,
    base_url: list[str] | None = None,
    option: list[str] | None = None,
    latency: float = 0.0,
    max_batch: int | None = None,
    **values: Any,
) -> RankerOptions:
    """The command line's options as one ``RankerOptions``, checked before anything is loaded."""
    backend_options = parse_options(option or [])
    if base_url:
        backend_options["base_url"] = base_url[0] if len(base_url) == 1 else list(base_url)
    if latency or max_batch is not None:
        if values.get("backend") != "scripted":
            raise typer.BadParameter("--latency and --max-batch are options of --backend scripted")
        backend_options |= {"latency": latency, "max_batch": max_batch}
    try:
        return RankerOptions(**values, backend_options=backend_options)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
