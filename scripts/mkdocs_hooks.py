"""MkDocs hooks: pages that are generated from the code at build time, so nothing is written twice.

- ``<!-- reasonrank:options -->`` becomes the table of the ranker's options (name, type, default, help),
  read from their one declaration, ``reasonrank_plugins.options.RankerOptions``;
- ``<!-- reasonrank:cli -->`` in a page becomes the ``--help`` of ``reasonrank`` and of each of its
  commands, exactly as the installed command prints it;
- ``<!-- reasonrank:openapi -->`` becomes the server's endpoint table, and ``openapi.json`` (the
  schema FastAPI builds from the app) is added to the site.

The repository root goes first on ``sys.path``, so the pages describe this checkout's code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OPTIONS_MARK = "<!-- reasonrank:options -->"
CLI_MARK = "<!-- reasonrank:cli -->"
OPENAPI_MARK = "<!-- reasonrank:openapi -->"
OPENAPI_FILE = "openapi.json"
ROOT = Path(__file__).resolve().parents[1]
HELP_ENV = {"COLUMNS": "140", "NO_COLOR": "1", "TERM": "dumb"}

_schema: dict | None = None


def on_config(config):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def on_files(files, config):
    from mkdocs.structure.files import File

    files.append(File.generated(config, OPENAPI_FILE, content=json.dumps(openapi_schema(), indent=2)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    if OPTIONS_MARK in markdown:
        markdown = markdown.replace(OPTIONS_MARK, options_table())
    if CLI_MARK in markdown:
        markdown = markdown.replace(CLI_MARK, cli_help())
    if OPENAPI_MARK in markdown:
        markdown = markdown.replace(OPENAPI_MARK, endpoint_table(openapi_schema()))
    return markdown


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) if isinstance(hint, type) else str(hint).replace("typing.", "")


def options_table() -> str:
    """One row per ``RankerOptions`` field, in declaration order (the engine's options first)."""
    import dataclasses

    from reasonrank_plugins.options import option_fields, option_help

    rows = ["| option | type | default | meaning |", "|---|---|---|---|"]
    for f, hint in option_fields():
        default = "{}" if f.default_factory is not dataclasses.MISSING else repr(f.default)
        kind = _type_name(hint).replace("reasonrank_plugins.backends.base.", "")
        rows.append(f"| `{f.name}` | `{kind}` | `{default}` | {option_help(f)} |")
    return "\n".join(rows)


def _help(app, args: list[str]) -> str:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*args, "--help"], env=HELP_ENV, prog_name="reasonrank")
    if result.exit_code != 0:
        raise RuntimeError(f"reasonrank {' '.join(args)} --help exited {result.exit_code}: {result.output}")
    return "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())


def cli_help() -> str:
    """``reasonrank --help`` and one section per command with its ``--help``."""
    import typer

    from reasonrank_plugins.cli import app

    names = sorted(typer.main.get_command(app).commands)
    parts = ["```text", _help(app, []), "```"]
    for name in names:
        parts += ["", f"## `reasonrank {name}`", "", "```text", _help(app, [name]), "```"]
    return "\n".join(parts)


def openapi_schema() -> dict:
    """The app's OpenAPI schema, built over a model-free ranker (``backend="scripted"``)."""
    global _schema
    if _schema is None:
        from reasonrank_plugins import ReasonRanker
        from reasonrank_plugins.server import create_app

        with ReasonRanker("identity", backend="scripted") as ranker:
            _schema = create_app(ranker).openapi()
    return _schema


def endpoint_table(schema: dict) -> str:
    rows = ["| method | path | summary |", "|---|---|---|"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            rows.append(f"| `{method.upper()}` | `{path}` | {operation.get('summary', '')} |")
    return "\n".join(rows)
