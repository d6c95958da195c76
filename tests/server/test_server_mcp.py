"""``reasonrank mcp``: the ``rerank`` tool through the mcp SDK's own client, in process and over
stdio against the real command, on the scripted (word-overlap) backend."""

from __future__ import annotations

import sys

from mcp import Client, StdioServerParameters

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.server.mcp_tool import create_mcp_server

DOCS = ["blue sky over the sea", "the red fox jumps", "a fox den", "nothing here"]
QUERY = "red fox"
ORDER = [1, 2, 0, 3]


async def test_the_rerank_tool_in_process():
    with ReasonRanker("overlap", "scripted", window_size=3, step=1, cache_size=8) as ranker:
        async with Client(create_mcp_server(ranker)) as client:
            tools = (await client.list_tools()).tools
            assert [t.name for t in tools] == ["rerank"]
            schema = tools[0].input_schema
            assert set(schema["properties"]) == {"query", "documents", "top_n"}
            assert set(schema["required"]) == {"query", "documents"}

            result = await client.call_tool("rerank", {"query": QUERY, "documents": DOCS})
            assert not result.is_error
            out = result.structured_content
            assert [r["index"] for r in out["results"]] == ORDER
            scores = [r["score"] for r in out["results"]]
            assert scores == sorted(scores, reverse=True)
            assert all(r["reasoning"] for r in out["results"])
            assert out["model"] == ranker.model and out["cached"] is False

            top = await client.call_tool("rerank", {"query": QUERY, "documents": DOCS, "top_n": 2})
            assert [r["index"] for r in top.structured_content["results"]] == ORDER[:2]
            assert top.structured_content["cached"] is True  # the tool shares the ranker's cache

            bad = await client.call_tool("rerank", {"query": " ", "documents": DOCS})
            assert bad.is_error and "query must be a non-empty string" in bad.content[0].text


async def test_the_mcp_command_over_stdio():
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "reasonrank_plugins", "mcp", "--backend", "scripted", "--model", "overlap"],
    )
    async with Client(params) as client:
        result = await client.call_tool("rerank", {"query": QUERY, "documents": DOCS, "top_n": 3})
    assert not result.is_error
    assert [r["index"] for r in result.structured_content["results"]] == ORDER[:3]
