"""The outbox: mails to send, sealed, with a retry state machine that survives restarts.

pending --mark_sending--> sending --mark_sent--> sent
   ^                         |  \\--mark_failed--> failed
   +------mark_retry---------+
   +------requeue_sending----+  (at start-up: a crash left it mid-send; same Message-ID)
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Row, select, update

from mailvoice.crypto import record_aad
from mailvoice.errors import StoreError
from mailvoice.store.db import Db, from_db_time, to_db_time
from mailvoice.store.records import Envelope, NewOutgoing, OutboxState, Outgoing, utcnow
from mailvoice.store.schema import outbox

TABLE = "outbox"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def short_error(error: str, limit: int = 300) -> str:
    """One line, bounded: the caller must already have left content out."""
    return _CONTROL.sub(" ", error).strip()[:limit]


def insert(conn: Connection, db: Db, new: NewOutgoing) -> None:
    """Seal and insert one outgoing mail as pending (inside the caller's transaction)."""
    sealer = db.sealer
    envelope = {"sender": new.envelope.sender, "recipients": list(new.envelope.recipients)}
    created = to_db_time(new.created_at)
    conn.execute(
        outbox.insert().values(
            id=new.id,
            message_id_header=new.message_id_header,
            message_id=new.message_id,
            key_id=sealer.active_key_id,
            raw=sealer.seal(new.raw, record_aad(TABLE, new.id, "raw")),
            envelope=sealer.seal_json(envelope, record_aad(TABLE, new.id, "envelope")),
            size=len(new.raw),
            state="pending",
            attempts=0,
            next_attempt_at=created,
            last_error="",
            created_at=created,
            sent_at=None,
        )
    )


class OutboxQueries:
    """Store methods for the outbox; adding goes through record / record_processed."""

    _db: Db

    def _open_outgoing(self, row: Row[Any]) -> Outgoing:
        sealer = self._db.sealer
        env = sealer.open_json(row.envelope, record_aad(TABLE, row.id, "envelope"))
        return Outgoing(
            id=row.id,
            message_id_header=row.message_id_header,
            raw=sealer.open(row.raw, record_aad(TABLE, row.id, "raw")),
            envelope=Envelope(sender=env["sender"], recipients=tuple(env["recipients"])),
            state=cast(OutboxState, row.state),
            attempts=row.attempts,
            next_attempt_at=from_db_time(row.next_attempt_at),
            last_error=row.last_error,
            created_at=from_db_time(row.created_at),
            sent_at=from_db_time(row.sent_at) if row.sent_at is not None else None,
            message_id=row.message_id,
            key_id=row.key_id,
        )

    def due(self, now: datetime, limit: int = 20) -> tuple[Outgoing, ...]:
        """Pending mails whose next attempt is due, oldest first."""
        query = (
            select(outbox)
            .where(outbox.c.state == "pending", outbox.c.next_attempt_at <= to_db_time(now))
            .order_by(outbox.c.next_attempt_at, outbox.c.id)
            .limit(limit)
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return tuple(self._open_outgoing(row) for row in rows)

    def get_outgoing(self, outgoing_id: str) -> Outgoing:
        """One outbox row by id."""
        with self._db.read() as conn:
            row = conn.execute(select(outbox).where(outbox.c.id == outgoing_id)).first()
        if row is None:
            raise StoreError(f"no outbox entry with id {outgoing_id} in store {self._db.where}")
        return self._open_outgoing(row)

    def list_outbox(self, state: OutboxState | None = None, limit: int = 50) -> tuple[Outgoing, ...]:
        """Outbox rows, newest first."""
        query = select(outbox).order_by(outbox.c.created_at.desc(), outbox.c.id).limit(limit)
        if state is not None:
            query = query.where(outbox.c.state == state)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return tuple(self._open_outgoing(row) for row in rows)

    def _transition(
        self, outgoing_id: str, allowed: tuple[OutboxState, ...], audit_as: str = "", **values: Any
    ) -> None:
        with self._db.write() as conn:
            done = conn.execute(
                update(outbox).where(outbox.c.id == outgoing_id, outbox.c.state.in_(allowed)).values(**values)
            ).rowcount
            if done:
                if audit_as:  # in the same transaction: a sent mail always has its audit record
                    from mailvoice.store.audit import append, cli_actor

                    append(conn, self._db, cli_actor(), audit_as, outgoing_id, "ok")
                return
            current = conn.execute(select(outbox.c.state).where(outbox.c.id == outgoing_id)).scalar()
        if current is None:
            raise StoreError(f"no outbox entry with id {outgoing_id} in store {self._db.where}")
        raise StoreError(
            f"outbox entry {outgoing_id} is {current!r}, cannot become {values['state']!r} "
            f"(only from {', '.join(allowed)})"
        )

    def mark_sending(self, outgoing_id: str) -> bool:
        """Claim a pending mail for one attempt (counts the attempt); False if another worker has it."""
        with self._db.write() as conn:
            return (
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id == outgoing_id, outbox.c.state == "pending")
                    .values(state="sending", attempts=outbox.c.attempts + 1)
                ).rowcount
                > 0
            )

    def mark_sent(self, outgoing_id: str, at: datetime | None = None) -> None:
        """The server accepted it (250 after DATA)."""
        self._transition(
            outgoing_id, ("sending",), "mail.sent", state="sent", sent_at=to_db_time(at or utcnow()), last_error=""
        )

    def mark_retry(self, outgoing_id: str, next_at: datetime, error: str) -> None:
        """A temporary failure: back to pending, tried again at next_at."""
        self._transition(
            outgoing_id,
            ("sending",),
            state="pending",
            next_attempt_at=to_db_time(next_at),
            last_error=short_error(error),
        )

    def mark_failed(self, outgoing_id: str, error: str) -> None:
        """A permanent failure (5xx, or retries exhausted): never tried again."""
        self._transition(outgoing_id, ("sending", "pending"), state="failed", last_error=short_error(error))

    def requeue_sending(self) -> int:
        """Mails a crash left in 'sending' go back to pending (same Message-ID, due now); returns how many."""
        with self._db.write() as conn:
            return conn.execute(
                update(outbox)
                .where(outbox.c.state == "sending")
                .values(state="pending", next_attempt_at=to_db_time(utcnow()))
            ).rowcount
