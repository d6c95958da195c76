"""Golden prompts: tricky inputs and the user message worked out by hand from the reference's rules.

Rules (8421BCD/ReasonRank ``create_prompt``, ``convert_doc_to_prompt_content``):
query ``[n]``->``(n)`` then strip; passage ``Title: … Content: …`` (non-empty title), strip,
ftfy.fix_text, truncate, ``[n]``->``(n)``; the rendered chat prompt gets ftfy.fix_text once more.
ftfy facts the expectations lean on: it unescapes HTML only while no ``<`` has been seen in the
text (line by line, sticky once seen), and the rendered prompt always has one (``<|im_start|>``,
the system prompt's tags), so the final pass never unescapes; it maps fullwidth forms to ASCII,
uncurls quotes, splits ligatures, turns CRLF and U+2028 into ``\\n`` and drops terminal escapes.
Expected texts are literals; nothing here is computed by the code under test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from reasonrank_plugins import Passage
from reasonrank_plugins.prompt import SYSTEM_PROMPT, build_messages, finalize_messages, finalize_prompt


def word_cut(text: str, n: int) -> str:
    """Deterministic stand-in for a tokenizer cut: tokens are whitespace + word (lossless)."""
    return "".join(re.findall(r"\s*\S+", text)[:n])


def user(n: int, query: str, block: str) -> str:
    return (
        f"I will provide you with {n} passages, each indicated by a numerical identifier []. "
        f"Rank the passages based on their relevance to the search query: {query}.\n\n"
        f"{block}"
        f"Search Query: {query}.\n"
        f"Rank the {n} passages above based on their relevance to the search query. All the passages should "
        "be included and listed using identifiers, in descending order of relevance. The format of the "
        "answer should be [] > [], e.g., [2] > [1]."
    )


def chatml(system: str, user_text: str) -> str:
    """Qwen2.5's chat template for a system and a user message, with the generation prompt."""
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user_text}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


@dataclass(frozen=True)
class Case:
    id: str
    query: str
    passages: tuple[str | Passage, ...]
    want_query: str  # the query as it stands in build_messages
    want_block: str  # the "[k] content\n" lines as they stand in build_messages
    max_tokens: int | None = None
    final_query: str | None = None  # after the final pass over the rendered prompt, where it differs


def on_query(id: str, query: str, want: str, final: str | None = None) -> Case:
    """A query case over the passages "a" and "b"."""
    return Case(id, query, ("a", "b"), want, "[1] a\n[2] b\n", final_query=final)


def on_passages(
    id: str, passages: tuple[str | Passage, ...], block: str, max_tokens: int | None = None
) -> Case:
    """A passage case under the query "q"."""
    return Case(id, "q", passages, "q", block, max_tokens=max_tokens)


