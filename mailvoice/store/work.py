"""Work items of the scaled-out deployment: a polled mail, sealed in the store, until a worker has processed it.

    poller:  record_queued        (sealed raw mail + ledger row 'queued', one transaction) -> ack at the source
    worker:  record_work_done     (messages + outbox + ledger 'done' + work item 'done', one transaction)
         or  record_work_quarantined
A redelivered task finds its item no longer 'queued' and does nothing: at-least-once tasks, exactly-once effects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select, update
from sqlalchemy.exc import IntegrityError

from mailvoice.crypto import record_aad
from mailvoice.errors import StoreError
from mailvoice.store import ledger as ledger_rows
from mailvoice.store import messages as message_rows
from mailvoice.store import outbox as outbox_rows
from mailvoice.store import quarantine as quarantine_rows
from mailvoice.store.db import Db, from_db_time, to_db_time
from mailvoice.store.records import NewMessage, NewOutgoing, Outcome, SourceRef, new_id, utcnow
from mailvoice.store.schema import done_keys, ledger, work_items

TABLE = "work_items"


@dataclass(frozen=True)
class WorkItem:
    """A queued source item, opened."""

    id: str
    account: str
    folder: str
    uidvalidity: int
    uid: int | None
    key: str | None
    raw: bytes = field(repr=False)
    """The whole mail; empty once the item is done."""
    size: int
    internal_date: datetime | None
    state: str
    attempts: int
    created_at: datetime


def _ledger_row(item: Any) -> Any:
    """The ledger row a work item was queued with (its source identity)."""
    if item.uid is not None:
        return and_(
            ledger.c.account == item.account,
            ledger.c.folder == item.folder,
            ledger.c.uidvalidity == item.uidvalidity,
            ledger.c.uid == item.uid,
        )
    return and_(
        ledger.c.account == item.account, ledger.c.folder == item.folder, ledger.c.source_key == item.source_key
    )


class WorkQueries:
    """Store methods for the scaled-out poller and workers (mailvoice.scale)."""

    _db: Db

    def record_queued(self, ref: SourceRef, raw: bytes, size: int, internal_date: datetime | None) -> str | None:
        """One transaction: the sealed mail as a work item plus its ledger row 'queued'; None if already known."""
        wid = new_id()
        now = to_db_time(utcnow())
        sealer = self._db.sealer
        try:
            with self._db.write() as conn:
                if ledger_rows.known(conn, ref):
                    return None
                conn.execute(
                    work_items.insert().values(
                        id=wid,
                        account=ref.account,
                        folder=ref.folder,
                        uidvalidity=ref.uidvalidity,
                        uid=ref.uid,
                        source_key=ref.key,
                        key_id=sealer.active_key_id,
                        raw=sealer.seal(raw, record_aad(TABLE, wid, "raw")),
                        size=size,
                        internal_date=to_db_time(internal_date) if internal_date else None,
                        state="queued",
                        attempts=0,
                        created_at=now,
                        enqueued_at=now,
                        updated_at=now,
                    )
                )
                ledger_rows.insert(conn, ref, "queued")
        except IntegrityError as exc:
            with self._db.read() as conn:
                if ledger_rows.known(conn, ref):
                    return None  # a concurrent poller took the same item in
            raise StoreError(
                f"store {self._db.where}: queueing {ref.account}/{ref.folder} failed ({exc.orig}); nothing was recorded"
            ) from exc
        return wid

    def get_work(self, wid: str) -> WorkItem | None:
        """The work item, raw mail opened; None if there is no such item."""
        with self._db.read() as conn:
            row = conn.execute(select(work_items).where(work_items.c.id == wid)).first()
        if row is None:
            return None
        raw = self._db.sealer.open(row.raw, record_aad(TABLE, row.id, "raw")) if row.raw is not None else b""
        return WorkItem(
            id=row.id,
            account=row.account,
            folder=row.folder,
            uidvalidity=row.uidvalidity,
            uid=row.uid,
            key=row.source_key,
            raw=raw,
            size=row.size,
            internal_date=from_db_time(row.internal_date) if row.internal_date else None,
            state=row.state,
            attempts=row.attempts,
            created_at=from_db_time(row.created_at),
        )

    def start_work(self, wid: str) -> bool:
        """Count an attempt; False when the item is no longer queued (a redelivered task: nothing to do)."""
        with self._db.write() as conn:
            return (
                conn.execute(
                    update(work_items)
                    .where(work_items.c.id == wid, work_items.c.state == "queued")
                    .values(attempts=work_items.c.attempts + 1, updated_at=to_db_time(utcnow()))
                ).rowcount
                > 0
            )

    def _finish(self, conn: Connection, wid: str) -> Any:
        """The item's row, locked for this transaction (PostgreSQL: two workers cannot both finish it)."""
        item = conn.execute(
            select(
                work_items.c.account,
                work_items.c.folder,
                work_items.c.uidvalidity,
                work_items.c.uid,
                work_items.c.source_key,
                work_items.c.state,
            )
            .where(work_items.c.id == wid)
            .with_for_update()
        ).first()
        if item is None:
            raise StoreError(f"no work item with id {wid} in store {self._db.where}")
        return item

    def record_work_done(
        self, wid: str, messages: Sequence[NewMessage] = (), outgoing: Sequence[NewOutgoing] = ()
    ) -> Outcome:
        """One transaction: messages + outbox + ledger 'done' + work item 'done'; "duplicate" if not queued."""
        with self._db.write() as conn:
            item = self._finish(conn, wid)
            if item.state != "queued":
                return "duplicate"
            for message in messages:
                message_rows.insert(conn, self._db, message)
            for mail in outgoing:
                outbox_rows.insert(conn, self._db, mail)
            conn.execute(
                update(ledger)
                .where(_ledger_row(item), ledger.c.state == "queued")
                .values(state="done", message_id=messages[0].id if messages else None)
            )
            self._close(conn, wid, "done")
        return "recorded"

    def record_work_quarantined(
        self, wid: str, ref: SourceRef, reason: str, raw: bytes, outgoing: Sequence[NewOutgoing] = ()
    ) -> Outcome:
        """One transaction: quarantine row (raw sealed) + ledger 'quarantined' + work item 'quarantined'
        (+ a notice to the owner)."""
        with self._db.write() as conn:
            item = self._finish(conn, wid)
            if item.state != "queued":
                return "duplicate"
            for mail in outgoing:
                outbox_rows.insert(conn, self._db, mail)
            qid = quarantine_rows.insert(conn, self._db, ref, reason, raw)
            conn.execute(
                update(ledger)
                .where(_ledger_row(item), ledger.c.state == "queued")
                .values(state="quarantined", quarantine_id=qid)
            )
            self._close(conn, wid, "quarantined")
        return "recorded"

    @staticmethod
    def _close(conn: Connection, wid: str, state: str) -> None:
        conn.execute(
            update(work_items)
            .where(work_items.c.id == wid)
            .values(state=state, raw=None, updated_at=to_db_time(utcnow()))
        )

    def claim_stale_work(self, enqueued_before: datetime, limit: int = 100) -> tuple[str, ...]:
        """Queued items last enqueued before the given time, marked enqueued now (the caller enqueues them)."""
        now = to_db_time(utcnow())
        with self._db.write() as conn:
            ids = (
                conn.execute(
                    select(work_items.c.id)
                    .where(work_items.c.state == "queued", work_items.c.enqueued_at < to_db_time(enqueued_before))
                    .order_by(work_items.c.enqueued_at)
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            if ids:
                conn.execute(update(work_items).where(work_items.c.id.in_(ids)).values(enqueued_at=now))
        return tuple(str(i) for i in ids)

    def work_counts(self) -> dict[str, int]:
        """Work items by state (for health checks, benchmarks and tests)."""
        query = select(work_items.c.state, func.count()).group_by(work_items.c.state)
        with self._db.read() as conn:
            return {str(state): int(n) for state, n in conn.execute(query).all()}

    def record_once(
        self, key: str, messages: Sequence[NewMessage] = (), outgoing: Sequence[NewOutgoing] = ()
    ) -> Outcome:
        """Messages and mails under an idempotency key (a scheduled summary's slot): "duplicate" if done before."""
        try:
            with self._db.write() as conn:
                if conn.execute(select(done_keys.c.key).where(done_keys.c.key == key)).first() is not None:
                    return "duplicate"
                conn.execute(done_keys.insert().values(key=key, created_at=to_db_time(utcnow())))
                for message in messages:
                    message_rows.insert(conn, self._db, message)
                for mail in outgoing:
                    outbox_rows.insert(conn, self._db, mail)
        except IntegrityError as exc:
            with self._db.read() as conn:
                if conn.execute(select(done_keys.c.key).where(done_keys.c.key == key)).first() is not None:
                    return "duplicate"
            raise StoreError(
                f"store {self._db.where}: recording {key} failed ({exc.orig}); nothing was recorded"
            ) from exc
        return "recorded"
