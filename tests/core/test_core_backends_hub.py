"""Hub GGUFs (``org/name[@revision]:file.gguf``) for the llamacpp backend, resolved through
``huggingface_hub`` offline against a local folder laid out as the hub cache."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reasonrank_plugins.backends import resolve_backend
from reasonrank_plugins.backends.llamacpp import resolve_gguf

REPO = "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF"
FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
COMMIT = "a1b2c3d4e5f60718293a4b5c6d7e8f9011223344"
OLD_COMMIT = "0" * 39 + "1"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """``models--Qwen--…/snapshots/<commit>/<file>`` and ``refs/main``, offline; the file is a small
    stand-in (``slow`` tests link the real demo GGUF)."""
    constants = pytest.importorskip("huggingface_hub.constants")
    cache = tmp_path / "hub"
    repo = cache / ("models--" + REPO.replace("/", "--"))
    for commit, content in ((COMMIT, b"GGUF new"), (OLD_COMMIT, b"GGUF old")):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / FILE).write_bytes(content)
    (repo / "snapshots" / COMMIT / "sub").mkdir()
    (repo / "snapshots" / COMMIT / "sub" / "other.gguf").write_bytes(b"GGUF sub")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    # huggingface_hub reads the environment when it is first imported: set its constants too
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return repo


def test_a_hub_gguf_goes_to_llamacpp():
    assert resolve_backend(f"{REPO}:{FILE}") == "llamacpp"
    assert resolve_backend(f"{REPO}@{COMMIT}:{FILE}") == "llamacpp"


def test_without_a_revision_it_is_main_and_the_commit_is_logged(hub_cache, caplog):
    with caplog.at_level(logging.WARNING, logger="reasonrank_plugins.backends.llamacpp"):
        path = resolve_gguf(f"{REPO}:{FILE}")
    assert path == hub_cache / "snapshots" / COMMIT / FILE and path.read_bytes() == b"GGUF new"
    assert f"no revision given, used main (commit {COMMIT}); pin it as {REPO}@{COMMIT}:{FILE}" in caplog.text


def test_a_pinned_revision_is_that_snapshot(hub_cache, caplog):
    with caplog.at_level(logging.WARNING):
        path = resolve_gguf(f"{REPO}@{OLD_COMMIT}:{FILE}")
    assert path.read_bytes() == b"GGUF old" and caplog.text == ""
    assert resolve_gguf(f"{REPO}@main:{FILE}").read_bytes() == b"GGUF new"


def test_a_file_in_a_subfolder_logs_the_commit_not_the_folder(hub_cache, caplog):
    with caplog.at_level(logging.WARNING):
        assert resolve_gguf(f"{REPO}:sub/other.gguf").read_bytes() == b"GGUF sub"
    assert f"commit {COMMIT}" in caplog.text


@pytest.mark.parametrize(
    "model",
    [f"{REPO}:absent.gguf", f"{REPO}@{'9' * 40}:{FILE}", f"Other/Repo:{FILE}", f"{REPO}@v9:{FILE}"],
)
def test_offline_and_absent_is_a_clear_error(hub_cache, model):
    with pytest.raises(ValueError, match=r"is not in the Hugging Face cache and the hub cannot be reached "
                                         r"\(HF_HUB_OFFLINE='1'\)"):
        resolve_gguf(model)


@pytest.mark.parametrize("model", ["nowhere.gguf", "Qwen/Repo", "Qwen/Repo:file.bin", "a/b/c:file.gguf"])
def test_neither_a_file_nor_a_hub_gguf(model):
    with pytest.raises(ValueError, match="needs a local .gguf file or a hub GGUF 'org/name\\[@revision\\]:file.gguf'"):
        resolve_gguf(model)


def test_a_local_file_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    odd = Path("Qwen") / "Repo:file.gguf"  # a local path that also reads as a hub GGUF
    odd.parent.mkdir()
    odd.write_bytes(b"GGUF local")
    assert resolve_gguf(str(odd)) == odd


@pytest.mark.slow
def test_the_llamacpp_backend_loads_a_hub_gguf_from_the_cache(hub_cache):
    """The real demo GGUF linked into the stand-in cache, loaded by name through load_backend."""
    from reasonrank_plugins.backends import load_backend
    from reasonrank_plugins.demo_model import SMALL_MODEL, model_path

    target = hub_cache / "snapshots" / COMMIT / FILE
    target.unlink()
    target.symlink_to(model_path(SMALL_MODEL))
    backend = load_backend(f"{REPO}@{COMMIT}:{FILE}", n_ctx=512)
    try:
        assert backend.name == "llamacpp" and backend.model_name == FILE
        assert backend.llm.metadata["general.architecture"] == "qwen2"
    finally:
        backend.close()
