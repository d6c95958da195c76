"""``reasonrank rerank`` passes the strategy options to the engine and reports what it did."""

import json

from typer.testing import CliRunner

from reasonrank_plugins.cli import app
from reasonrank_plugins.testing import OVERLAP_QUERY, TDPART_CASE


def rerank(tmp_path, *args: str) -> dict:
    passages = tmp_path / "passages.jsonl"
    passages.write_text("".join(json.dumps({"text": t}) + "\n" for t in TDPART_CASE["texts"]))
    base = ["rerank", "-q", OVERLAP_QUERY, "-p", str(passages), "--backend", "scripted", "--model", "overlap"]
    result = CliRunner().invoke(app, [*base, "--window", "4", "--step", "2", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_rerank_with_tdpart_and_with_a_depth(tmp_path):
    out = rerank(tmp_path, "--strategy", "tdpart", "--cutoff", str(TDPART_CASE["options"]["cutoff"]))
    assert out["order"] == TDPART_CASE["order"]
    assert (out["strategy"], out["depth"], out["statuses"], out["timed_out"]) == ("tdpart", 3, {"ok": 4}, False)
    assert [w["kind"] for w in out["windows"]] == ["pivot", "partition", "partition", "final"]

    shallow = rerank(tmp_path, "--depth", "4")  # one sliding window over the first 4; the rest stay
    assert (shallow["strategy"], shallow["depth"], len(shallow["windows"])) == ("sliding", 1, 1)
    assert shallow["order"] == [3, 2, 1, 0, 4, 5, 6, 7]


def test_an_unknown_strategy_is_a_usage_error(tmp_path):
    passages = tmp_path / "p.jsonl"
    passages.write_text('{"text": "a"}\n{"text": "b"}\n')
    result = CliRunner().invoke(app, ["rerank", "-q", "q", "-p", str(passages), "--backend", "scripted",
                                      "--strategy", "bubble"])
    assert result.exit_code == 2 and "strategy must be one of" in result.output
