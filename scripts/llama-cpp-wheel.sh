#!/usr/bin/env bash
# Print the path of this CPU's llama-cpp-python wheel, building it once if it is not cached.
# llama-cpp-python ships only as source: the build (about 7 min) is native to this CPU, so the wheel is
# cached per CPU model and flag set in $REASONRANK_CACHE/wheels (default ~/.cache/reasonrank/wheels),
# outside the repository. AMX is left out: some virtual machines report amx_tile without letting a
# process use it (SIGILL in tilezero). Progress goes to stderr; stdout is the wheel's path only.
set -euo pipefail
PY=${PYTHON:-python3}
CACHE=${REASONRANK_CACHE:-$HOME/.cache/reasonrank}
LLAMA_CPP_VERSION=0.3.36

if [[ "$(uname -m)" == x86_64 ]]; then
  NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  export CFLAGS="${CFLAGS:-} $NO_AMX" CXXFLAGS="${CXXFLAGS:-} $NO_AMX"
fi
CPU_KEY=$( (uname -m; grep -m1 -E '^(model name|flags|Features)' /proc/cpuinfo || true; echo "${CFLAGS:-}") | sha256sum | cut -c1-12)
WHEELS="$CACHE/wheels/llama-cpp-$CPU_KEY"
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-$LLAMA_CPP_VERSION-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_CPP_VERSION once for this CPU (about 7 minutes); cached in $WHEELS" >&2
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) $PY -m pip wheel -q --no-cache-dir --no-deps \
    "llama-cpp-python==$LLAMA_CPP_VERSION" -w "$WHEELS" >&2
fi
ls "$WHEELS"/llama_cpp_python-$LLAMA_CPP_VERSION-*.whl | head -n 1
