"""Real local backends: the tiny random Qwen2 on transformers and the demo GGUF on llama.cpp."""

import json
import shutil

import pytest

from reasonrank_plugins import ReasonRanker
from reasonrank_plugins.backends import GenerationRequest
from reasonrank_plugins.prompt import build_messages


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


def test_transformers_context_capacity_and_prompt_count(tiny_qwen):
    from reasonrank_plugins.backends.transformers import TransformersBackend

    backend = TransformersBackend(str(tiny_qwen), batch_size=3)
    try:
        assert backend.context_length == 32768  # the config's max_position_embeddings
        assert backend.capacity == 3
        request = GenerationRequest(build_messages("q", ["a", "b"]), max_tokens=2, prefix="<think>x")
        (generation,) = backend._run_batch([request])
        assert backend.count_tokens(request) == generation.prompt_tokens
        plain = GenerationRequest(request.messages, 2)
        ids = backend.tokenizer.apply_chat_template(
            plain.messages, add_generation_prompt=True, return_dict=False
        )
        assert backend.count_tokens(plain) == len(ids)
    finally:
        backend.close()
    small = TransformersBackend(str(tiny_qwen), context_length=512)
    assert small.context_length == 512
    small.close()
    with pytest.raises(ValueError, match="context_length"):
        TransformersBackend(str(tiny_qwen), context_length=0)


@pytest.fixture(scope="module")
def penalised_qwen(tiny_qwen, tmp_path_factory):
    """The tiny Qwen2 with ``repetition_penalty: 1.05`` in its generation_config.json (as Qwen2.5
    ships), and a token B whose embedding is 0.99 times that of the token A the model repeats
    greedily: plain argmax keeps A, a 1.05 penalty on the already generated A turns to B."""
    import torch
    from transformers import AutoModelForCausalLM

    from reasonrank_plugins.backends.transformers import TransformersBackend

    folder = tmp_path_factory.mktemp("penalised-qwen")
    for item in tiny_qwen.iterdir():
        if item.is_file():
            shutil.copy(item, folder / item.name)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_qwen))
    backend = TransformersBackend(str(tiny_qwen))
    request = penalised_request()
    ids = torch.tensor([backend.renderer.encode(backend.render(request))])
    backend.close()
    with torch.inference_mode():
        logits = model(ids).logits[0, -1]
    a, b = int(logits.argmax()), 100000
    assert logits[a] > 0
    with torch.no_grad():  # tied embeddings: B's output logit becomes 0.99 times A's
        model.get_input_embeddings().weight[b] = 0.99 * model.get_input_embeddings().weight[a]
    model.generation_config.repetition_penalty = 1.05
    model.save_pretrained(folder)
    assert json.loads((folder / "generation_config.json").read_text())["repetition_penalty"] == 1.05
    return folder, ids


def penalised_request() -> GenerationRequest:
    return GenerationRequest(build_messages("q", ["a", "b"]), max_tokens=6)


def test_transformers_decodes_exactly_greedy_whatever_the_generation_config(penalised_qwen):
    import torch
    from transformers import AutoModelForCausalLM

    from reasonrank_plugins.backends.transformers import TransformersBackend

    folder, ids = penalised_qwen
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    tokens = ids
    with torch.inference_mode():  # plain argmax decoding
        for _ in range(6):
            tokens = torch.cat([tokens, model(tokens).logits[:, -1:].argmax(-1)], 1)
        argmax = tokens[0, ids.shape[1] :].tolist()
        # the model's own generation_config (repetition_penalty 1.05) decodes otherwise
        stock = model.generate(ids, max_new_tokens=6, do_sample=False)[0, ids.shape[1] :].tolist()
    assert stock != argmax
    backend = TransformersBackend(str(folder))
    try:
        (generation,) = backend._run_batch([penalised_request()])
    finally:
        backend.close()
    assert generation.text == backend.tokenizer.decode(argmax, skip_special_tokens=True)
    assert generation.completion_tokens == 6


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
    query, passages = dl19_top(1, 20)  # 20 passages: the greedy demo model runs past 1 + 100 tokens here
    with ReasonRanker(backend=demo_ranker.backend, reasoning_budget=1, max_passage_tokens=60) as small:
        result = small.rerank(query, passages)
    assert demo_ranker.backend.llm is not None  # a shared backend stays open
    (window,) = result.windows
    assert window.forced and sorted(result.order) == list(range(20))
    assert "</think>\n<answer>" in window.output and window.error is None
    assert str(window.status) in ("ok", "repaired", "failed"), window.output  # the weak model may not rank


