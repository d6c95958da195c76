#!/usr/bin/env bash
# Install reasonrank-plugins with every backend that runs on a CPU machine, the three framework
# adapters and the training package. `--test` adds the test dependencies.
# llama-cpp-python ships only as source: its wheel is built once (about 7 min) and cached outside the
# repository (scripts/llama-cpp-wheel.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# CPU torch from this machine's local wheel; an unpinned torch would pull a multi-GB CUDA build.
$PY -m pip install -q "torch==2.13.0"

# llama-cpp-python: this CPU's wheel, built once and cached (scripts/llama-cpp-wheel.sh).
WHEEL=$(bash scripts/llama-cpp-wheel.sh)
# --force-reinstall: a build of the same version made for another CPU may be installed already
$PY -m pip install -q --force-reinstall --no-deps "$WHEEL"
$PY -m pip install -q "$WHEEL"

extras="all"
test_extra=""
if [[ "${1:-}" == "--test" ]]; then extras="all,test,docs"; test_extra="[test]"; fi
pkgs=(-e ".[$extras]")
for dir in integrations/*/ training/; do
  [[ -f "$dir/pyproject.toml" ]] && pkgs+=(-e "$dir$test_extra")
done
$PY -m pip install -q "${pkgs[@]}"
