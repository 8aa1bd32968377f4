"""`mailvoice init` and `mailvoice keys rotate` (`mailvoice keys pgp ...` lives in keys_pgp)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mailvoice.commands import console, settings_from

STARTER_CONFIG = """\
# mailvoice configuration. Every key may be overridden as MAILVOICE_<SECTION>__<KEY> in the environment.
# With no [[accounts]] and no [[maildirs]], `mailvoice run` works on the bundled demo mailbox.

[general]
# data_dir = "~/.local/share/mailvoice"   # store, key file, quarantine, delivered mail
# allow_downloads = false                 # let engines fetch models from a hub when no package provides them
# backlog = "7d"          # first contact with a mailbox: also transcribe mail this old (default: none, see README)
# log_level = "WARNING"   # INFO shows each message handled (by reference, never its content)
# log_format = "text"     # or "json": one object per line

[asr]
# model = "tiny.en"      # model package name (see models/manifest.toml), a CTranslate2 directory, or a hub name
# language = "auto"
# beam_size = 5
# min_window = 30.0      # shortest encoder input in seconds; 15 is ~2x faster on short clips, at some accuracy
# greedy_first = false   # true: greedy decoding, beam search only where the scores fail (faster, less accurate)

[tts]
# engine = "piper"       # piper, coqui (pip install 'mailvoice[coqui]'), espeak
# voice = "joe"
# format = "ogg"         # ogg (Opus), mp3, wav

# [[accounts]]
# name = "work"
# host = "imap.example.com"
# username = "me@example.com"
# password_env = "MAILVOICE_WORK_PASSWORD"   # passwords never go in this file
# folders = ["INBOX"]
# recipients = ["me@example.com"]             # where transcripts go (default: the account's address)

# [[maildirs]]
# name = "local"
# path = "~/Maildir"

# [delivery]
# pgp = "when-key"       # OpenPGP mail: "required" never sends plaintext; `mailvoice keys pgp import FILE`

# [smtp]
# host = "smtp.example.com"
# port = 587
# tls = "starttls"
# username = "me@example.com"
# password_env = "MAILVOICE_SMTP_PASSWORD"
# sender = "mailvoice <me@example.com>"
"""


def _write_config(args: argparse.Namespace) -> None:
    """Write the starter config where --config / $MAILVOICE_CONFIG / the user dir points (folder 0700, file 0600)."""
    from mailvoice.config import default_config_path

    cfg = Path(getattr(args, "config", None) or os.environ.get("MAILVOICE_CONFIG") or default_config_path())
    cfg = cfg.expanduser()
    if cfg.exists() and not args.force:
        console.info(f"config: {cfg} (exists)")
        return
    cfg.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(STARTER_CONFIG)
    os.chmod(cfg, 0o600)  # O_CREAT's mode is not applied to a file that already existed (--force)
    console.info(f"config: {cfg} written")


def _init(args: argparse.Namespace) -> int:
    from mailvoice.crypto import create_keyring, env_keyring, load_keyring

    _write_config(args)  # first: the settings below are read from it, and a named file may not exist yet
    settings = settings_from(args)
    data_dir = settings.general.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = settings.general.resolved_key_file()
    if env_keyring() is not None:
        console.info("key: taken from MAILVOICE_KEY (no key file written)")
    elif key_file.exists():
        load_keyring(key_file)  # refuses a loose mode with the chmod to run
        console.info(f"key: {key_file} (exists, mode 0600)")
    else:
        create_keyring(key_file)
        console.info(f"key: {key_file} created (mode 0600) - back it up: without it the store cannot be read")
    console.info(f"data: {data_dir}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from mailvoice.commands import open_store
    from mailvoice.crypto import load_keyring
    from mailvoice.errors import KeyFileError
    from mailvoice.store import rotate_keys

    settings = settings_from(args)
    key_file = settings.general.resolved_key_file()
    if not key_file.exists():
        raise KeyFileError(
            f"key file {key_file} does not exist; keys given by MAILVOICE_KEY are rotated by "
            "setting a new value first in the list (new,old) and running `mailvoice keys rotate`"
        )
    load_keyring(key_file)
    store = open_store(settings)
    try:
        count = rotate_keys(store, key_file)
        store.audit("keys.rotated", f"active={store.sealer.active_key_id} resealed={count}")
    finally:
        store.close()
    console.info(f"re-sealed {count} value(s) under the new key in {key_file}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.command == "init":
        return _init(args)
    if args.keys_command == "pgp":
        from mailvoice.commands.keys_pgp import run as run_pgp

        return run_pgp(args)
    return _rotate(args)