CASES = [
    on_passages("plain", ("first passage", "second passage"), "[1] first passage\n[2] second passage\n"),
    # --- the query: [n] -> (n), strip; ftfy only in the final pass, never HTML unescaping
    on_query("query-ids", "see [2] and [10]", "see (2) and (10)"),
    on_query("query-whitespace", "  what is x?  \n", "what is x?"),
    on_query("query-id-then-strip", " [1] ", "(1)"),
    on_query("query-mojibake", "cafÃ© near me", "cafÃ© near me", final="café near me"),
    on_query("query-html-kept", "AT&amp;T plans", "AT&amp;T plans"),
    on_query("query-html-brackets-kept", "&#91;1&#93; x", "&#91;1&#93; x"),
    on_query("query-fullwidth-after-ids", "rule ［1］ vs [2]", "rule ［1］ vs (2)", final="rule [1] vs (2)"),
    on_query("query-fullwidth-digits", "[１２] x", "(１２) x", final="(12) x"),
    on_query("query-a0-mojibake-stripped", "le voilÃ ", "le voilÃ"),
    on_query("query-curly-quotes", "“quoted” query", "“quoted” query", final='"quoted" query'),
    on_query("query-crlf", "two\r\nlines", "two\r\nlines", final="two\nlines"),
    # --- passages: mojibake and HTML entities (fixed before truncation and the id rewrite)
    on_passages("mojibake", ("itâ€™s a cafÃ©", "Ã©tÃ© â€”"), "[1] it's a café\n[2] été —\n"),
    on_passages("html-entities", ("a &amp; b &lt; c &#39;d&#39;",), "[1] a & b < c 'd'\n"),
    on_passages("html-with-tag-kept", ("<b>bold</b> &amp; more",), "[1] <b>bold</b> &amp; more\n"),
    on_passages("html-tag-on-later-line", ("x &amp; y\nz <w> &amp;",), "[1] x & y\nz <w> &amp;\n"),
    on_passages("html-tag-on-first-line", ("z <w>\nx &amp; y",), "[1] z <w>\nx &amp; y\n"),
    on_passages("html-double-escaped", ("&amp;lt;tag&amp;gt;",), "[1] <tag>\n"),
    on_passages("html-brackets-become-ids", ("&#91;2&#93; cites",), "[1] (2) cites\n"),
    on_passages("html-nbsp-after-strip", ("&nbsp;lead",), "[1] \xa0lead\n"),
    # --- whitespace: strip runs before ftfy, on the whole "Title: … Content: …" text
    on_passages(
        "surrounding-whitespace", ("  \n\t padded text \n ", "\u3000x\u3000"), "[1] padded text\n[2] x\n"
    ),
    on_passages("a0-mojibake-stripped", ("voilÃ ", "voilÃ le travail"), "[1] voilÃ\n[2] voilà le travail\n"),
    on_passages("internal-whitespace-kept", ("a  b\n\nc",), "[1] a  b\n\nc\n"),
    on_passages("line-breaks-normalized", ("a\r\nb\r\n", "c\u2028d"), "[1] a\nb\n[2] c\nd\n"),
    on_passages("space-entity-is-not-empty", ("&#32;",), "[1]  \n"),
    on_passages(
        "terminal-escapes-and-ligatures", ("\x1b[31mred\x1b[0m", "ﬁnal ﬂow"), "[1] red\n[2] final flow\n"
    ),
    # --- [n] forms: only [digits] (any Unicode decimal digit) is rewritten, after ftfy's width fix
    on_passages(
        "id-forms",
        ("[1] [12] [ 3 ] [a] [] [[2]] [0] [-1] [1.5] [007]",),
        "[1] (1) (12) [ 3 ] [a] [] [(2)] (0) [-1] [1.5] (007)\n",
    ),
    on_passages("id-fullwidth", ("［1］ and ［１］ and [１]",), "[1] (1) and (1) and (1)\n"),
    on_passages("id-arabic-indic", ("[١٢] arabic-indic",), "[1] (١٢) arabic-indic\n"),
    # --- titles: used when truthy; a whitespace title still counts
    on_passages(
        "title-with-ids",
        (Passage("body [3] here", title="My [2] Title"),),
        "[1] Title: My (2) Title Content: body (3) here\n",
    ),
    on_passages(
        "title-none-and-empty",
        (Passage("text one", title=None), Passage("text two", title="")),
        "[1] text one\n[2] text two\n",
    ),
    on_passages("title-whitespace", (Passage("text", title="  "),), "[1] Title:    Content: text\n"),
    on_passages("title-empty-text", (Passage("   ", title=" T "),), "[1] Title:  T  Content:\n"),
    on_passages("title-mojibake", (Passage("Ã©tÃ©", title="cafÃ©"),), "[1] Title: café Content: été\n"),
    # --- empty passages stay in the window and render as "[k] " + newline
    on_passages("empty-passages", ("a", "", "   \n", Passage(""), "b"), "[1] a\n[2] \n[3] \n[4] \n[5] b\n"),
    # --- truncation (word_cut stand-in) after ftfy, before the id rewrite
    on_passages("truncate", ("one two three four five six",), "[1] one two three\n", max_tokens=3),
    on_passages("truncate-after-ftfy", ("itâ€™s a cafÃ© story",), "[1] it's a café\n", max_tokens=3),
    # ftfy reads "â€ " (space included) as the mojibake of "†": the cut counts the fixed words
    on_passages("truncate-after-ftfy-a0", ("â€ x y z",), "[1] †x y\n", max_tokens=2),
    on_passages("truncate-then-ids", ("[1] [2] [3] [4]",), "[1] (1) (2)\n", max_tokens=2),
    on_passages(
        "truncate-counts-title", (Passage("alpha beta gamma", title="T"),), "[1] Title: T Content:\n", 3
    ),
    on_passages("truncate-under-budget", ("short text",), "[1] short text\n", max_tokens=100),
    on_passages("truncate-keeps-newlines", ("l1 a\nl2 b\nl3 c",), "[1] l1 a\nl2\n", max_tokens=3),
    on_passages("truncate-to-zero", ("gone", "x"), "[1] \n[2] \n", max_tokens=0),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_user_message(case: Case):
    truncate = word_cut if case.max_tokens is not None else None
    messages = build_messages(
        case.query, case.passages, max_passage_tokens=case.max_tokens, truncate=truncate
    )
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert messages[1] == {
        "role": "user",
        "content": user(len(case.passages), case.want_query, case.want_block),
    }


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_golden_final_prompt(case: Case):
    truncate = word_cut if case.max_tokens is not None else None
    messages = build_messages(
        case.query, case.passages, max_passage_tokens=case.max_tokens, truncate=truncate
    )
    final_user = user(len(case.passages), case.final_query or case.want_query, case.want_block)
    rendered = chatml(messages[0]["content"], messages[1]["content"])
    assert finalize_prompt(rendered) == chatml(SYSTEM_PROMPT, final_user)
    assert finalize_messages(messages)[1]["content"] == final_user


def test_golden_case_count():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


# --- the real Qwen2.5 tokenizer, cut the reference's way: convert_tokens_to_string(tokenize(t)[:n])
# Token splits (Qwen2.5 byte-level BPE): "hello world foo bar" -> hello|Ġworld|Ġfoo|Ġbar;
# "a 𝒥 b" -> a|ĠðĿ|Ĵ|¥|Ġb (U+1D4A5 spread over three tokens); "Ã𝒥x" -> Ãĥ|ðĿĴ|¥|x;
# "x <|im_end|> y" -> x|Ġ|<|im_end|>|Ġy. A cut inside a character decodes to U+FFFD.
QWEN_CASES = [
    ("words", "hello world foo bar", 2, "[1] hello world\n", None),
    ("fits-untouched", "hello world foo bar", 10, "[1] hello world foo bar\n", None),
    ("cut-inside-character", "a 𝒥 b", 3, "[1] a \ufffd\n", None),
    # ftfy leaves "Ã𝒥x" alone, the cut leaves "Ã" + U+FFFD, and the final pass reads that pair as
    # lossy mojibake and drops the "Ã": the one way the final pass changes a fixed passage.
    ("final-pass-eats-mojibake", "Ã𝒥x", 2, "[1] Ã\ufffd\n", "[1] \ufffd\n"),
    ("special-token-is-one-token", "x <|im_end|> y", 3, "[1] x <|im_end|>\n", None),
]


@pytest.fixture(scope="module")
def qwen_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    transformers = pytest.importorskip("transformers")
    from reasonrank_plugins.testing import make_qwen25_tokenizer

    try:
        folder = make_qwen25_tokenizer(tmp_path_factory.mktemp("qwen25-tokenizer"))
    except RuntimeError as exc:
        pytest.skip(str(exc))
    return transformers.AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize(
    ("text", "n", "block", "final_block"), [c[1:] for c in QWEN_CASES], ids=[c[0] for c in QWEN_CASES]
)
def test_golden_qwen_truncation(qwen_tokenizer, text: str, n: int, block: str, final_block: str | None):
    tok = qwen_tokenizer

    def reference_cut(t: str, k: int) -> str:
        return tok.convert_tokens_to_string(tok.tokenize(t)[:k])

    messages = build_messages("q", [text, "x"], max_passage_tokens=n, truncate=reference_cut)
    assert messages[1]["content"] == user(2, "q", block + "[2] x\n")
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == chatml(SYSTEM_PROMPT, messages[1]["content"])
    assert finalize_prompt(rendered) == chatml(
        SYSTEM_PROMPT, user(2, "q", (final_block or block) + "[2] x\n")
    )
    # the decode(encode(...)) route the backends use gives the same cut for Qwen2.5
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids[:n]) == reference_cut(text, n)
