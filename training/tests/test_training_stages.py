"""Fast checks of the stages' pieces: inputs, teacher messages and replies, filter, examples."""

import asyncio
import json

import pytest
from reasonrank_training.data import QueryItem, load_beir, load_items, load_qrels, windows
from reasonrank_training.evaluate import ids_listed
from reasonrank_training.examples import grpo_example, sft_example, target_text
from reasonrank_training.filtering import filter_records
from reasonrank_training.synth import (
    SynthConfig,
    pointwise_messages,
    rankgpt_messages,
    relevant_ids,
    synthesize,
)
from reasonrank_training.teacher import RequestCache, Teacher, split_reasoning

from reasonrank_plugins.prompt import build_messages
from reasonrank_plugins.testing import make_qwen25_tokenizer


def record(final_list, qid="q1", dataset="a", relevant=("d2",), reasoning="because"):
    return {
        "id": f"{qid}:0-3#0",
        "qid": qid,
        "query": "what is x",
        "dataset": dataset,
        "candidates": [{"docid": d, "text": f"text of {d}", "title": ""} for d in ("d1", "d2", "d3")],
        "initial_list": ["d1", "d2", "d3"],
        "relevant_docids": list(relevant),
        "reasoning": reasoning,
        "final_list": final_list,
    }


def test_load_beir_keeps_run_order_and_depth(dl19):
    items = load_beir(dl19, depth=5)
    assert len(items) == 43 and all(len(i.candidates) == 5 for i in items)
    first_run_line = (dl19 / "run.bm25.trec").read_text().splitlines()[0].split()
    assert items[0].qid == first_run_line[0] and items[0].candidates[0]["docid"] == first_run_line[2]
    assert items[0].dataset == "dl19"


def test_load_records_jsonl(tmp_path):
    path = tmp_path / "mine.jsonl"
    row = {
        "qid": 7,
        "query": "q",
        "answer": "a",
        "candidates": [{"docid": 1, "text": "t"}, {"docid": "2", "text": "u"}],
    }
    path.write_text(json.dumps(row) + "\n")
    (item,) = load_items(path, depth=1)
    assert (item.qid, item.answer, item.dataset, item.candidates) == (
        "7",
        "a",
        "mine",
        [{"docid": "1", "text": "t"}],
    )


def test_windows_use_core_spans():
    item = QueryItem("q", "x", [{"docid": str(i), "text": ""} for i in range(30)])
    assert [(w.start, w.end) for w in windows([item], 20, 10)] == [(10, 30), (0, 20)]
    (only,) = windows([QueryItem("q", "x", [{"docid": "a", "text": ""}])], 20, 10)
    assert only.initial_list == ["a"]


def test_qrels(dl19):
    qrels = load_qrels(dl19 / "qrels.trec")
    assert len(qrels) == 43 and max(max(v.values()) for v in qrels.values()) == 3


def test_rankgpt_messages_are_multi_turn():
    messages = rankgpt_messages("q?", ["alpha", "beta"])
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[3]["content"] == "[1] alpha" and messages[6]["content"] == "Received passage [2]."
    assert "Rank the 2 passages" in messages[-1]["content"]


def test_pointwise_messages_carry_the_answer_only_when_given():
    assert "Reference answer: 42" in pointwise_messages("q", ["a"], "42")[1]["content"]
    assert "Reference answer" not in pointwise_messages("q", ["a"], None)[1]["content"]


@pytest.mark.parametrize(
    ("reply", "ids"),
    [
        ("[1] is off topic.\nRelevant: [3], [2], [3], [9]", [3, 2]),
        ("Relevant: none", []),
        ("I think [2] and [1]", [2, 1]),
        ("relevant: [1]\n...\nRelevant: [2]", [2]),
    ],
)
def test_relevant_ids(reply, ids):
    assert relevant_ids(reply, 3) == ids


def test_split_reasoning():
    assert split_reasoning("<think> a\nb </think>\n[1] > [2]") == ("a\nb", "[1] > [2]")
    assert split_reasoning("[1] > [2]", "from the field") == ("from the field", "[1] > [2]")
    assert split_reasoning("<think>cut off") == ("cut off", "")
    assert split_reasoning("[2] > [1]") == ("", "[2] > [1]")
    # an R1 server that sends reasoning_content and a <think> block in the content as well
    both = split_reasoning("<think>[1] is off-topic</think>\n[3] > [1]", "the field's chain")
    assert both == ("the field's chain\n\n[1] is off-topic", "[3] > [1]")
    assert split_reasoning("<think>same</think> [2] > [1]", "same") == ("same", "[2] > [1]")


