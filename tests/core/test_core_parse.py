"""The parser returns a permutation for any output and reads ids from <answer> only."""

from hypothesis import given, settings
from hypothesis import strategies as st

from reasonrank_plugins.parse import ParseStatus, parse_answer

UNICODE_DIGITS = "٣۷५৯๓"  # Arabic-Indic, Persian, Devanagari, Bengali, Thai digits
TOKENS = ["<think>", "</think>", "<answer>", "</answer>", "<answer", "</ans", "[", "]", " > ", ">", "\n", "0", "-"]
ids = st.one_of(
    st.integers(-5, 30).map(lambda i: f"[{i}]"),
    st.integers(10**9, 10**30).map(lambda i: f"[{i}]"),
    st.just("[" + "9" * 5000 + "]"),  # beyond int()'s default digit limit
    st.text(UNICODE_DIGITS, min_size=1, max_size=2).map(lambda d: f"[{d}]"),
    st.integers(0, 30).map(lambda i: f"[{i:04d}]"),
    st.integers(0, 30).map(str),
)
noise = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
fragments = st.lists(st.one_of(ids, st.sampled_from(TOKENS), noise), max_size=40).map("".join)


def is_permutation(order: list[int], n: int) -> bool:
    return sorted(order) == list(range(n))


@settings(max_examples=4000, deadline=None)
@given(text=fragments, n=st.integers(0, 25))
def test_any_output_gives_a_permutation(text, n):
    parsed = parse_answer(text, n)
    assert is_permutation(parsed.order, n)
    if parsed.status is ParseStatus.FAILED:
        assert parsed.order == list(range(n))


@settings(max_examples=4000, deadline=None)
@given(reasoning=fragments, other=fragments, answer=fragments, n=st.integers(1, 25))
def test_reasoning_never_changes_the_answer(reasoning, other, answer, n):
    """Whatever the think block holds (ids, nested or fake answer tags), the result is the same."""
    reasoning, other = (r.replace("</think>", "") for r in (reasoning, other))
    answer = answer.replace("</think>", "")
    first = parse_answer(f"<think>{reasoning}</think>{answer}", n)
    second = parse_answer(f"<think>{other}</think>{answer}", n)
    assert first.order == second.order and first.status == second.status
    assert is_permutation(first.order, n)


@settings(max_examples=2500, deadline=None)
@given(
    picks=st.lists(st.integers(-3, 30), max_size=30),
    n=st.integers(1, 20),
    reasoning_ids=st.lists(st.integers(1, 20), max_size=10),
    closed=st.booleans(),
)
def test_answer_ids_are_deduplicated_filtered_and_completed(picks, n, reasoning_ids, closed):
    think = " ".join(f"[{i}]" for i in reasoning_ids)
    body = " > ".join(f"[{i}]" for i in picks)
    parsed = parse_answer(f"<think>{think} <answer>[2] > [1]</answer></think> <answer>{body}" + (
        "</answer>" if closed else ""), n)
    valid = []
    for i in picks:
        if 1 <= i <= n and i - 1 not in valid:
            valid.append(i - 1)
    if not valid:
        assert parsed.status is ParseStatus.FAILED and parsed.order == list(range(n))
        return
    expected = valid + [i for i in range(n) if i not in valid]
    assert parsed.order == expected
    clean = closed and len(valid) == n and len(picks) == n
    assert parsed.status is (ParseStatus.OK if clean else ParseStatus.REPAIRED)


def test_examples():
    assert parse_answer("<think>x [3]</think> <answer>[2] > [3] > [1]</answer>", 3).order == [1, 2, 0]
    ok = parse_answer("<think>[1] > [2]</think>\n<answer>[3] > [1] > [2]</answer>", 3)
    assert ok.status is ParseStatus.OK and ok.reasoning == "[1] > [2]" and ok.answer == "[3] > [1] > [2]"
    # unclosed think: everything is reasoning, no answer
    failed = parse_answer("<think>[3] > [1] <answer>[3] > [1]</answer>", 3)
    assert failed.status is ParseStatus.FAILED and failed.order == [0, 1, 2]
    # truncated answer tag is repaired, missing ids appended in prior order
    cut = parse_answer("<think>r</think><answer>[4] > [2", 4)
    assert cut.status is ParseStatus.REPAIRED and cut.order == [3, 0, 1, 2] and cut.missing == [0, 1, 2]
    # 0, negatives, huge and unicode-digit ids are ignored
    odd = parse_answer("<answer>[0] > [-1] > [٣] > [99999999999999] > [2]</answer>", 3)
    assert odd.order == [1, 0, 2] and odd.status is ParseStatus.REPAIRED
    # a bracketed non-id makes an otherwise complete answer "repaired", not "ok"
    for answer in ("[1] > [-1]", "[] > [1]", "[1] > [x]"):
        parsed = parse_answer(f"<answer>{answer}</answer>", 1)
        assert parsed.order == [0] and parsed.status is ParseStatus.REPAIRED and parsed.invalid == 1
    # no answer block at all: input order, flagged
    assert parse_answer("[2] > [1]", 2).status is ParseStatus.FAILED
    # bare numbers inside the answer block are accepted but marked repaired
    bare = parse_answer("<answer>2 > 1</answer>", 2)
    assert bare.order == [1, 0] and bare.status is ParseStatus.REPAIRED
