import ftfy
import pytest

from reasonrank_plugins import Passage
from reasonrank_plugins.prompt import (
    ANSWER_TOKENS,
    SYSTEM_PROMPT,
    build_messages,
    finalize_messages,
    finalize_prompt,
    generation_budget,
    passage_content,
    prepare_query,
)

SYSTEM = (
    "You are RankLLM, an intelligent assistant that can rank passages based on their relevance to the query. "
    "Given a query and a passage list, you first thinks about the reasoning process in the mind and then "
    "provides the answer (i.e., the reranked passage list). The reasoning process and answer are enclosed "
    "within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process here "
    "</think> <answer> answer here </answer>."
)


def test_system_prompt_is_the_reference_text():
    assert SYSTEM_PROMPT == SYSTEM
    assert build_messages("q", ["a"])[0] == {"role": "system", "content": SYSTEM}


def test_user_message_byte_for_byte():
    messages = build_messages("what is bm25", ["first passage", "second passage"])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"] == (
        "I will provide you with 2 passages, each indicated by a numerical identifier []. "
        "Rank the passages based on their relevance to the search query: what is bm25.\n"
        "\n"
        "[1] first passage\n"
        "[2] second passage\n"
        "Search Query: what is bm25.\n"
        "Rank the 2 passages above based on their relevance to the search query. All the passages should "
        "be included and listed using identifiers, in descending order of relevance. The format of the "
        "answer should be [] > [], e.g., [2] > [1]."
    )


def test_titles_brackets_stripping_and_ftfy():
    messages = build_messages(
        "see [2] and [10]",
        [
            Passage("  body text [3] here ", title="My Title"),
            "  plain [1] text\n",
            Passage("no title", title=""),
            "mojibake: cafÃ©",
        ],
    )
    user = messages[1]["content"]
    assert "search query: see (2) and (10).\n" in user
    assert "\n[1] Title: My Title Content:   body text (3) here\n" in user  # the whole content is stripped
    assert "\n[2] plain (1) text\n" in user
    assert "\n[3] no title\n" in user
    assert "\n[4] mojibake: café\n" in user
    assert "Search Query: see (2) and (10).\nRank the 4 passages above" in user


def test_truncation_uses_the_given_tokenizer():
    words = " ".join(f"w{i}" for i in range(50))
    messages = build_messages(
        "q", [words], max_passage_tokens=5, truncate=lambda text, n: " ".join(text.split()[:n])
    )
    assert "\n[1] w0 w1 w2 w3 w4\n" in messages[1]["content"]


def test_query_gets_no_ftfy_of_its_own_only_the_final_pass():
    messages = build_messages("  cafÃ© [1] &amp; ［2］ ", ["x", "y"])
    assert "search query: cafÃ© (1) &amp; ［2］.\n" in messages[1]["content"]
    final = finalize_messages(messages)[1]["content"]
    assert "search query: café (1) &amp; [2].\n" in final
    assert "Search Query: café (1) &amp; [2].\n" in final


def test_finalize_prompt_is_ftfy_over_the_rendered_prompt():
    rendered = "<|im_start|>user\ncafÃ© &amp; itâ€™s\n"
    assert finalize_prompt(rendered) == ftfy.fix_text(rendered) == "<|im_start|>user\ncafé &amp; it's\n"


def test_prepare_query():
    assert prepare_query(" [3] and [x] \n") == "(3) and [x]"


def test_generation_budget_is_reasoning_plus_100():
    assert ANSWER_TOKENS == 100
    assert generation_budget(3072) == 3172


def test_truncation_needs_a_truncate():
    with pytest.raises(ValueError, match="truncate"):
        passage_content("a b c", max_tokens=2)
    assert passage_content("a b c") == "a b c"  # no budget: no cut
