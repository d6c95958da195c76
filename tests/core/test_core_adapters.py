"""What the three framework adapters share (``reasonrank_plugins.adapters``): building the engine
from options, and the notes that say why a document was not placed by the model."""

import pytest

from reasonrank_plugins import Passage, ReasonRanker, adapters
from reasonrank_plugins.backends.scripted import overlap_score
from reasonrank_plugins.testing import OVERLAP_QUERY, TDPART_CASE, ScriptedBackend, answer_by_score
from reasonrank_plugins.types import TIMEOUT_NOTE, UNSEEN_NOTE

TEXTS = TDPART_CASE["texts"]


def test_engine_options_reach_the_ranker_and_tdpart_reranks():
    options = {"model": "overlap", "backend": "scripted", **TDPART_CASE["options"]}
    options |= {"depth": 8, "timeout": 30.0, "on_error": "raise", "drop_empty": True}
    with adapters.make_ranker(None, options) as ranker:
        c = ranker.config
        assert (c.strategy, c.cutoff, c.depth, c.drop_empty) == ("tdpart", 2, 8, True)
        assert (ranker.timeout, ranker.engine.on_error) == (30.0, "raise")
        hits = adapters.rerank(ranker, OVERLAP_QUERY, [Passage(t) for t in TEXTS])
        assert [h.index for h in hits] == TDPART_CASE["order"]
        assert all(h.note is None and h.reasoning for h in hits)
        with pytest.raises(ValueError, match="not both"):
            adapters.make_ranker(ranker, {"strategy": "tdpart"})
    with pytest.raises(ValueError, match="strategy must be one of"):
        adapters.make_ranker(None, {"model": "overlap", "backend": "scripted", "strategy": "bubble"})


def fails_on_poison(query: str, contents: list[str]) -> str:
    if any("poison" in c for c in contents):
        raise ConnectionError("no healthy replica")
    return answer_by_score(overlap_score)(query, contents)


def test_a_failed_window_notes_the_documents_it_held_last():
    """Window 4, step 2 over 8: [4, 8) and [2, 6) run, then [0, 4) holds the poisoned passage 0 and
    raises; the four passages it held keep their order with a note, the others have none."""
    texts = ["poison", *TEXTS[1:]]
    with ReasonRanker(backend=ScriptedBackend(fails_on_poison), window_size=4, step=2) as ranker:
        result = ranker.rerank(OVERLAP_QUERY, texts)
        hits = adapters.rerank(ranker, OVERLAP_QUERY, [Passage(t) for t in texts])
    failed = result.windows[-1]
    assert (failed.start, str(failed.status)) == (0, "error") and failed.order == failed.indices
    note = "window error: ConnectionError: no healthy replica; left in its prior order"
    assert {h.index: h.note for h in hits} == {i: note if i in failed.indices else None for i in range(8)}
    assert [h.index for h in hits[:4]] == failed.indices


def test_a_deadline_notes_the_window_it_stopped_and_what_the_model_never_saw():
    """The first window [4, 8) is still running at the deadline: its passages were in a window that
    timed out, passages 0-3 were never shown to the model."""
    with ReasonRanker("overlap", "scripted", window_size=4, step=2, timeout=0.2, latency=30) as ranker:
        hits = adapters.rerank(ranker, OVERLAP_QUERY, [Passage(t) for t in TEXTS])
    assert [h.index for h in hits] == list(range(8))
    assert [h.note for h in hits] == [UNSEEN_NOTE] * 4 + [TIMEOUT_NOTE] * 4


def test_the_pydantic_fields_are_the_engine_options():
    pytest.importorskip("pydantic")
    from reasonrank_plugins.adapter_fields import EngineFields

    assert list(EngineFields.model_fields) == list(adapters.ENGINE_OPTIONS)
    fields = EngineFields(model="overlap", backend="scripted", strategy="tdpart", cutoff=3)
    assert fields.model_fields_set == {"model", "backend", "strategy", "cutoff"}  # only these are passed on
    with fields.build_ranker(None) as ranker:
        assert (ranker.model, ranker.config.strategy, ranker.config.cutoff) == ("scripted-overlap", "tdpart", 3)


def test_hits_carry_the_usage_of_their_windows_and_the_last_status():
    """Window 4, step 2 over 8 runs [4, 8), [2, 6), [0, 4): the best passages are in several."""
    with ReasonRanker("overlap", "scripted", window_size=4, step=2) as ranker:
        result = ranker.rerank(OVERLAP_QUERY, TEXTS)
        hits = adapters.rerank(ranker, OVERLAP_QUERY, [Passage(t) for t in TEXTS])
    assert len(result.windows) == 3
    by_index = {h.index: h for h in hits}
    for i, hit in by_index.items():
        held = [w for w in result.windows if i in w.indices]
        assert (hit.prompt_tokens, hit.completion_tokens) == (
            sum(w.prompt_tokens for w in held), sum(w.completion_tokens for w in held)
        )
    twice = [i for i in by_index if sum(i in w.indices for w in result.windows) > 1]
    assert twice and by_index[twice[0]].prompt_tokens > by_index[6].prompt_tokens > 0  # 6: one window
    assert {h.status for h in hits} == {"ok"}
    meta = adapters.annotate({"reasonrank_status": "stale", "k": 1}, by_index[twice[0]])
    assert meta["k"] == 1 and meta[adapters.STATUS_KEY] == "ok"
    assert meta[adapters.USAGE_KEY] == {
        "prompt_tokens": by_index[twice[0]].prompt_tokens,
        "completion_tokens": by_index[twice[0]].completion_tokens,
    }


