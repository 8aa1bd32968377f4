"""The bundled demo mailbox: the embedded default when no account is configured.

A Maildir with a few text mails and a PBX voicemail whose audio is synthesized by our own TTS on first use (no audio
file ships in the package). Transcripts are delivered into a local Maildir instead of SMTP.
"""

from __future__ import annotations

import datetime
import logging
import os
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

from mailvoice.config import MaildirSettings, Settings

log = logging.getLogger(__name__)

DEMO_NAME = "demo"
DEMO_OWNER = "you@demo.invalid"
VOICEMAIL_SCRIPT = (
    "Hi, this is Dana from the Riverside dental office. I'm calling to confirm your appointment on Thursday "
    "at three thirty in the afternoon. If that time no longer works for you, please give us a call back. "
    "Thanks, and have a great day."
)

_TEXT_MAILS = (
    (
        "Priya Raman <priya@example.org>",
        "Lunch on Friday?",
        "Hi! Are you free for lunch on Friday? The new noodle place on Main Street opened this week.\n\nPriya",
    ),
    (
        "Build Bot <ci@example.com>",
        "Nightly build passed",
        "The nightly build of project atlas passed all 412 tests in 6 minutes.\n",
    ),
    (
        "Marco Bellini <marco@example.net>",
        "Slides for Monday",
        "Hello,\n\nI attached nothing yet, but the slides for Monday's review will be ready tomorrow morning.\n\n"
        "Best,\nMarco\n",
    ),
)


def demo_paths(settings: Settings) -> tuple[Path, Path]:
    """(demo mailbox, local delivery folder) under the data dir."""
    data = settings.general.data_dir
    return data / "demo-mailbox", settings.delivery.folder or data / "delivered"


def demo_source(settings: Settings) -> MaildirSettings:
    mailbox, _ = demo_paths(settings)
    return MaildirSettings(name=DEMO_NAME, path=mailbox, recipients=(DEMO_OWNER,), address=DEMO_OWNER)


def _write(maildir: Path, msg: EmailMessage, key: str) -> None:
    tmp = maildir / "tmp" / key
    with open(tmp, "wb") as fh:
        fh.write(msg.as_bytes(policy=SMTP))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, maildir / "new" / key)


def _synthesize_voicemail(settings: Settings) -> bytes:
    from mailvoice.audio import assemble, encode_audio
    from mailvoice.engines import load_tts

    tts = load_tts(settings.tts, settings.general)
    clip = assemble(tts.synthesize(VOICEMAIL_SCRIPT))
    return encode_audio(clip, "wav")


def ensure_demo_mailbox(settings: Settings) -> MaildirSettings:
    """Create the demo mailbox once (idempotent); the voicemail audio is synthesized here, on first use."""
    mailbox, _ = demo_paths(settings)
    marker = mailbox / ".mailvoice-demo"
    if marker.exists():
        return demo_source(settings)
    for sub in ("tmp", "new", "cur"):
        (mailbox / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    log.info("creating the demo mailbox in %s", mailbox)
    for i, (sender, subject, body) in enumerate(_TEXT_MAILS):
        msg = EmailMessage(policy=SMTP)
        msg["From"] = sender
        msg["To"] = DEMO_OWNER
        msg["Subject"] = subject
        msg["Date"] = format_datetime(_now())
        msg["Message-ID"] = make_msgid(domain="demo.invalid")
        msg.set_content(body)
        _write(mailbox, msg, f"demo-text-{i}.mailvoice")

    vm = EmailMessage(policy=SMTP)
    vm["From"] = '"Asterisk PBX" <asterisk@pbx.demo.invalid>'
    vm["To"] = DEMO_OWNER
    vm["Subject"] = "[PBX]: New message 1 in mailbox 100"
    vm["Date"] = format_datetime(_now())
    vm["Message-ID"] = make_msgid(domain="pbx.demo.invalid")
    vm.set_content(
        "Dear You:\n\n\tjust wanted to let you know you were just left a 0:14 long message (number 1)\n"
        'in mailbox 100 from "Riverside Dental" <5551234567>, on Thursday, November 26, 2026 at 09:12:44 AM\n'
        "so you might want to check it when you get a chance.  Thanks!\n\n\t\t\t\t--Asterisk\n"
    )
    vm.add_attachment(_synthesize_voicemail(settings), maintype="audio", subtype="x-wav", filename="msg0001.wav")
    _write(mailbox, vm, "demo-voicemail-1.mailvoice")
    marker.write_text("created by mailvoice: the bundled demo mailbox\n", encoding="utf-8")
    return demo_source(settings)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