@pytest.mark.slow
def test_llamacpp_context_capacity_and_the_shared_rendering(demo_ranker, tmp_path):
    from reasonrank_plugins.backends.rendering import ChatRenderer, load_tokenizer
    from reasonrank_plugins.testing import make_qwen25_tokenizer

    backend = demo_ranker.backend
    assert (backend.context_length, backend.capacity) == (8192, 1)  # the ranker's n_ctx
    qwen = ChatRenderer(load_tokenizer(make_qwen25_tokenizer(tmp_path)))
    messages = build_messages("what is bm25", ["BM25 ranks.", "Paris."])
    request = GenerationRequest(messages, 4, prefix="<think>")
    # the GGUF's embedded template and llama.cpp's tokenizer give what the Hugging Face path gives
    assert backend.render(request) == qwen.render(request.messages, request.prefix)
    assert backend._tokens(request) == qwen.encode(qwen.render(request.messages, request.prefix))
    assert backend.count_tokens(request) == qwen.count(request)


@pytest.mark.slow
def test_llamacpp_decodes_exactly_greedy(demo_ranker):
    import numpy as np

    backend = demo_ranker.backend
    request = GenerationRequest(build_messages("what is bm25", ["BM25 ranks documents.", "Paris."]), 5)
    generation = backend._complete(request)
    assert generation.prompt_tokens == backend.count_tokens(request)
    llm = backend.llm
    llm.reset()
    argmax: list[int] = []
    for _ in range(generation.completion_tokens):  # the last position's logits, argmax
        llm.eval(argmax[-1:] if argmax else backend._tokens(request))
        argmax.append(int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)))))
    assert generation.text == llm.detokenize(argmax).decode("utf-8")


def test_two_rankers_share_one_transformers_backend_from_threads_and_asyncio(tiny_qwen):
    """One micro-batcher, one engine loop: windows from both rankers, several threads and an asyncio
    caller are batched together, and each result equals that ranker's result alone."""
    import asyncio
    import threading

    from reasonrank_plugins.backends import load_backend

    backend = load_backend(str(tiny_qwen), "transformers", batch_size=8)
    passages = [f"passage {i} about topic {i % 3}" for i in range(6)]
    try:
        a = ReasonRanker(backend=backend, window_size=4, step=2, reasoning_budget=1, max_passage_tokens=8)
        b = ReasonRanker(backend=backend, window_size=3, step=1, reasoning_budget=1, max_passage_tokens=8)
        alone = {"a": a.rerank("q", passages).order, "b": b.rerank("q", passages).order}
        got, errors = [], []

        def call(name, ranker):
            try:
                got.append((name, ranker.rerank("q", passages).order))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=call, args=pair) for pair in (("a", a), ("b", b)) * 2]
        for t in threads:
            t.start()

        async def both():
            return await asyncio.gather(a.arerank("q", passages), b.arerank("q", passages))

        async_a, async_b = asyncio.run(both())
        for t in threads:
            t.join()
        assert not errors and len(got) == 4
        assert all(order == alone[name] for name, order in got)
        assert (async_a.order, async_b.order) == (alone["a"], alone["b"])
        assert max(backend.batch_sizes) > 1  # concurrent windows of both rankers shared batches
        a.close()
        b.close()
    finally:
        backend.close()


def test_llamacpp_threads_default_to_the_cores_this_process_may_use(tmp_path):
    """``available_cores``: the CPU affinity, capped by a cgroup v2 quota; an unreadable or unlimited
    quota leaves the affinity."""
    import os

    from reasonrank_plugins.backends.llamacpp import available_cores

    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    assert available_cores(cpu_max) == affinity  # no such file
    cpu_max.write_text("max 100000\n")
    assert available_cores(cpu_max) == affinity
    cpu_max.write_text("50000 100000\n")  # half a core still gets one thread
    assert available_cores(cpu_max) == 1
    cpu_max.write_text(f"{(affinity + 4) * 100000} 100000\n")  # a quota above the affinity
    assert available_cores(cpu_max) == affinity
    cpu_max.write_text("garbage\n")
    assert available_cores(cpu_max) == affinity
