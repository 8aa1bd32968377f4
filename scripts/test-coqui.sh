#!/usr/bin/env bash
# The optional Coqui engine's test, in its own venv (.venv-coqui): CPU torch first, so pip never pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv-coqui/bin/python ] || "$PY" -m venv .venv-coqui
.venv-coqui/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv-coqui/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
.venv-coqui/bin/python -m pip install -q -e ".[coqui,dev]" "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
.venv-coqui/bin/pytest -p no:cacheprovider -m coqui tests/test_coqui.py
