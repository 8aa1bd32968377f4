"""The ledger of source items already handled (done or quarantined) and the per-folder poll cursor."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from mailvoice.errors import StoreError
from mailvoice.store.db import Db, to_db_time
from mailvoice.store.records import Cursor, LedgerState, SourceRef, utcnow
from mailvoice.store.schema import cursors, ledger


def known(conn: Connection, ref: SourceRef) -> bool:
    """True if the ledger has this item, by its source identity or by Message-ID plus content."""
    if ref.uid is not None:
        same_place = and_(
            ledger.c.folder == ref.folder, ledger.c.uidvalidity == ref.uidvalidity, ledger.c.uid == ref.uid
        )
    else:
        same_place = and_(ledger.c.folder == ref.folder, ledger.c.source_key == ref.key)
    same_content = and_(ledger.c.message_id_hash == ref.message_id_hash, ledger.c.content_hash == ref.content_hash)
    query = select(ledger.c.id).where(ledger.c.account == ref.account, or_(same_place, same_content)).limit(1)
    return conn.execute(query).first() is not None


def row(
    ref: SourceRef, state: LedgerState, *, message_id: str | None = None, quarantine_id: str | None = None
) -> dict[str, object]:
    """The ledger row of one item, ready to insert."""
    return {
        "account": ref.account,
        "folder": ref.folder,
        "uidvalidity": ref.uidvalidity,
        "uid": ref.uid,
        "source_key": ref.key,
        "message_id_hash": ref.message_id_hash,
        "content_hash": ref.content_hash,
        "state": state,
        "message_id": message_id,
        "quarantine_id": quarantine_id,
        "created_at": to_db_time(utcnow()),
    }


def insert(
    conn: Connection,
    ref: SourceRef,
    state: LedgerState,
    *,
    message_id: str | None = None,
    quarantine_id: str | None = None,
) -> None:
    """Add the ledger row (inside the caller's transaction); unique constraints catch a concurrent twin."""
    conn.execute(ledger.insert().values(**row(ref, state, message_id=message_id, quarantine_id=quarantine_id)))


def _place(ref: SourceRef) -> tuple[object, ...]:
    return (ref.folder, ref.uidvalidity, ref.uid) if ref.uid is not None else (ref.folder, ref.key)


def known_many(conn: Connection, refs: Sequence[SourceRef]) -> list[bool]:
    """known() for each ref, with one query per account; a ref matching an earlier one in the list (same place,
    or same Message-ID and content) counts as known too: the batch records only the first."""
    found: dict[str, tuple[set[tuple[object, ...]], set[tuple[str, str]]]] = {}
    for account in {r.account for r in refs}:
        mine = [r for r in refs if r.account == account]
        uids = [r.uid for r in mine if r.uid is not None]
        keys = [r.key for r in mine if r.uid is None and r.key is not None]
        query = select(
            ledger.c.folder,
            ledger.c.uidvalidity,
            ledger.c.uid,
            ledger.c.source_key,
            ledger.c.message_id_hash,
            ledger.c.content_hash,
        ).where(
            ledger.c.account == account,
            or_(
                ledger.c.uid.in_(uids),
                ledger.c.source_key.in_(keys),
                ledger.c.message_id_hash.in_([r.message_id_hash for r in mine]),
            ),
        )
        places: set[tuple[object, ...]] = set()
        contents: set[tuple[str, str]] = set()
        for f, v, u, k, m, c in conn.execute(query):
            places.add((f, v, u) if u is not None else (f, k))
            contents.add((m, c))
        found[account] = (places, contents)
    out = []
    for r in refs:
        places, contents = found[r.account]
        content = (r.message_id_hash, r.content_hash)
        out.append(_place(r) in places or content in contents)
        places.add(_place(r))
        contents.add(content)
    return out


class LedgerQueries:
    """Store methods the poller asks before fetching or processing an item."""

    _db: Db

    def seen(self, account: str, folder: str, uidvalidity: int, uid: int) -> bool:
        """True if this IMAP item (UIDVALIDITY + UID) was already done or quarantined."""
        query = (
            select(ledger.c.id)
            .where(
                ledger.c.account == account,
                ledger.c.folder == folder,
                ledger.c.uidvalidity == uidvalidity,
                ledger.c.uid == uid,
            )
            .limit(1)
        )
        with self._db.read() as conn:
            return conn.execute(query).first() is not None

    def seen_uids(self, account: str, folder: str, uidvalidity: int, uids: Sequence[int]) -> frozenset[int]:
        """The UIDs among ``uids`` already done or quarantined: one query for a whole fetched batch."""
        if not uids:
            return frozenset()
        query = select(ledger.c.uid).where(
            ledger.c.account == account,
            ledger.c.folder == folder,
            ledger.c.uidvalidity == uidvalidity,
            ledger.c.uid.in_(list(uids)),
        )
        with self._db.read() as conn:
            return frozenset(int(u) for u in conn.execute(query).scalars())

    def seen_key(self, account: str, folder: str, key: str) -> bool:
        """True if this Maildir item was already done or quarantined."""
        query = (
            select(ledger.c.id)
            .where(ledger.c.account == account, ledger.c.folder == folder, ledger.c.source_key == key)
            .limit(1)
        )
        with self._db.read() as conn:
            return conn.execute(query).first() is not None

    def seen_content(self, account: str, message_id_hash: str, content_hash: str) -> bool:
        """True if the same mail was handled under another UID (renumbered mailbox, new UIDVALIDITY, copy)."""
        query = (
            select(ledger.c.id)
            .where(
                ledger.c.account == account,
                ledger.c.message_id_hash == message_id_hash,
                ledger.c.content_hash == content_hash,
            )
            .limit(1)
        )
        with self._db.read() as conn:
            return conn.execute(query).first() is not None

    def seen_ref(self, ref: SourceRef) -> bool:
        """True if the item is known by either identity."""
        with self._db.read() as conn:
            return known(conn, ref)

    def max_uid(self, account: str, folder: str, uidvalidity: int) -> int | None:
        """The highest UID in the ledger for this folder and UIDVALIDITY, or None."""
        query = select(func.max(ledger.c.uid)).where(
            ledger.c.account == account, ledger.c.folder == folder, ledger.c.uidvalidity == uidvalidity
        )
        with self._db.read() as conn:
            value = conn.execute(query).scalar()
        return int(value) if value is not None else None

    def get_cursor(self, account: str, folder: str) -> Cursor | None:
        """The folder's poll cursor, or None before the first connection."""
        query = select(cursors).where(cursors.c.account == account, cursors.c.folder == folder)
        with self._db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return Cursor(
            account=row.account,
            folder=row.folder,
            uidvalidity=row.uidvalidity,
            last_uid=row.last_uid,
            baseline=row.baseline,
        )

    def save_cursor(self, cursor: Cursor) -> None:
        """Insert or replace the folder's poll cursor."""
        values = {
            "uidvalidity": cursor.uidvalidity,
            "last_uid": cursor.last_uid,
            "baseline": cursor.baseline,
            "updated_at": to_db_time(utcnow()),
        }
        where = (cursors.c.account == cursor.account, cursors.c.folder == cursor.folder)
        # Portable upsert: a concurrent insert between our UPDATE and INSERT gets one retry.
        for _ in range(2):
            try:
                with self._db.write() as conn:
                    if conn.execute(update(cursors).where(*where).values(**values)).rowcount:
                        return
                    conn.execute(cursors.insert().values(account=cursor.account, folder=cursor.folder, **values))
                    return
            except IntegrityError:
                continue
        raise StoreError(f"store {self._db.where}: cursor {cursor.account}/{cursor.folder} kept conflicting")
