"""The cohere SDK 7.x as a client, unchanged. The suite's environment holds cohere 5.x (langchain-cohere
needs it), so 7.x runs from its own small venv (built once from the package index into
``$REASONRANK_CACHE/cohere7-venv``) against ``reasonrank serve`` as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reasonrank_plugins.demo_model import cache_dir

pytestmark = pytest.mark.slow
COHERE = "cohere==7.3.1"
CLIENT = r"""
import json, sys
import cohere
url, token = sys.argv[1], sys.argv[2]
docs = ["blue sky over the sea", "the red fox jumps", "a fox den", "nothing here"]
v2 = cohere.ClientV2(base_url=url, api_key=token).rerank(model="rerank-v3.5", query="red fox", documents=docs, top_n=3)
v1 = cohere.Client(base_url=url, api_key=token).rerank(model="rerank-v3.5", query="red fox", documents=docs)
try:
    cohere.ClientV2(base_url=url, api_key="wrong").rerank(model="rerank-v3.5", query="red fox", documents=docs)
    refused = None
except cohere.core.api_error.ApiError as exc:
    refused = exc.status_code
print(json.dumps({"version": cohere.__version__, "v2": [r.index for r in v2.results],
                  "v2_scores": [r.relevance_score for r in v2.results], "v1": [r.index for r in v1.results],
                  "units": v2.meta.billed_units.search_units, "refused": refused}))
"""


@pytest.fixture(scope="module")
def cohere7() -> Path:
    venv = cache_dir() / "cohere7-venv"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import cohere; assert cohere.__version__.startswith('7.')"]
    if not python.exists() or subprocess.run(probe, capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", COHERE], check=True)
    return python


def test_cohere_sdk_7_v1_and_v2(server_factory, cohere7):
    server = server_factory("--backend", "scripted", "--model", "overlap", "--served-model-name", "rerank-v3.5",
                            env={"REASONRANK_TOKEN": "t0ken"})
    try:
        out = subprocess.run([str(cohere7), "-c", CLIENT, server.url, "t0ken"], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "PYTHONPATH": ""})
    finally:
        server.stop()
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["version"].startswith("7.")
    assert got["v2"] == [1, 2, 0] and got["v1"] == [1, 2, 0, 3]  # word overlap with "red fox"
    assert got["v2_scores"] == sorted(got["v2_scores"], reverse=True)
    assert got["units"] == 1 and got["refused"] == 401
