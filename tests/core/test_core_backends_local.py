"""Real local backends: the tiny random Qwen2 on transformers and the demo GGUF on llama.cpp."""

import pytest

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.backends import GenerationRequest


def test_transformers_tiny_model_end_to_end(tiny_qwen):
    passages = [f"passage number {i} about topic {i % 3}" for i in range(7)]
    with ReasonRanker(str(tiny_qwen), backend="transformers", window_size=4, step=2,
                      reasoning_budget=6, max_passage_tokens=8, batch_size=4) as ranker:
        results = ranker.rerank_many([("first query", passages), ("second query", passages[:3])])
        backend = ranker.backend
        assert backend.device == "cpu"
        # the random model never writes an answer in 6 tokens: every window is forced
        for result, n in zip(results, (7, 3)):
            assert sorted(result.order) == list(range(n))
            assert result.windows and all(w.forced for w in result.windows)
            assert all(w.prompt_tokens > 50 and w.completion_tokens > 0 for w in result.windows)
            assert all("</think>\n<answer>" in w.output for w in result.windows)
        assert max(backend.batch_sizes) == 2  # the two queries' windows were batched together
        long = "word " * 100
        assert len(backend.tokenizer.encode(backend.truncate(long, 8))) == 8
        assert backend.truncate("short", 8) == "short"
    assert backend.model is None  # close() freed the model this ranker loaded


def test_transformers_batched_generation_matches_single(tiny_qwen):
    """Left padding must not change greedy output: the same request alone and in a batch."""
    with ReasonRanker(str(tiny_qwen), backend="transformers") as ranker:
        backend = ranker.backend
        from reasonrank_plugins.prompt import build_messages

        short = GenerationRequest(build_messages("q", ["a", "b"]), max_tokens=12)
        long = GenerationRequest(build_messages("a much longer query here", ["x " * 40, "y " * 30]), 12)
        alone = backend._run_batch([short])[0]
        batched = backend._run_batch([short, long])[0]
        assert alone.text == batched.text and alone.prompt_tokens == batched.prompt_tokens


@pytest.mark.slow
def test_llamacpp_demo_model_on_a_dl19_window(demo_ranker, dl19_top):
    query, passages = dl19_top(0, 20)
    result = demo_ranker.rerank(query, passages)
    assert sorted(result.order) == list(range(20))
    (window,) = result.windows
    assert str(window.status) in ("ok", "repaired"), window.output
    assert window.answer and "[" in window.answer
    assert 1000 < window.prompt_tokens < 4000 and window.completion_tokens > 0
    assert demo_ranker.backend.truncate("word " * 300, 100).count("word") <= 100


@pytest.mark.slow
def test_llamacpp_forced_answer_continues_the_same_prompt(demo_ranker, dl19_top):
    query, passages = dl19_top(1, 5)
    with ReasonRanker(backend=demo_ranker.backend, reasoning_budget=8) as small:
        result = small.rerank(query, passages)
    assert demo_ranker.backend.llm is not None  # a shared backend stays open
    (window,) = result.windows
    assert window.forced and sorted(result.order) == list(range(5))
    assert "</think>\n<answer>" in window.output
    assert str(window.status) in ("ok", "repaired"), window.output
