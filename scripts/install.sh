#!/usr/bin/env bash
# Install reasonrank-plugins with every backend that runs on a CPU machine, the three framework
# adapters and the training package. `--test` adds the test dependencies.
# llama-cpp-python ships only as source: its wheel is built once (about 7 min) and cached in
# $REASONRANK_CACHE/wheels (default ~/.cache/reasonrank/wheels), outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CACHE=${REASONRANK_CACHE:-$HOME/.cache/reasonrank}
WHEELS="$CACHE/wheels"
LLAMA_CPP_VERSION=0.3.36

# CPU torch from this machine's local wheel; an unpinned torch would pull a multi-GB CUDA build.
$PY -m pip install -q "torch==2.13.0"

# The build is native to this CPU, so the wheel is cached per CPU model and flag set. AMX is left
# out: some virtual machines report amx_tile without letting a process use it (SIGILL in tilezero).
if [[ "$(uname -m)" == x86_64 ]]; then
  NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  export CFLAGS="${CFLAGS:-} $NO_AMX" CXXFLAGS="${CXXFLAGS:-} $NO_AMX"
fi
CPU_KEY=$( (uname -m; grep -m1 -E '^(model name|flags|Features)' /proc/cpuinfo || true; echo "${CFLAGS:-}") | sha256sum | cut -c1-12)
WHEELS="$WHEELS/llama-cpp-$CPU_KEY"
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-$LLAMA_CPP_VERSION-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_CPP_VERSION once for this CPU (about 7 minutes); cached in $WHEELS"
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) $PY -m pip wheel -q --no-cache-dir --no-deps \
    "llama-cpp-python==$LLAMA_CPP_VERSION" -w "$WHEELS"
fi
# --force-reinstall: a build of the same version made for another CPU may be installed already
$PY -m pip install -q --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-$LLAMA_CPP_VERSION-*.whl
$PY -m pip install -q "$WHEELS"/llama_cpp_python-$LLAMA_CPP_VERSION-*.whl

extras="all"
test_extra=""
if [[ "${1:-}" == "--test" ]]; then extras="all,test,docs"; test_extra="[test]"; fi
pkgs=(-e ".[$extras]")
for dir in integrations/*/ training/; do
  [[ -f "$dir/pyproject.toml" ]] && pkgs+=(-e "$dir$test_extra")
done
$PY -m pip install -q "${pkgs[@]}"