def test_a_single_candidate_has_zero_usage_and_no_status():
    with ReasonRanker("overlap", "scripted") as ranker:
        (hit,) = adapters.rerank(ranker, "q", [Passage("only")])
    meta = adapters.annotate({}, hit)
    assert meta == {
        adapters.USAGE_KEY: {"prompt_tokens": 0, "completion_tokens": 0},
        adapters.NOTE_KEY: adapters.SINGLE_NOTE,
    }


def test_failed_windows_report_error_and_on_error_raise_raises():
    with ReasonRanker("fail", "scripted") as ranker:
        hits = adapters.rerank(ranker, "q", [Passage("a"), Passage("b")])
    assert [h.status for h in hits] == ["error", "error"] and all(
        h.note.startswith("window error") for h in hits
    )
    with ReasonRanker("fail", "scripted", on_error="raise") as ranker, pytest.raises(ConnectionError):
        adapters.rerank(ranker, "q", [Passage("a"), Passage("b")])


def test_to_passage_takes_the_title_key_and_embedded_meta_fields():
    meta = {"title": "BM25", "heading": "Intro", "year": 1994, "blank": ""}
    p = adapters.to_passage(
        "a ranking function", meta, id="d1", meta_fields_to_embed=["heading", "blank", "year", "gone"]
    )
    assert (p.text, p.title, p.id) == ("Intro\n1994\na ranking function", "BM25", "d1")
    p = adapters.to_passage(
        "text", {"name": "T"}, title_key="name", embedding_separator=" | ", meta_fields_to_embed=["name"]
    )
    assert (p.text, p.title) == ("T | text", "T")
    assert adapters.to_passage("text", meta, title_key=None).title is None
    assert adapters.to_passage("  ", meta, meta_fields_to_embed=["heading"]) == Passage("", id=None)


def test_the_title_reaches_the_prompt():
    backend = ScriptedBackend()
    with ReasonRanker(backend=backend) as ranker:
        adapters.rerank(ranker, "q", [adapters.to_passage(t, {"title": f"T{t}"}) for t in ("a", "b")])
    prompt = backend.requests[0].messages[-1]["content"]
    assert "[1] Title: Ta Content: a" in prompt and "[2] Title: Tb Content: b" in prompt


def test_backend_options_refuse_remote_code_and_plain_api_keys(monkeypatch):
    monkeypatch.delenv(adapters.REMOTE_CODE_ENV, raising=False)
    adapters.check_backend_options({"device": "cpu", "trust_remote_code": False})
    for options in ({"trust_remote_code": True}, {"model_kwargs": {"trust_remote_code": "yes"}}):
        with pytest.raises(ValueError, match="trust_remote_code.*REASONRANK_ALLOW_REMOTE_CODE=1"):
            adapters.check_backend_options(options)
    with pytest.raises(ValueError, match=r"api_key.*plain text"):
        adapters.check_backend_options({"api_key": "sk-x"})
    with pytest.raises(ValueError, match="backend_options must be a dict"):
        adapters.check_backend_options(["trust_remote_code"])
    monkeypatch.setenv(adapters.REMOTE_CODE_ENV, "1")
    adapters.check_backend_options({"trust_remote_code": True})


def test_a_dumped_shared_ranker_is_refused_by_name():
    with pytest.raises(ValueError, match="built with ranker="):
        adapters.check_ranker(adapters.SHARED_RANKER)
    with pytest.raises(ValueError, match="ranker must be a ReasonRanker"):
        adapters.check_ranker({"model": "demo"})


def test_api_key_goes_to_server_backends_only():
    options = {"model": "served", "backend": "openai", "backend_options": {"base_url": "http://x/v1"}}
    assert adapters.with_api_key(options, "sk")["backend_options"] == {
        "base_url": "http://x/v1",
        "api_key": "sk",
    }
    assert adapters.with_api_key(options, None) == options
    local = {"model": "overlap", "backend": "scripted"}
    assert adapters.with_api_key(local, "sk") == local


@pytest.mark.parametrize("bad", ["0.5", True, [0.5]])
def test_score_threshold_must_be_a_number(bad):
    with ReasonRanker("overlap", "scripted") as ranker, pytest.raises(ValueError, match="score_threshold"):
        adapters.rerank(ranker, "q", [Passage("a"), Passage("b")], score_threshold=bad)


def test_check_documents_names_the_bad_entry():
    adapters.check_documents([Passage("a")], Passage)
    with pytest.raises(ValueError, match=r"documents\[1\] must be a Passage, got str"):
        adapters.check_documents([Passage("a"), "b"], Passage)
    with pytest.raises(ValueError, match="must be a list of Passage, got str"):
        adapters.check_documents("ab", Passage)
