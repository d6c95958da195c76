"""The server on the real demo model (llama.cpp), called by Cohere's SDK unchanged."""

from __future__ import annotations

import cohere
import pytest

DOCS = [
    "Paris is the capital and largest city of France.",
    "Bananas are rich in potassium.",
    "The Eiffel Tower is a landmark in Paris, France.",
    "Python is a programming language.",
]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_model_serves_a_cohere_client(server_factory):
    server = server_factory(
        "--model",
        "demo-0.5b",
        "--max-passage-tokens",
        "64",
        "--reasoning-budget",
        "96",
        env={"REASONRANK_TOKEN": "demo-token"},
        ready_timeout=300,
    )
    client = cohere.ClientV2(base_url=server.url, api_key="demo-token", timeout=540)
    response = client.rerank(model="demo-0.5b", query="What is the capital of France?", documents=DOCS, top_n=4)
    assert sorted(r.index for r in response.results) == [0, 1, 2, 3]
    scores = [r.relevance_score for r in response.results]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    assert all(isinstance(r.reasoning, str) for r in response.results)  # our extra field
    usage = response.usage  # extra field, kept by the SDK's permissive models
    assert usage["windows"] == 1 and usage["prompt_tokens"] > 100 and usage["completion_tokens"] > 0
    assert response.model == "demo-0.5b"  # the requested model, echoed
    server.stop()
