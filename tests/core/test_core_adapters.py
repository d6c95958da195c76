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
