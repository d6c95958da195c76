"""The one rendering path every tokenizer-based backend uses: render, encode, count, truncate, load."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reasonrank_plugins.backends.base import GenerationRequest
from reasonrank_plugins.backends.rendering import (
    ChatRenderer,
    continue_prompt,
    find_tokenizer,
    load_tokenizer,
)
from reasonrank_plugins.prompt import build_messages
from reasonrank_plugins.testing import make_qwen25_tokenizer

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
QWEN_PROMPT = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
# a template that writes a BOS and opens <think> itself (as Llama-style and Qwen3-style templates do)
BOS_THINK_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)
TEXT = "Okapi BM25 ranks documents by term frequency saturation and length normalisation. " * 8


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    return make_qwen25_tokenizer(tmp_path_factory.mktemp("qwen25"))


@pytest.fixture
def qwen(tokenizer_dir) -> ChatRenderer:
    return ChatRenderer(load_tokenizer(tokenizer_dir))


@pytest.fixture
def bos_think(tokenizer_dir) -> ChatRenderer:
    tokenizer = load_tokenizer(tokenizer_dir)
    tokenizer.chat_template = BOS_THINK_TEMPLATE
    tokenizer.bos_token = "<|endoftext|>"
    return ChatRenderer(tokenizer)


def template_ids(renderer: ChatRenderer, messages) -> list[int]:
    """What the chat template itself tokenizes to (BOS included when it writes one)."""
    return renderer.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)


def test_render_is_the_template_then_the_prefix_without_bos_on_qwen(qwen):
    assert qwen.tokenizer.bos_token is None  # Qwen has no BOS
    assert qwen.render(MESSAGES) == QWEN_PROMPT
    assert qwen.render(MESSAGES, "<think>x</think>\n<answer>") == QWEN_PROMPT + "<think>x</think>\n<answer>"
    assert qwen.encode(qwen.render(MESSAGES)) == template_ids(qwen, MESSAGES)
    assert qwen.count(GenerationRequest(MESSAGES, 8)) == len(template_ids(qwen, MESSAGES))


def test_a_template_bos_is_off_the_text_and_once_in_the_ids(bos_think):
    bos, bos_id = bos_think.tokenizer.bos_token, bos_think.tokenizer.bos_token_id
    prompt = bos_think.render(MESSAGES)
    assert not prompt.startswith(bos)  # a server or llama.cpp adds it when tokenizing
    ids = bos_think.encode(prompt)
    assert ids == template_ids(bos_think, MESSAGES) and ids.count(bos_id) == 1 and ids[0] == bos_id


def test_encode_learns_the_bos_before_any_render(bos_think):
    ids = bos_think.encode("<|im_start|>user\nU<|im_end|>\n")
    assert ids[0] == bos_think.tokenizer.bos_token_id and ids.count(ids[0]) == 1


def test_a_think_prefix_is_not_repeated_after_a_template_that_opened_it(bos_think, qwen):
    forced = "<think>reasons</think>\n<answer>"
    prompt = bos_think.render(MESSAGES, forced)
    assert prompt.endswith("assistant\n<think>\nreasons</think>\n<answer>") and prompt.count("<think>") == 1
    assert bos_think.render(MESSAGES, "<answer>").endswith("<think>\n<answer>")
    assert qwen.render(MESSAGES, forced).count("<think>") == 1  # Qwen2.5 opens nothing: the prefix stays


def test_continue_prompt_alone():
    assert continue_prompt("<s>A\n<think>\n", "<think>\nB", "<s>") == "A\n<think>\nB"
    assert continue_prompt("<s>A\n", "<think>B", "<s>") == "A\n<think>B"
    assert continue_prompt("A <s>", "", "<s>") == "A <s>"  # only a leading BOS goes
    assert continue_prompt("A", "B", None) == "AB"


def test_count_covers_the_prefix(qwen):
    plain = qwen.count(GenerationRequest(MESSAGES, 8))
    forced = GenerationRequest(MESSAGES, 8, prefix="<think>x</think>\n<answer>")
    assert qwen.count(forced) == plain + len(qwen.tokenizer.encode(forced.prefix, add_special_tokens=False))


def test_truncate_is_exact_in_model_tokens(qwen):
    cut = qwen.truncate(TEXT, 12)
    assert TEXT.startswith(cut) and len(qwen.tokenizer.encode(cut, add_special_tokens=False)) == 12
    assert qwen.truncate("short text", 12) == "short text"


def test_batch_pads_on_the_tokenizer_side(qwen):
    qwen.tokenizer.padding_side = "left"
    prompts = [qwen.render(build_messages("q", ["a"])), qwen.render(build_messages("a longer query", [TEXT]))]
    batch = qwen.batch(prompts)
    rows = [qwen.encode(p) for p in prompts]
    width = max(map(len, rows))
    assert list(batch["input_ids"].shape) == [2, width]
    for row, ids, mask in zip(batch["input_ids"].tolist(), rows, batch["attention_mask"].tolist()):
        assert row[width - len(ids) :] == ids and mask == [0] * (width - len(ids)) + [1] * len(ids)


class BorrowChecked:
    """A tokenizer whose methods raise "Already borrowed" when a second thread enters one while
    another runs (as the Rust tokenizer behind a fast tokenizer does when its padding or truncation
    is changed during an encode), each call holding the tokenizer for a moment."""

    def __init__(self, tokenizer) -> None:
        self._tokenizer, self._busy = tokenizer, threading.Lock()

    def __getattr__(self, name):
        value = getattr(self._tokenizer, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            if not self._busy.acquire(blocking=False):
                raise RuntimeError("Already borrowed")
            try:
                time.sleep(0.001)
                return value(*args, **kwargs)
            finally:
                self._busy.release()

        return call

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._tokenizer, name, value)


@pytest.mark.parametrize("checked", [False, True], ids=["fast-tokenizer", "borrow-checked"])
def test_concurrent_truncation_and_padded_batches_are_safe_and_exact(tokenizer_dir, checked):
    """The transformers backend truncates on the engine's thread while its batcher thread encodes
    padded batches with the same fast tokenizer."""
    tokenizer = load_tokenizer(tokenizer_dir)
    tokenizer.padding_side = "left"
    renderer = ChatRenderer(BorrowChecked(tokenizer) if checked else tokenizer)
    prompts = [renderer.render(build_messages(f"query {i}", [TEXT[: 50 * (i + 1)]])) for i in range(6)]
    want_cuts = {n: renderer.truncate(TEXT, n) for n in range(5, 40, 3 if checked else 1)}
    want_batch = renderer.batch(prompts)["input_ids"].tolist()
    errors: list[Exception] = []
    start = threading.Barrier(6)
    rounds = 3 if checked else 20

    def cutter() -> None:
        start.wait()
        for _ in range(rounds):
            for n, want in want_cuts.items():
                if renderer.truncate(TEXT, n) != want:
                    raise AssertionError(f"truncate({n}) changed under concurrency")

    def batcher() -> None:
        start.wait()
        for _ in range(rounds * 3):
            if renderer.batch(prompts)["input_ids"].tolist() != want_batch:
                raise AssertionError("a padded batch changed under concurrency")

    def run(target) -> None:
        try:
            target()
        except Exception as exc:  # noqa: BLE001 - reported below, from the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f,)) for f in (cutter, batcher) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_renderer_needs_a_chat_tokenizer():
    with pytest.raises(ValueError, match="tokenizer"):
        ChatRenderer(object())


# -- loading ------------------------------------------------------------------------------------
def test_load_tokenizer_takes_an_object_or_a_folder(tokenizer_dir):
    tokenizer = load_tokenizer(tokenizer_dir)
    assert load_tokenizer(tokenizer) is tokenizer
    assert load_tokenizer(str(tokenizer_dir)).encode("hello") == tokenizer.encode("hello")
    with pytest.raises(ValueError, match="tokenizer"):
        load_tokenizer("")


def test_find_tokenizer_from_a_local_folder_or_nothing(tokenizer_dir, tmp_path):
    found, reason = find_tokenizer(str(tokenizer_dir))
    assert found is not None and reason is None
    assert find_tokenizer(str(tmp_path))[0] is None  # a folder without tokenizer files
    missing, reason = find_tokenizer("nobody/not-cached-anywhere")
    assert missing is None and "cache" in reason
    assert find_tokenizer("not a hub id!")[0] is None


HUB_SCRIPT = """
import logging, sys
from reasonrank_plugins.backends.rendering import find_tokenizer
from reasonrank_plugins.backends.openai import OpenAIBackend
tokenizer, reason = find_tokenizer("org/tiny-qwen")
assert tokenizer is not None, reason
backend = OpenAIBackend("org/tiny-qwen", base_url="http://127.0.0.1:9/v1")
text = "Okapi BM25 ranks documents by term frequency saturation and length normalisation. " * 4
cut = backend.truncate(text, 9)
print(backend.forced_answer, len(tokenizer.encode(cut, add_special_tokens=False)), text.startswith(cut))
"""


def test_a_hub_id_loads_offline_from_the_hugging_face_cache(tokenizer_dir, tmp_path):
    """A hub id resolves from an HF cache (models--org--name/snapshots/<hash>, refs/main) with
    HF_HUB_OFFLINE=1; the openai backend then truncates with it. In a fresh process, because
    huggingface_hub reads its cache location at import."""
    repo = tmp_path / "hub" / "models--org--tiny-qwen"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tokenizer_dir, snapshot)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "qwen2"}))  # a hub repo has one
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": str(tmp_path / "hub")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", HUB_SCRIPT], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["completions", "9", "True"]


def test_a_bad_local_folder_falls_back_with_a_warning(tmp_path, caplog):
    from reasonrank_plugins.backends.openai import OpenAIBackend

    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "NoSuchTokenizer"}))
    with caplog.at_level(logging.WARNING, logger="reasonrank_plugins.backends.openai"):
        backend = OpenAIBackend(str(tmp_path), base_url="http://127.0.0.1:9/v1")
    assert backend.tokenizer is None and backend.forced_answer == "chat"
    assert any("without tokenizer" in m and str(tmp_path) in m for m in caplog.messages)
    assert len(backend.truncate("word " * 100, 5)) <= 5 * 4


def test_render_applies_the_reference_final_ftfy_pass_but_never_to_the_prefix(tmp_path):
    from reasonrank_plugins.testing import make_qwen25_tokenizer

    renderer = ChatRenderer(load_tokenizer(make_qwen25_tokenizer(tmp_path / "tok")))
    messages = [{"role": "user", "content": "cafÃ© query"}]
    prompt = renderer.render(messages, prefix="<think>cafÃ©")
    assert "café query" in prompt and prompt.endswith("<think>cafÃ©")
