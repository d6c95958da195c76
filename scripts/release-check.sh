#!/usr/bin/env bash
# Release check: the four distributions (the core and the three adapters) as a new user gets them.
#  1. build their sdists and wheels (python -m build: the wheel is built from the sdist);
#  2. twine check --strict;
#  3. install the wheels, with the core's [demo] extra, into a fresh virtual environment and, from an
#     empty folder outside the repository, run `reasonrank demo` (scripted model: the real one is slow
#     on a CPU), `reasonrank models` (assembles and verifies the demo model in a fresh cache) and the
#     first ```python block of each adapter's README (the page an index shows) with
#     REASONRANK_BACKEND=scripted.
# Needs build and twine (the core's [test] extra). About 2.5 minutes of CPU time; 4.5-6.5 minutes wall
# measured on 2 cores shared with other jobs (building 1-2 min, installing the wheels about 3 min).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DISTS=(. integrations/llama-index-postprocessor-reasonrank-rerank integrations/langchain-reasonrank
       integrations/reasonrank-haystack)
ADAPTERS=(llama-index-postprocessor-reasonrank-rerank langchain-reasonrank reasonrank-haystack)
START=$SECONDS
step() { echo "release-check [$((SECONDS - START))s]: $*"; }

LLAMA_WHEEL=$(bash scripts/llama-cpp-wheel.sh)  # this CPU's cached build (the index has only its sdist)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/reasonrank-release.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

step "building ${#DISTS[@]} sdists and wheels"
pids=()
for i in "${!DISTS[@]}"; do
  $PY -m build -q -o "$WORK/dist" "${DISTS[$i]}" >"$WORK/build-$i.log" 2>&1 &
  pids+=($!)
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { cat "$WORK/build-$i.log"; echo "build of ${DISTS[$i]} failed" >&2; exit 1; }
done
ls "$WORK/dist"

step "twine check --strict"
$PY -m twine check --strict "$WORK"/dist/*

step "installing the wheels into a fresh virtual environment"
$PY -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
# -qq: errors only (this machine's pip config warns about a missing extra index on every package);
# --no-compile: nothing here is imported twice, byte-compiling the frameworks costs a minute.
"$VPY" -m pip install -qq --no-compile "$LLAMA_WHEEL"
core=$(ls "$WORK"/dist/reasonrank_plugins-*.whl)
adapters=()
for name in "${ADAPTERS[@]}"; do adapters+=("$(ls "$WORK"/dist/"${name//-/_}"-*.whl)"); done
"$VPY" -m pip install -qq --no-compile "$core[demo]" "${adapters[@]}"
"$VPY" -m pip check -qq

mkdir "$WORK/empty"
cd "$WORK/empty"
unset PYTHONPATH
export REASONRANK_CACHE="$WORK/cache" HF_HUB_OFFLINE=1 HAYSTACK_TELEMETRY_ENABLED=False
"$VPY" - "$WORK/venv" <<'EOF'
import sys
import reasonrank_plugins
assert reasonrank_plugins.__file__.startswith(sys.argv[1]), f"imported {reasonrank_plugins.__file__}"
EOF

step "reasonrank demo --backend scripted --model overlap"
"$WORK/venv/bin/reasonrank" demo --backend scripted --model overlap
step "reasonrank models"
"$WORK/venv/bin/reasonrank" models
for name in "${ADAPTERS[@]}"; do
  step "$name README example (REASONRANK_BACKEND=scripted)"
  "$VPY" - "$name" >"example-$name.py" <<'EOF'
import re
import sys
from importlib.metadata import metadata

readme = metadata(sys.argv[1]).get_payload()  # the README, as the index page shows it
block = re.search(r"^```python\n(.*?)^```", readme, re.S | re.M)
sys.exit(f"{sys.argv[1]}: no ```python block in its README") if block is None else print(block.group(1), end="")
EOF
  REASONRANK_BACKEND=scripted "$VPY" "example-$name.py"
done
step "passed"