def test_request_cache_round_trip(tmp_path):
    cache = RequestCache(tmp_path / "c.jsonl")
    key = cache.key({"messages": [{"role": "user", "content": "x"}], "max_tokens": 5})
    assert key != cache.key({"messages": [{"role": "user", "content": "x"}], "max_tokens": 6})
    cache.put(key, {"content": "y"})
    assert RequestCache(tmp_path / "c.jsonl").get(key) == {"content": "y"}


def test_filter_by_alpha_and_completeness():
    records = [
        record("[2] > [1] > [3]"),  # nDCG 1, complete
        record("[2] > [1]"),  # nDCG 1, misses [3]
        record("[1] > [3] > [2]", dataset="b"),  # d2 third: nDCG 1/log2(4) = 0.5
        record("[3] > [1] > [2]", dataset="b"),  # 0.5 as well
        record("[2] > [3] > [1]", dataset="b"),  # nDCG 1
    ]
    kept, report = filter_records(records, alpha=0.6)
    assert [r["final_list"] for r in kept] == ["[2] > [1] > [3]", "[2] > [1]", "[2] > [3] > [1]"]
    assert kept[1]["order"] == [1, 0, 2] and not kept[1]["complete"] and kept[2]["complete"]
    summary = report.as_dict()
    assert summary["datasets"]["a"]["kept"] == 2 and summary["datasets"]["b"]["kept"] == 1
    assert (summary["total"], summary["kept"], summary["failed"], summary["truncated"]) == (5, 3, 0, 0)
    kept, _ = filter_records(records, alpha=0.6, require_complete=True)
    assert [r["final_list"] for r in kept] == ["[2] > [1] > [3]", "[2] > [3] > [1]"]


@pytest.mark.parametrize("final_list", ["garbage", "", None, "[] > []", "[0] > [9]"])
def test_failed_parse_is_dropped_and_counted(final_list):
    # read as the input order, "garbage" would score nDCG 0.63 (d2 second) and pass alpha 0
    kept, report = filter_records([record(final_list), record("[2] > [1] > [3]")], alpha=0.0)
    assert [r["final_list"] for r in kept] == ["[2] > [1] > [3]"]
    summary = report.as_dict()
    assert (summary["total"], summary["kept"], summary["failed"]) == (2, 1, 1)
    assert summary["datasets"]["a"]["failed"] == 1


def test_truncated_reply_is_dropped_and_counted():
    cut = {**record("[2] > [1] > [3]"), "finish_reason": "length", "truncated": True}
    old = {**record("[2] > [1] > [3]"), "finish_reason": "length"}  # a record written before `truncated`
    whole = {**record("[2] > [1] > [3]"), "finish_reason": "stop", "truncated": False}
    kept, report = filter_records([cut, old, whole], alpha=0.0)
    assert kept == [filter_records([whole], alpha=0.0)[0][0]]
    assert (report.as_dict()["truncated"], report.as_dict()["kept"]) == (2, 1)
    kept, report = filter_records([cut, old, whole], alpha=0.0, keep_truncated=True)
    assert len(kept) == 3 and report.as_dict()["truncated"] == 0


@pytest.mark.parametrize(
    ("final_list", "complete"),
    [
        ("[]\n[] [2] > [1] > [3]", True),  # the demo model's empty brackets are no ids: all three listed once
        ("2 > 1 > 3", True),  # bare numbers
        ("[2] > [1] > [3] > [1]", False),  # a repeated id
        ("[2] > [3]", False),  # a missing id
    ],
)
def test_complete_means_every_id_exactly_once(final_list, complete):
    [scored], _ = filter_records([record(final_list)], alpha=0.0)
    assert scored["complete"] is complete


