"""Fixtures for the eval harness tests: the shared evaluation data and a tiny BRIGHT folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_bright_fixture import BRIGHT_DOCUMENTS, BRIGHT_EXAMPLES, BRIGHT_LONG_DOCUMENTS, write_jsonl

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def bright_dir(tmp_path: Path) -> Path:
    root = tmp_path / "BRIGHT"
    write_jsonl(root / "examples" / "biology.jsonl", BRIGHT_EXAMPLES)
    write_jsonl(root / "documents" / "biology.jsonl", BRIGHT_DOCUMENTS)
    write_jsonl(root / "long_documents" / "biology.jsonl", BRIGHT_LONG_DOCUMENTS)
    return root


@pytest.fixture(scope="session")
def noveleval_dir() -> Path:
    path = SHARED_DATA / "noveleval"
    assert path.is_dir(), f"the evaluation data must be at {path} (see ../shared/data/README.md)"
    return path
