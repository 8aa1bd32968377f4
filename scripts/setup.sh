#!/usr/bin/env bash
# Set up a virtual environment with mailvoice in .venv (idempotent). Usage: scripts/setup.sh [extras]
# System packages: python3-venv always; the test extras also need Dovecot, sox and espeak-ng (installed when root).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "mailvoice needs Python 3.11+"' || exit 1

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then apt_install python3-venv; fi
if [[ "$extras" == *dev* ]]; then
  # gnupg: the PGP/MIME tests decrypt with real gpg; tmux: the terminal tests (tests/test_terminal.py); stress-ng: the suite twice under CPU load (MAILVOICE_TEST_LOAD=1 bash scripts/test.sh)
  apt_install dovecot-imapd dovecot-lmtpd sox libvo-amrwbenc0 espeak-ng openssl ca-certificates chromium chromium-driver \
    tmux stress-ng gnupg
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
spec="."
[ -n "$extras" ] && spec=".[$extras]"
.venv/bin/python -m pip install -q -e "$spec" 2>&1 | grep -v "^WARNING: Location" || true
if [[ "$extras" == *dev* ]]; then
  # The Matrix tests' homeserver: Synapse in its own venv (its pins would fight ours), started by the tests.
  [ -x .venv-synapse/bin/python ] || "$PY" -m venv .venv-synapse
  .venv-synapse/bin/python -m pip install -q "matrix-synapse>=1.100,<2" 2>&1 | grep -v "^WARNING: Location" || true
fi
.venv/bin/mailvoice --version
