"""Drain the persistent outbox: send due mail through SMTP (or the local folder), retry, give up, tell the owner.

Retries: 4xx, outages and timeouts back off exponentially with full jitter (30 s doubling to 1 h) for up to
MAX_AGE; a 5xx is permanent: no retry, and the owner is told once by a notice mail (never a notice about a notice,
never to a null sender). The Message-ID of a mail never changes across retries, so the one duplicate SMTP permits
(connection lost after "." before "250") is recognisable as such by every mail client.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email.policy import SMTP
from typing import TYPE_CHECKING

from mailvoice.crashpoints import crashpoint
from mailvoice.errors import DeliveryError, MailvoiceError, PgpRequiredError, StoreError

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.store import Store
    from mailvoice.store.records import Outgoing

log = logging.getLogger(__name__)

RETRY_BASE = 30.0
RETRY_CAP = 3600.0
MAX_AGE = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class FlushStats:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


def retry_delay(
    attempts: int, base: float = RETRY_BASE, cap: float = RETRY_CAP, rng: random.Random | None = None
) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempts)), never under 0.5 s."""
    ceiling = min(cap, base * 2.0 ** min(max(attempts - 1, 0), 30))
    return max(0.5, (rng or random).uniform(0.0, ceiling))


class Outbox:
    """Sends what the store's outbox holds; one flush at a time."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._lock = asyncio.Lock()
        self._unrecorded: dict[str, Callable[[], None]] = {}
        """Outcomes of attempts the store could not write (disk full, locked), by outbox id: written first at the
        next flush, so a mail the server accepted is not sent again and none waits in 'sending' for a restart."""

    async def flush(self, limit: int = 50) -> FlushStats:
        """Send every due mail once (in order); return what happened."""
        from mailvoice.store.records import utcnow

        async with self._lock:
            await self._record_pending()
            sent = retrying = failed = 0
            due = await asyncio.to_thread(self._store.due, utcnow(), limit)
            for row in due:
                outcome = await self._send_one(row)
                sent += outcome == "sent"
                retrying += outcome == "retry"
                failed += outcome == "failed"
            return FlushStats(sent, retrying, failed)

    async def _send_one(self, row: Outgoing) -> str:
        from mailvoice.store.records import utcnow

        if not await asyncio.to_thread(self._store.mark_sending, row.id):
            return "skipped"
        crashpoint("sending")
        try:
            await self._deliver(row)
        except DeliveryError as exc:
            return await self._failed_attempt(row, exc)
        except MailvoiceError as exc:  # configuration problems: keep the mail, retry later
            return await self._failed_attempt(row, DeliveryError(str(exc)))
        crashpoint("sent")
        await self._record(row.id, functools.partial(self._store.mark_sent, row.id, utcnow()))
        log.info("sent outbox %s (%s) to %d recipient(s)", row.id, row.message_id_header, len(row.envelope.recipients))
        return "sent"

    async def _deliver(self, row: Outgoing) -> None:
        from mailvoice.pgpmime import protect

        s = self._settings
        try:  # the [delivery] pgp policy, again at send time: nothing leaves in plaintext under "required"
            raw = await asyncio.to_thread(protect, s, row.raw, row.envelope.recipients)
        except PgpRequiredError as exc:
            await asyncio.to_thread(self._notify_key_missing, row, exc.missing)
            raise
        if s.smtp.host:
            from mailvoice.mail.smtp import send

            await send(raw, row.envelope.sender, list(row.envelope.recipients), s.smtp)
        else:
            from mailvoice.mail.smtp import deliver_to_maildir

            folder = s.delivery.folder or s.general.data_dir / "delivered"
            await asyncio.to_thread(deliver_to_maildir, raw, folder)

    def _notify_key_missing(self, row: Outgoing, missing: tuple[tuple[str, str], ...]) -> None:
        """Tell the owner once per address that mail is held for want of a usable key (no content in it)."""
        from mailvoice.compose import envelope_addresses
        from mailvoice.mail.headers import make_message_id
        from mailvoice.pgpmime import NOTICE_HEADER, key_notice_text, mark_told, not_yet_told
        from mailvoice.render import auto_mail
        from mailvoice.store.records import Envelope, NewOutgoing

        sender = row.envelope.sender
        recipients = envelope_addresses(self._settings.delivery.owners) or tuple(a for a, _ in missing)
        fresh = not_yet_told(self._settings, missing)
        if not sender or not fresh:
            return
        notice = auto_mail(
            "notice",
            subject="mailvoice needs your OpenPGP key",
            sender=self._settings.smtp.sender or sender,
            recipients=recipients,
            message_id=make_message_id(sender.rpartition("@")[2] or "mailvoice.invalid"),
        )
        notice[NOTICE_HEADER] = "pgp-key"
        notice.set_content(key_notice_text(missing))
        self._store.record(
            outgoing=(
                NewOutgoing(
                    message_id_header=notice["Message-ID"],
                    raw=notice.as_bytes(policy=SMTP),
                    envelope=Envelope(sender=sender, recipients=recipients),
                ),
            )
        )
        mark_told(self._settings, fresh)
        log.warning("pgp: mail held for %d address(es) without a usable key; the owner was told", len(missing))

    async def _failed_attempt(self, row: Outgoing, exc: DeliveryError) -> str:
        from mailvoice.store.records import utcnow

        now = utcnow()
        too_old = now - row.created_at > MAX_AGE
        if exc.permanent or too_old:
            why = str(exc) if exc.permanent else f"gave up after {MAX_AGE.days} days of retries: {exc}"
            await self._record(row.id, functools.partial(self._store.mark_failed, row.id, why))
            log.error("outbox %s failed permanently: %s", row.id, why)
            await asyncio.to_thread(self._notify_owner, row, why)
            return "failed"
        delay = retry_delay(row.attempts, self._settings.smtp.retry_base, self._settings.smtp.retry_cap)
        retry = functools.partial(self._store.mark_retry, row.id, now + timedelta(seconds=delay), str(exc))
        await self._record(row.id, retry)
        log.warning("outbox %s: %s; retry in %.0f s", row.id, exc, delay)
        return "retry"

    async def _record(self, outgoing_id: str, write: Callable[[], None]) -> None:
        """Write an attempt's outcome; when the store refuses, keep it for the next flush and raise."""
        try:
            await asyncio.to_thread(write)
        except StoreError:
            self._unrecorded[outgoing_id] = write
            raise

    async def _record_pending(self) -> None:
        """Outcomes an earlier flush could not write, written now (StoreError again while the store still refuses)."""
        for outgoing_id, write in list(self._unrecorded.items()):
            try:
                await asyncio.to_thread(write)
            except StoreError:
                state = (await asyncio.to_thread(self._store.get_outgoing, outgoing_id)).state
                if state == "sending":
                    raise
            del self._unrecorded[outgoing_id]
            log.warning("outbox %s: recorded the outcome of an attempt the store had refused", outgoing_id)

    def _notify_owner(self, row: Outgoing, why: str) -> None:
        """Queue one notice to the owner about a mail that could not be delivered (never about a notice)."""
        from email import message_from_bytes

        from mailvoice.compose import envelope_addresses
        from mailvoice.mail.headers import clean_header_text, make_message_id
        from mailvoice.pgpmime import protect_outgoing
        from mailvoice.render import auto_mail
        from mailvoice.store.records import Envelope, NewOutgoing

        original = message_from_bytes(row.raw[:65536])
        if original.get("X-Mailvoice", "") == "notice":
            return
        owners = self._settings.delivery.owners or (row.envelope.sender,)
        recipients = envelope_addresses(owners)
        if not recipients or not row.envelope.sender:
            return  # never mail a null sender
        sender = row.envelope.sender
        notice = auto_mail(
            "notice",
            subject="mailvoice could not deliver a message",
            sender=self._settings.smtp.sender or sender,
            recipients=recipients,
            message_id=make_message_id(sender.rpartition("@")[2] or "mailvoice.invalid"),
        )
        notice.set_content(
            f"A message mailvoice generated could not be delivered and will not be retried.\n\n"
            f"Message-ID: {row.message_id_header}\nTo: {', '.join(row.envelope.recipients)}\n"
            f"Reason: {clean_header_text(why, max_len=500)}\n"
        )
        out = NewOutgoing(
            message_id_header=notice["Message-ID"],
            raw=notice.as_bytes(policy=SMTP),
            envelope=Envelope(sender=sender, recipients=recipients),
        )
        self._store.record(outgoing=(protect_outgoing(self._settings, out),))
