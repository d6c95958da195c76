"""Bad input on the command line: every case exits non-zero with a message that says what was
wrong, and never with a traceback. (The server's cases are in tests/server/test_server_app.py,
the adapters' in each adapter's tests.)"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from reasonrank_plugins.cli import app

SCRIPTED = ["--backend", "scripted", "--model", "overlap"]


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["red fox", "blue sea", "fox den"]))
    (tmp_path / "broken.jsonl").write_text('{"text": "a"}\n{"text": \n')
    (tmp_path / "notext.jsonl").write_text('{"body": "a"}\n')
    (tmp_path / "beir").mkdir()
    return tmp_path


CASES = [
    # (arguments, what the message must say)
    (["rerank", "-q", "fox", "-p", "{d}/missing.jsonl", *SCRIPTED], "does not exist"),
    (["rerank", "-q", "fox", "-p", "{d}/broken.jsonl", *SCRIPTED], "not valid JSON"),
    (["rerank", "-q", "fox", "-p", "{d}/notext.jsonl", *SCRIPTED], "no string 'text' field"),
    (["rerank", "-q", "   ", "-p", "{d}/good.jsonl", *SCRIPTED], "query"),
    (["rerank", "-q", "fox", "-p", "{d}/good.jsonl", "--top-k", "0", *SCRIPTED], "top_k"),
    (["rerank", "-q", "fox", "-p", "{d}/good.jsonl", "--window", "4", "--step", "4", *SCRIPTED], "step"),
    (["rerank", "-q", "fox", "-p", "{d}/good.jsonl", "--strategy", "bubble", *SCRIPTED], "strategy must be one of"),
    (["rerank", "-q", "fox", "-p", "{d}/good.jsonl", "--reasoning-budget", "0", *SCRIPTED], "reasoning_budget"),
    (["rerank", "-q", "fox", "-p", "{d}/good.jsonl", "--timeout", "-1", *SCRIPTED], "timeout"),
    (["rerank", "-q", "fox", "-p", "{d}/good.jsonl", "--on-error", "ignore", *SCRIPTED], "on-error"),
    (["rerank", "-q", "fox", "-p", "{d}/good.jsonl", "--window", "x", *SCRIPTED], "window"),
    (["rerank", "-q", "fox", "-p", "{d}/good.jsonl", "-o", "novalue", *SCRIPTED], "expected key=value"),
    (["rerank", "-q", "fox", "-p", "{d}/good.jsonl", "-o", "window_size=3", *SCRIPTED], "must not repeat"),
    (["rerank", "-q", "fox", "-p", "{d}/good.jsonl", "--latency", "1", "--backend", "openai"], "--backend scripted"),
    (["rerank", "-q", "fox", "-p", "{d}/good.jsonl", "--backend", "bogus"], "bogus"),
    (["rerank", "-q", "fox", "-p", "{d}/good.jsonl", "-o", "frobnicate=1", *SCRIPTED], "frobnicate"),
    (["eval", "--data", "{d}/missing", *SCRIPTED], "missing"),
    (["eval", "--data", "{d}/beir", *SCRIPTED], "beir"),
    (["batch", "--data", "{d}/beir", "--out", "{d}/out", *SCRIPTED], "does not exist"),
    (["compare", "{d}/a.json", "{d}/b.json"], "does not exist"),
    (["serve", "--host", "0.0.0.0", *SCRIPTED], "without a token"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(c[0][:4]) for c in CASES])
def test_bad_input_is_a_usage_error_that_says_what_was_wrong(files, args, message):
    result = CliRunner().invoke(app, [a.format(d=files) for a in args])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    text = " ".join(result.output.replace("│", " ").split()).lower()  # unwrap the error box
    assert message.lower() in text, result.output
