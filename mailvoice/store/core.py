"""The Store: opens the database, and records each handled source item in one durable transaction."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from sqlalchemy import Connection, select, union
from sqlalchemy.exc import IntegrityError

from mailvoice.crypto import Sealer
from mailvoice.errors import StoreError
from mailvoice.store import ledger as ledger_rows
from mailvoice.store import messages as message_rows
from mailvoice.store import outbox as outbox_rows
from mailvoice.store import quarantine as quarantine_rows
from mailvoice.store.audit import AuditQueries
from mailvoice.store.db import Db, make_engine
from mailvoice.store.ledger import LedgerQueries
from mailvoice.store.messages import MessageQueries
from mailvoice.store.outbox import OutboxQueries
from mailvoice.store.quarantine import QuarantineQueries
from mailvoice.store.records import NewMessage, NewOutgoing, Outcome, SourceRef
from mailvoice.store.rotation import reseal_all
from mailvoice.store.schema import SCHEMA_VERSION, SEALED, ledger, metadata, quarantine, schema_version
from mailvoice.store.stats import StatsQueries
from mailvoice.store.work import WorkQueries

log = logging.getLogger(__name__)


def _init_schema(db: Db) -> None:
    if db.engine.dialect.name == "postgresql":
        try:
            from mailvoice.store.migrations import upgrade
        except ImportError as exc:
            raise StoreError(
                f"store {db.where}: PostgreSQL needs the postgres extra: pip install 'mailvoice[postgres]'"
            ) from exc
        upgrade(db.engine)  # Alembic, under an advisory lock: many workers may start at once
    metadata.create_all(db.engine)
    with db.write() as conn:
        found = conn.execute(select(schema_version.c.version)).scalars().all()
        if not found:
            conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
        elif max(found) > SCHEMA_VERSION:
            raise StoreError(
                f"store {db.where} has schema version {max(found)}, newer than this mailvoice "
                f"understands ({SCHEMA_VERSION}): upgrade mailvoice"
            )


class Store(AuditQueries, LedgerQueries, MessageQueries, OutboxQueries, QuarantineQueries, StatsQueries, WorkQueries):
    """The encrypted store; synchronous and thread-safe (call it from a worker thread, not the event loop)."""

    def __init__(self, db: Db) -> None:
        self._db = db

    @classmethod
    def open(cls, url: str, sealer: Sealer, *, keep_audio: bool = True, recover: bool = True) -> Store:
        """Open, creating tables if missing; with recover, mails a crash left 'sending' are pending again.

        PostgreSQL: migrations run first (Alembic); recover is skipped, because a shared database has other
        senders (the scaled-out sender recovers under its cluster lease, `mailvoice run` at its start).
        """
        store = cls(Db(make_engine(url), sealer, keep_audio=keep_audio))
        try:
            _init_schema(store._db)
            shared = store._db.engine.dialect.name == "postgresql"
            if recover and not shared and (n := store.requeue_sending()):
                log.warning("store: %d outgoing mail(s) were mid-send at the last stop; queued again", n)
        except BaseException:
            store.close()
            raise
        return store

    @property
    def backend(self) -> str:
        """The database kind: "sqlite" or "postgresql"."""
        return str(self._db.engine.dialect.name)

    @contextlib.contextmanager
    def lease(self, name: str, lock_dir: Path) -> Iterator[bool]:
        """True while this process holds the cluster-wide lease on name; False at once if another does."""
        from mailvoice.store.lease import try_lease

        with try_lease(self._db, name, lock_dir) as got:
            yield got

    @property
    def sealer(self) -> Sealer:
        """The sealer new records are sealed with."""
        return self._db.sealer

    def use_sealer(self, sealer: Sealer) -> None:
        """Seal from now on with another keyring (after a rotation)."""
        self._db.sealer = sealer

    def close(self) -> None:
        """Close every connection (SQLite checkpoints its WAL)."""
        self._db.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _insert(self, conn: Connection, messages: Sequence[NewMessage], outgoing: Sequence[NewOutgoing]) -> None:
        for message in messages:
            message_rows.insert(conn, self._db, message)
        for mail in outgoing:
            outbox_rows.insert(conn, self._db, mail)

    def record(self, messages: Sequence[NewMessage] = (), outgoing: Sequence[NewOutgoing] = ()) -> None:
        """Store messages and queue mails that come from no source item (CLI send, summary), atomically."""
        try:
            with self._db.write() as conn:
                self._insert(conn, messages, outgoing)
        except IntegrityError as exc:
            raise StoreError(f"store {self._db.where}: record failed ({exc.orig}); nothing was recorded") from exc

    def _record_item(
        self,
        ref: SourceRef,
        what: str,
        messages: Sequence[NewMessage],
        outgoing: Sequence[NewOutgoing],
        quarantine: tuple[str, bytes] | None,
    ) -> Outcome:
        try:
            with self._db.write() as conn:
                if ledger_rows.known(conn, ref):
                    return "duplicate"
                self._insert(conn, messages, outgoing)
                qid = quarantine_rows.insert(conn, self._db, ref, *quarantine) if quarantine else None
                ledger_rows.insert(
                    conn,
                    ref,
                    "quarantined" if quarantine else "done",
                    message_id=messages[0].id if messages else None,
                    quarantine_id=qid,
                )
        except IntegrityError as exc:
            # A concurrent run committed the same item between our check and our insert (PostgreSQL).
            with self._db.read() as conn:
                if ledger_rows.known(conn, ref):
                    return "duplicate"
            item = f"uid {ref.uid}" if ref.uid is not None else f"key {ref.key}"
            raise StoreError(
                f"store {self._db.where}: recording {what} {ref.account}/{ref.folder} {item} "
                f"failed ({exc.orig}); nothing was recorded"
            ) from exc
        return "recorded"

    def record_processed(
        self, ref: SourceRef, messages: Sequence[NewMessage] = (), outgoing: Sequence[NewOutgoing] = ()
    ) -> Outcome:
        """One durable transaction: messages + outbox + ledger row, or nothing; "duplicate" if known."""
        return self._record_item(ref, "processed item", messages, outgoing, None)

    def record_processed_many(
        self, items: Sequence[tuple[SourceRef, Sequence[NewMessage], Sequence[NewOutgoing]]]
    ) -> list[Outcome]:
        """Like record_processed for each item, in one durable transaction (one commit, one fsync, for all).

        Items are checked against the ledger in order inside the transaction, so a twin later in the batch is a
        "duplicate". If the transaction fails on a constraint (a concurrent run), each item is recorded on its own.
        """
        if not items:
            return []
        outcomes: list[Outcome] = []
        try:
            with self._db.write() as conn:
                known = ledger_rows.known_many(conn, [ref for ref, _m, _o in items])
                fresh = [item for item, seen in zip(items, known, strict=True) if not seen]
                message_rows.insert_many(conn, self._db, [m for _r, messages, _o in fresh for m in messages])
                for _ref, _messages, outgoing in fresh:
                    self._insert(conn, (), outgoing)
                if fresh:
                    rows = [
                        ledger_rows.row(ref, "done", message_id=messages[0].id if messages else None)
                        for ref, messages, _o in fresh
                    ]
                    conn.execute(ledger.insert(), rows)
                outcomes = ["duplicate" if seen else "recorded" for seen in known]
        except IntegrityError:
            return [self.record_processed(ref, messages, outgoing) for ref, messages, outgoing in items]
        return outcomes

    def record_quarantined(
        self, ref: SourceRef, reason: str, raw: bytes, outgoing: Sequence[NewOutgoing] = ()
    ) -> Outcome:
        """One durable transaction: quarantine row (raw sealed) + ledger row (+ a notice to the owner);
        "duplicate" if known."""
        return self._record_item(ref, "quarantined item", (), outgoing, (reason, raw))

    def record_retried(
        self, quarantine_id: str, messages: Sequence[NewMessage] = (), outgoing: Sequence[NewOutgoing] = ()
    ) -> Outcome:
        """A quarantined item re-ran fine: its messages and mails, ledger 'done', quarantine 'retried'."""
        try:
            with self._db.write() as conn:
                query = select(quarantine.c.state).where(quarantine.c.id == quarantine_id)
                state = conn.execute(query).scalar()
                if state is None:
                    raise StoreError(f"no quarantined item with id {quarantine_id} in store {self._db.where}")
                if state != "open":
                    return "duplicate"
                self._insert(conn, messages, outgoing)
                conn.execute(
                    ledger.update()
                    .where(ledger.c.quarantine_id == quarantine_id)
                    .values(state="done", message_id=messages[0].id if messages else None)
                )
                quarantine_rows.set_state(conn, quarantine_id, "retried", attempts=quarantine.c.attempts + 1)
        except IntegrityError as exc:
            raise StoreError(
                f"store {self._db.where}: recording the retry of {quarantine_id} failed "
                f"({exc.orig}); nothing was recorded"
            ) from exc
        return "recorded"

    def key_ids_in_use(self) -> frozenset[str]:
        """Every key id some record is sealed with (a key may be retired once it is absent here)."""
        query = union(*(select(table.c.key_id).distinct() for table, _ in SEALED.values()))
        with self._db.read() as conn:
            return frozenset(str(k) for k in conn.execute(query).scalars())

    def reseal(self, batch_size: int = 200) -> int:
        """Re-seal every record not under the active key, in batches; returns how many rows changed."""
        return reseal_all(self._db, batch_size)
