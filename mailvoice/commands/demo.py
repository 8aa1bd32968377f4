"""`mailvoice demo`: the main job on the bundled demo mailbox, hermetic.

Its settings are built here, not loaded: no config file (yours is never read or written), no MAILVOICE_*
override, no account, no SMTP: the transcript mail is delivered into a Maildir under the demo's own folder
($MAILVOICE_HOME, --home, or a "mailvoice-demo" user data folder).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from mailvoice.commands import console, err_console

HOME_ENV = "MAILVOICE_HOME"


def demo_home(args: argparse.Namespace) -> Path:
    if getattr(args, "home", None):
        return Path(args.home).expanduser()
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("mailvoice-demo"))


def _mails(folder: Path) -> list[Path]:
    """The transcript mails delivered into the Maildir, oldest first."""
    from email.parser import BytesHeaderParser

    found = [p for sub in ("new", "cur") if (folder / sub).is_dir() for p in (folder / sub).iterdir()]
    transcripts = [p for p in found if BytesHeaderParser().parsebytes(p.read_bytes())["X-Mailvoice"] == "transcript"]
    return sorted(transcripts, key=lambda p: p.stat().st_mtime)


def show_mail(path: Path) -> None:
    """Headers a mail client shows, then the text part, on stderr (escaped: it is user text)."""
    from rich.markup import escape

    msg = message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(msg, EmailMessage)
    out = err_console()
    for name in ("From", "To", "Subject", "Date"):
        if msg[name]:
            out.print(f"[bold]{name}:[/bold] {escape(str(msg[name]))}")
    body = msg.get_body(preferencelist=("plain",))
    text = body.get_content() if isinstance(body, EmailMessage) else "(no text part)"
    out.print()
    out.print(escape(str(text).rstrip()))
    attachments = [p.get_filename() for p in msg.iter_attachments() if p.get_filename()]
    if attachments:
        out.print()
        out.print(escape(f"attached: {', '.join(str(a) for a in attachments)}"))


def run(args: argparse.Namespace) -> int:
    from mailvoice.commands.messages import print_messages
    from mailvoice.commands.runcmd import report
    from mailvoice.config import GeneralSettings, Settings
    from mailvoice.crypto import Sealer, create_keyring, load_keyring
    from mailvoice.demo import demo_paths
    from mailvoice.runner import Runner
    from mailvoice.store import Store

    home = demo_home(args)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings = Settings(general=GeneralSettings(data_dir=home))
    key_file = settings.general.resolved_key_file()
    if not key_file.exists():
        create_keyring(key_file)
    console.info(f"demo: its own folder {home} (no config file read, no server contacted)")
    store = Store.open(settings.general.resolved_store_url(), Sealer(load_keyring(key_file)))
    runner = Runner(settings, store)
    try:
        _, delivered = demo_paths(settings)
        before = set(_mails(delivered))
        with err_console().status("creating the demo mailbox and transcribing its voicemail", spinner="dots"):
            stats = asyncio.run(runner.run_once())
        report(stats)
        print_messages(store.list_messages(limit=20))
    finally:
        runner.transcriber.close()
        store.close()
    mails = _mails(delivered)
    new = [p for p in mails if p not in before]
    shown = new[-1] if new else (mails[-1] if mails else None)
    if shown is None:
        console.warn(f"no transcript mail in {delivered}")
        return 1
    from rich.markup import escape

    where = "was delivered to" if new else "(from an earlier demo run) is"
    err_console().print(escape(f"\nthe transcript mail {where} {shown}"), soft_wrap=True)  # a path stays whole
    show_mail(shown)
    console.info(f"\nrun it afresh: rm -r {home}")
    return 1 if stats.errors else 0
