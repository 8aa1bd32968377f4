#!/usr/bin/env bash
# The main job on the embedded default: set up, then run the bot once over the bundled demo mailbox and show the
# decrypted results. State lives in $MAILVOICE_HOME (default ~/.local/share/mailvoice-demo), never in the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MAILVOICE_GENERAL__DATA_DIR="${MAILVOICE_HOME:-$HOME/.local/share/mailvoice-demo}"
.venv/bin/mailvoice init
.venv/bin/mailvoice run --once
.venv/bin/mailvoice messages