def test_filter_prefers_real_qrels():
    qrels = {"q1": {"d3": 2, "d2": 0}}
    kept, _ = filter_records([record("[2] > [1] > [3]"), record("[3] > [1] > [2]")], alpha=0.9, qrels=qrels)
    assert [r["final_list"] for r in kept] == ["[3] > [1] > [2]"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(make_qwen25_tokenizer(tmp_path_factory.mktemp("tok")))


def test_sft_example_uses_the_core_prompt(tokenizer):
    rec = record("[2] > [1]", reasoning=" d2 defines x ")
    rec["candidates"][0]["text"] = "word " * 50
    example = sft_example(rec, tokenizer, max_passage_tokens=8)
    truncated = tokenizer.decode(tokenizer.encode(("word " * 50).strip())[:8])
    assert example["prompt"] == build_messages("what is x", [truncated, "text of d2", "text of d3"])
    assert example["completion"] == [
        {"role": "assistant", "content": "<think>d2 defines x</think> <answer>[2] > [1] > [3]</answer>"}
    ]


def test_grpo_example_carries_reward_inputs(tokenizer):
    example = grpo_example(record("[3] > [1]"), tokenizer, max_passage_tokens=64)
    assert example["gold_list"] == "[3] > [1] > [2]"
    assert example["initial_list"] == ["d1", "d2", "d3"] and example["relevant_docids"] == ["d2"]
    assert target_text({**record("x"), "order": [2, 0, 1]}).endswith("<answer>[3] > [1] > [2]</answer>")


@pytest.mark.parametrize(
    ("answer", "listed"),
    [
        ("[2] > [1] > [3]", 3),  # complete
        ("[2] > [2] > [1]", 2),  # a duplicate counts once
        ("[3] > [9]", 1),  # out of range is not listed
        ("2 > 1 > 3", 3),  # bare numbers (no brackets) are read
        ("[0] > [-1]", 0),  # nothing valid: a failed parse lists nothing
        ("", 0),
    ],
)
def test_ids_listed_counts_distinct_valid_ids(answer, listed):
    assert ids_listed(answer, 3) == listed


def _teacher_server(requests: list[dict]):
    """An OpenAI-compatible endpoint (httpx MockTransport): chat replies with a bare list and no tags,
    as the demo model does; completions continue a forced prefix with the ranking."""
    import httpx

    usage = {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57}

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append({"path": request.url.path, **body})
        if request.url.path.endswith("/chat/completions"):
            message = {"role": "assistant", "content": "[] > [3] > [1]"}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return httpx.Response(200, json={"id": "c", "object": "chat.completion", "created": 0,
                                             "model": "t", "choices": [choice], "usage": usage})  # fmt: skip
        choice = {"index": 0, "text": " [3] > [1] > [2] ", "finish_reason": "stop", "logprobs": None}
        return httpx.Response(200, json={"id": "c", "object": "text_completion", "created": 0,
                                         "model": "t", "choices": [choice], "usage": usage})  # fmt: skip

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


@pytest.mark.parametrize("with_tokenizer", [True, False])
def test_synth_forces_a_missing_answer_like_the_engine(tmp_path, tokenizer, with_tokenizer):
    from openai import AsyncOpenAI

    requests: list[dict] = []
    item = QueryItem("q1", "what is x", [{"docid": f"d{i}", "text": f"text {i}"} for i in (1, 2, 3)])
    config = SynthConfig(
        prompt="reasonrank", window_size=3, temperature=0.8, max_tokens=64, pointwise="never"
    )

    async def go():
        teacher = Teacher("http://teacher/v1", "t", tokenizer=tokenizer if with_tokenizer else None)
        teacher.client = AsyncOpenAI(
            base_url="http://teacher/v1", api_key="x", http_client=_teacher_server(requests)
        )
        usage = await synthesize([item], teacher, tmp_path / "s.jsonl", config, show_progress=False)
        await teacher.close()
        return usage

    usage = asyncio.run(go())
    [rec] = [json.loads(line) for line in (tmp_path / "s.jsonl").open()]
    if not with_tokenizer:  # no way to continue the turn: the sample keeps no answer (the filter drops it)
        assert [r["path"] for r in requests] == ["/v1/chat/completions"]
        assert rec["final_list"] == "" and rec["forced"] is False
        return
    chat, completion = requests
    assert completion["path"] == "/v1/completions" and completion["stop"] == ["</answer>"]
    assert completion["prompt"].endswith("<|im_start|>assistant\n[] > [3] > [1]</think>\n<answer>")
    assert completion["temperature"] == chat["temperature"] == 0.8
    assert rec["forced"] is True and rec["final_list"] == "[3] > [1] > [2]"
    assert rec["reasoning"] == "[] > [3] > [1]"  # what the teacher wrote before the forced answer
    assert rec["usage"]["calls"] == usage.calls == 2


def _r1_server(requests: list[dict], content: str, finish_reason: str):
    """An OpenAI-compatible endpoint (httpx MockTransport) answering as DeepSeek-R1 does: the chain
    of thought in ``reasoning_content``, here with a ``<think>`` block in the content too."""
    import httpx

    usage = {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57}

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(json.loads(request.content))
        message = {
            "role": "assistant",
            "content": content,
            "reasoning_content": "I read [2] twice: [2] > [2]",
        }
        choice = {"index": 0, "message": message, "finish_reason": finish_reason}
        return httpx.Response(200, json={"id": "c", "object": "chat.completion", "created": 0,
                                         "model": "t", "choices": [choice], "usage": usage})  # fmt: skip

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


@pytest.mark.parametrize(
    ("prompt", "content"),
    [
        ("rankgpt", "<think>[1] is off-topic, [2] > [1]</think>\n[3] > [1] > [2]"),
        ("reasonrank", "<think>[1] is off-topic, [2] > [1]</think>\n<answer>[3] > [1] > [2]</answer>"),
    ],
)
@pytest.mark.parametrize("finish_reason", ["stop", "length"])
def test_r1_reply_with_reasoning_content_and_think_block(tmp_path, prompt, content, finish_reason):
    from openai import AsyncOpenAI

    requests: list[dict] = []
    item = QueryItem("q1", "what is x", [{"docid": f"d{i}", "text": f"text {i}"} for i in (1, 2, 3)])
    config = SynthConfig(prompt=prompt, window_size=3, pointwise="never")

    async def go():
        teacher = Teacher("http://teacher/v1", "t")
        teacher.client = AsyncOpenAI(
            base_url="http://teacher/v1",
            api_key="x",
            http_client=_r1_server(requests, content, finish_reason),
        )
        await synthesize([item], teacher, tmp_path / "s.jsonl", config, show_progress=False)
        await teacher.close()

    asyncio.run(go())
    [rec] = [json.loads(line) for line in (tmp_path / "s.jsonl").open()]
    assert requests[0]["max_tokens"] == 65536  # DeepSeek-R1's maximum: its chain of thought counts
    assert rec["final_list"] == "[3] > [1] > [2]"  # no id of the reasoning leaks into the ranking
    assert "I read [2] twice" in rec["reasoning"] and "[1] is off-topic" in rec["reasoning"]
    assert rec["truncated"] is (finish_reason == "length")
    kept, report = filter_records([{**rec, "relevant_docids": ["d3"]}], alpha=0.5)
    assert len(kept) == (finish_reason == "stop") and report.as_dict()["truncated"] == (
        finish_reason == "length"
    )
    if kept:
        assert kept[0]["order"] == [2, 0, 1] and kept[0]["ndcg@10"] == 1.0


def test_synth_cuts_passages_with_the_teacher_tokenizer_as_the_student_sees_them(tmp_path, tokenizer):
    from openai import AsyncOpenAI

    requests: list[dict] = []
    long_text = " ".join(f"alpha{i}" for i in range(40))
    item = QueryItem("q1", "what is x", [{"docid": f"d{i}", "text": long_text} for i in (1, 2, 3)])
    config = SynthConfig(
        prompt="reasonrank", window_size=3, max_tokens=64, pointwise="never", max_passage_tokens=6
    )

    async def go(teacher):
        teacher.client = AsyncOpenAI(
            base_url="http://teacher/v1", api_key="x", http_client=_teacher_server(requests)
        )
        await synthesize([item], teacher, tmp_path / "s.jsonl", config, show_progress=False)
        await teacher.close()

    asyncio.run(go(Teacher("http://teacher/v1", "t", tokenizer=tokenizer)))
    record = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])
    # the teacher saw exactly the prompt that SFT trains the student on
    [system, user] = requests[0]["messages"]
    assert [system, user] == sft_example(record, tokenizer, max_passage_tokens=6)["prompt"]
    cut = tokenizer.decode(tokenizer.encode(long_text)[:6])
    assert f"[1] {cut}\n" in user["content"] and long_text not in user["content"]

    with pytest.raises(ValueError, match="tokenizer"):
        asyncio.run(go(Teacher("http://teacher/v1", "t")))


def test_model_card_names_both_versions_from_their_packages():
    import reasonrank_training
    from reasonrank_training.export import model_card

    import reasonrank_plugins

    card = model_card("my-reranker", [])
    assert f"`reasonrank-training` {reasonrank_training.__version__} " in card
    assert f'pip install "reasonrank-plugins[transformers]=={reasonrank_plugins.__version__}"' in card
