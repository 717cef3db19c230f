#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# --durations=25: the CI log lists the slowest tests (the suite has a ~15 min budget)
python -m pytest -q --durations=25 "$@"
