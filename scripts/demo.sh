#!/usr/bin/env bash
# Set up (if needed) and run medrag's main job on real PubMed data, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python examples/quickstart.py "$@"
