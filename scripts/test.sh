#!/usr/bin/env bash
# Set up everything the tests need (Debian packages, .venv with the dev extras) and run lint, types and all tests.
# MAILVOICE_TEST_COQUI=0 skips the optional Coqui engine's step (its own venv, ~1.8 GB).
# MAILVOICE_TEST_LOAD=1 runs pytest twice in a row with stress-ng keeping every core busy (no test may depend on speed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,web
echo "== services (PostgreSQL, RabbitMQ, Redis on 127.0.0.1)" && bash scripts/services.sh
export MAILVOICE_REQUIRE_SERVICES=1
echo "== ruff" && .venv/bin/ruff check mailvoice tests && .venv/bin/ruff format --check mailvoice tests
echo "== mypy --strict" && .venv/bin/mypy
if [ "${MAILVOICE_TEST_LOAD:-0}" = "1" ]; then
  stress-ng --cpu "$(nproc)" --quiet &
  load=$!
  trap 'kill "$load" 2>/dev/null || true' EXIT
  echo "== pytest under CPU load (stress-ng --cpu $(nproc)), run 1 of 2"
  .venv/bin/pytest -p no:cacheprovider "$@"
  echo "== pytest under CPU load, run 2 of 2"
  .venv/bin/pytest -p no:cacheprovider "$@"
else
  echo "== pytest"
  .venv/bin/pytest -p no:cacheprovider "$@"
fi
if [ "${MAILVOICE_TEST_COQUI:-1}" != "0" ] && [ $# -eq 0 ]; then
  echo "== coqui extra (own venv)"
  bash scripts/test-coqui.sh
fi
