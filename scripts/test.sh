#!/usr/bin/env bash
# Install everything (tests included) and run the whole test suite, slow real-model tests too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
python3 -m pytest -q -p no:cacheprovider tests integrations/*/tests training/tests "$@"
