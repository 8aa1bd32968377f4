"""What happens to dictated text: sealed in the store and sent through the outbox, or saved as an IMAP draft.

Dictated text is a message like any other: kind "dictation", sealed, never logged; only ids and sizes are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses
from typing import TYPE_CHECKING, Any

from mailvoice.errors import ConfigError, MailError, SourceError

if TYPE_CHECKING:
    from mailvoice.config import AccountSettings, Settings
    from mailvoice.outbox import FlushStats
    from mailvoice.store import Store
    from mailvoice.store.records import NewMessage

log = logging.getLogger(__name__)
MAX_TEXT = 200_000
DRAFTS = "Drafts"


@dataclass(frozen=True, slots=True)
class Dictated:
    """A finished dictation, ready to send or file as a draft."""

    text: str
    to: tuple[str, ...] = ()
    subject: str = ""


def _addresses(values: tuple[str, ...]) -> tuple[str, ...]:
    """Validated bare addresses; anything with controls or no '@' is refused with its value."""
    out: list[str] = []
    for raw in values:
        if any(c in raw for c in "\r\n\0"):
            raise MailError(f"recipient {raw!r} contains a line break or NUL; give plain addresses")
        for _, addr in getaddresses([raw]):
            if "@" not in addr or any(c.isspace() for c in addr):
                raise MailError(f"recipient {raw!r} is not an e-mail address (expected name@example.org)")
            out.append(addr)
    return tuple(out)


def _account(settings: Settings, name: str | None) -> AccountSettings | None:
    if name:
        for acc in settings.accounts:
            if acc.name == name:
                return acc
        known = ", ".join(a.name for a in settings.accounts) or "none configured"
        raise ConfigError(f"account {name!r} (--account) is not in the config; known accounts: {known}")
    return settings.accounts[0] if settings.accounts else None


def sender_for(settings: Settings, account: AccountSettings | None) -> str:
    """smtp.sender, else the account's own address; ConfigError naming both settings when neither is set."""
    if settings.smtp.sender:
        return settings.smtp.sender
    if account is not None:
        addr = account.address or (account.username if "@" in account.username else "")
        if addr:
            return addr
    raise ConfigError("no sender address for dictated mail: set smtp.sender, or accounts[].address")


def build_mail(d: Dictated, sender: str) -> EmailMessage:
    """The RFC 5322 message (untrusted subject flattened to one clean line)."""
    from mailvoice.mail.headers import clean_header_text, make_message_id
    from mailvoice.store.records import utcnow

    if len(d.text) > MAX_TEXT:
        raise MailError(f"dictated text is {len(d.text)} characters; the limit is {MAX_TEXT}")
    bare = getaddresses([sender])[0][1]
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    if d.to:
        msg["To"] = ", ".join(_addresses(d.to))
    msg["Subject"] = clean_header_text(d.subject, max_len=300)
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_message_id(bare.rpartition("@")[2] or "mailvoice.invalid")
    msg["User-Agent"] = "mailvoice dictation"
    msg.set_content(d.text.rstrip() + "\n")
    return msg


def _record(d: Dictated, account: str, sender: str, state: str) -> NewMessage:
    from mailvoice.store.records import MessageContent, NewMessage

    content = MessageContent(text=d.text, subject=d.subject, sender=sender, recipients=d.to, source="dictation")
    return NewMessage(kind="dictation", account=account, content=content, state=state)


async def send(settings: Settings, store: Store, d: Dictated, account_name: str | None = None) -> FlushStats:
    """Seal the text and queue the mail in one transaction, then flush the outbox (retries survive a restart)."""
    from mailvoice.outbox import Outbox
    from mailvoice.pgpmime import protect_outgoing
    from mailvoice.store.records import Envelope, NewOutgoing

    if not d.to:
        raise MailError("no recipient: give --to ADDR (or fill in To) before sending")
    if not d.text.strip():
        raise MailError("nothing was dictated: the text is empty")
    recipients = _addresses(d.to)
    account = _account(settings, account_name)
    sender = sender_for(settings, account)
    mail = build_mail(d, sender)
    message = _record(d, account.name if account else "", sender, "queued")
    envelope = Envelope(sender=getaddresses([sender])[0][1], recipients=recipients)
    out = NewOutgoing(
        message_id_header=str(mail["Message-ID"]),
        raw=mail.as_bytes(policy=SMTP),
        envelope=envelope,
        message_id=message.id,
    )
    out = protect_outgoing(settings, out)
    await asyncio.to_thread(store.record, (message,), (out,))
    log.info("dictation %s queued as %s (%d chars)", message.id, out.id, len(d.text))
    return await Outbox(settings, store).flush()


def _connect(acc: AccountSettings) -> Any:
    """Log in exactly as the mail source does (TLS verified against ca_file, timeouts, secrets, clear errors)."""
    from mailvoice.mail.imap import open_client

    return open_client(acc)


def _append_draft(acc: AccountSettings, raw: bytes) -> str:
    from imapclient import DRAFT, SEEN

    client = _connect(acc)
    try:
        folder = client.find_special_folder(b"\\Drafts") or DRAFTS
        if not client.folder_exists(folder):
            client.create_folder(folder)
        client.append(folder, raw, flags=(DRAFT, SEEN))
        return str(folder)
    finally:
        with contextlib.suppress(Exception):
            client.logout()


async def save_draft(settings: Settings, store: Store, d: Dictated, account_name: str | None = None) -> str:
    """APPEND the mail to the account's Drafts folder (special-use, else "Drafts") and keep it sealed in the store."""
    if not d.text.strip():
        raise MailError("nothing was dictated: the text is empty")
    account = _account(settings, account_name)
    if account is None:
        raise ConfigError("saving a draft needs an IMAP account: add an [[accounts]] section to the config")
    sender = sender_for(settings, account)
    mail = build_mail(d, sender)
    message = _record(d, account.name, sender, "draft")
    try:
        folder = await asyncio.to_thread(_append_draft, account, mail.as_bytes(policy=SMTP))
    except SourceError:
        raise
    except Exception as exc:  # imapclient raises its own tree and socket errors
        raise SourceError(f"IMAP account {account.name!r}: APPEND to the drafts folder failed: {exc}") from exc
    await asyncio.to_thread(store.record, (message,), ())
    log.info("dictation %s saved as a draft in %s of %s", message.id, folder, account.name)
    return folder
