"""CLI command implementations; each module exposes `run(args) -> int` and is imported only when used."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from mailvoice.config import Settings
    from mailvoice.crypto import Sealer
    from mailvoice.store import Store

_err: Console | None = None


def err_console() -> Console:
    """Rich console on stderr: progress and diagnostics never mix with --json output on stdout."""
    global _err
    if _err is None:
        from rich.console import Console

        _err = Console(stderr=True, highlight=False)
    return _err


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings (parsed once, here); general.log_level and log_format take effect from now on."""
    from mailvoice.config import load_settings
    from mailvoice.logsetup import apply_settings

    settings = load_settings(getattr(args, "config", None))
    apply_settings(settings.general)
    return settings


def print_json(doc: object) -> None:
    """One JSON document on stdout (scripts parse it; everything human goes to stderr)."""
    import json

    print(json.dumps(doc, ensure_ascii=False, default=str), flush=True)


def open_store(settings: Settings) -> Store:
    """The store with the keyring named in the settings (MAILVOICE_KEY or the 0600 key file)."""
    from mailvoice.crypto import Sealer, load_key
    from mailvoice.store import Store

    keyring = load_key(settings.general.resolved_key_file())
    return Store.open(settings.general.resolved_store_url(), Sealer(keyring), keep_audio=settings.delivery.keep_audio)


def sealer_for(settings: Settings) -> Sealer:
    from mailvoice.crypto import Sealer, load_key

    return Sealer(load_key(settings.general.resolved_key_file()))
