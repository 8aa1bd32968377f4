#!/usr/bin/env bash
# The main job on the bundled demo mailbox, hermetic: `mailvoice demo` builds its own settings, keeps its state in
# $MAILVOICE_HOME (default ~/.local/share/mailvoice-demo), never reads or writes your config and contacts no server.
# MAILVOICE_DEMO_SETUP=0 skips the (re)install step when .venv is already set up.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${MAILVOICE_DEMO_SETUP:-1}" != 0 ] || [ ! -x .venv/bin/mailvoice ]; then bash scripts/setup.sh; fi
exec .venv/bin/mailvoice demo
