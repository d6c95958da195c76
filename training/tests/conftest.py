"""Fixtures for the training tests: DL19 data, a tiny student and a real OpenAI-compatible teacher."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def dl19() -> Path:
    path = DATA / "dl19"
    assert path.is_dir(), f"the evaluation data must be at {path} (see ../shared/data/README.md)"
    return path


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reasonrank_plugins.testing import make_tiny_qwen2

    return make_tiny_qwen2(tmp_path_factory.mktemp("tiny-student"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def teacher_url(tmp_path_factory: pytest.TempPathFactory):
    """llama-cpp-python's OpenAI-compatible server on the small demo GGUF, on 127.0.0.1."""
    import httpx

    from reasonrank_plugins.demo_model import SMALL_MODEL, model_path

    port = _free_port()
    log = tmp_path_factory.mktemp("teacher") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path(SMALL_MODEL)),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--model_alias",
        "demo",
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"teacher server exited:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"teacher server did not start in 180 s:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
