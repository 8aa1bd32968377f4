"""Quarantine: source items that failed, with their reason and a sealed copy of the raw mail to re-run."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Row, select, update

from mailvoice.crypto import record_aad
from mailvoice.store.db import Db, from_db_time, resolve_id, to_db_time
from mailvoice.store.outbox import short_error
from mailvoice.store.records import Quarantined, QuarantineState, SourceRef, new_id, utcnow
from mailvoice.store.schema import quarantine

TABLE = "quarantine"


def insert(conn: Connection, db: Db, ref: SourceRef, reason: str, raw: bytes) -> str:
    """Seal and insert a quarantine row (inside the caller's transaction); returns its id."""
    qid = new_id()
    now = to_db_time(utcnow())
    conn.execute(
        quarantine.insert().values(
            id=qid,
            account=ref.account,
            folder=ref.folder,
            uidvalidity=ref.uidvalidity,
            uid=ref.uid,
            source_key=ref.key,
            message_id_hash=ref.message_id_hash,
            reason=short_error(reason),
            key_id=db.sealer.active_key_id,
            raw=db.sealer.seal(raw, record_aad(TABLE, qid, "raw")),
            size=len(raw),
            state="open",
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    return qid


def set_state(conn: Connection, qid: str, state: QuarantineState, **values: Any) -> int:
    """Move a quarantine row to state (inside the caller's transaction); returns rows changed."""
    return conn.execute(
        update(quarantine).where(quarantine.c.id == qid).values(state=state, updated_at=to_db_time(utcnow()), **values)
    ).rowcount


class QuarantineQueries:
    """Store methods behind `mailvoice quarantine list/show/retry/resolve`."""

    _db: Db

    def _open_quarantined(self, row: Row[Any]) -> Quarantined:
        return Quarantined(
            id=row.id,
            account=row.account,
            folder=row.folder,
            uidvalidity=row.uidvalidity,
            uid=row.uid,
            key=row.source_key,
            message_id_hash=row.message_id_hash,
            reason=row.reason,
            raw=self._db.sealer.open(row.raw, record_aad(TABLE, row.id, "raw")),
            state=cast(QuarantineState, row.state),
            attempts=row.attempts,
            created_at=from_db_time(row.created_at),
            updated_at=from_db_time(row.updated_at),
            key_id=row.key_id,
        )

    def list_quarantine(
        self, state: QuarantineState | None = "open", *, account: str | None = None, limit: int = 50
    ) -> tuple[Quarantined, ...]:
        """Quarantined items, newest first (open ones by default; None for all)."""
        query = select(quarantine).order_by(quarantine.c.created_at.desc(), quarantine.c.id).limit(limit)
        if state is not None:
            query = query.where(quarantine.c.state == state)
        if account is not None:
            query = query.where(quarantine.c.account == account)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return tuple(self._open_quarantined(row) for row in rows)

    def get_quarantined(self, ident: str) -> Quarantined:
        """One quarantined item by id or unique id prefix."""
        with self._db.read() as conn:
            qid = resolve_id(conn, quarantine, ident, "quarantined item", self._db.where)
            row = conn.execute(select(quarantine).where(quarantine.c.id == qid)).one()
        return self._open_quarantined(row)

    def quarantine_again(self, qid: str, reason: str) -> None:
        """A retry failed too: count it, keep it open with the new reason."""
        with self._db.write() as conn:
            set_state(conn, qid, "open", reason=short_error(reason), attempts=quarantine.c.attempts + 1)

    def resolve_quarantined(self, qid: str) -> None:
        """The owner dismissed it: it stays in the ledger, never re-run."""
        with self._db.write() as conn:
            set_state(conn, qid, "resolved")
