"""The tables, in portable SQLAlchemy Core (SQLite and PostgreSQL); secrets only in sealed columns.

A change here needs a migration in mailvoice/store/migrations/versions/ (PostgreSQL runs them; SQLite creates
missing tables at open).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

SCHEMA_VERSION = 1

metadata = MetaData()

_ID = 32
_NAME = 255
_HASH = 64
_KEY_ID = 64


def _ts(name: str, nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("account", String(_NAME), nullable=False),
    _ts("created_at"),
    Column("state", String(16), nullable=False),
    Column("duration", Float),
    Column("language", String(16)),
    Column("key_id", String(_KEY_ID), nullable=False),
    Column("payload", LargeBinary, nullable=False),  # sealed JSON of MessageContent
    Column("audio", LargeBinary),
    Column("audio_size", BigInteger),
    Index("ix_messages_kind_created", "kind", "created_at"),
    Index("ix_messages_key_id", "key_id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("message_id_header", String(998), nullable=False),
    Column("message_id", String(_ID), ForeignKey("messages.id", ondelete="SET NULL")),
    Column("key_id", String(_KEY_ID), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    _ts("next_attempt_at"),
    Column("last_error", String(300), nullable=False),
    _ts("created_at"),
    _ts("sent_at", nullable=True),
    Index("ix_outbox_due", "state", "next_attempt_at"),
    Index("ix_outbox_key_id", "key_id"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", String(_ID), primary_key=True),
    Column("account", String(_NAME), nullable=False),
    Column("folder", String(_NAME), nullable=False),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uid", BigInteger),
    Column("source_key", String(_NAME)),
    Column("message_id_hash", String(_HASH), nullable=False),
    Column("reason", String(300), nullable=False),
    Column("key_id", String(_KEY_ID), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    Index("ix_quarantine_state", "state", "created_at"),
    Index("ix_quarantine_key_id", "key_id"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account", String(_NAME), nullable=False),
    Column("folder", String(_NAME), nullable=False),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uid", BigInteger),  # NULL for Maildir items: NULLs never collide in a unique constraint
    Column("source_key", String(_NAME)),  # Maildir key; NULL for IMAP items
    Column("message_id_hash", String(_HASH), nullable=False),
    Column("content_hash", String(_HASH), nullable=False),
    Column("state", String(16), nullable=False),
    Column("message_id", String(_ID), ForeignKey("messages.id", ondelete="SET NULL")),
    Column("quarantine_id", String(_ID), ForeignKey("quarantine.id", ondelete="SET NULL")),
    _ts("created_at"),
    UniqueConstraint("account", "folder", "uidvalidity", "uid", name="uq_ledger_uid"),
    UniqueConstraint("account", "folder", "source_key", name="uq_ledger_key"),
    UniqueConstraint("account", "message_id_hash", "content_hash", name="uq_ledger_content"),
)

cursors = Table(
    "cursors",
    metadata,
    Column("account", String(_NAME), primary_key=True),
    Column("folder", String(_NAME), primary_key=True),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("last_uid", BigInteger, nullable=False),
    Column("baseline", Float, nullable=False),
    _ts("updated_at"),
)

work_items = Table(
    "work_items",
    metadata,
    # A source item the scaled-out poller took in and acknowledged; a worker processes it by id (mailvoice.scale).
    Column("id", String(_ID), primary_key=True),
    Column("account", String(_NAME), nullable=False),
    Column("folder", String(_NAME), nullable=False),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uid", BigInteger),
    Column("source_key", String(_NAME)),
    Column("key_id", String(_KEY_ID), nullable=False),
    Column("raw", LargeBinary),  # sealed raw mail; NULL once done (the messages hold what is kept)
    Column("size", BigInteger, nullable=False),
    Column("internal_date", DateTime(timezone=True)),
    Column("state", String(16), nullable=False),  # queued -> done | quarantined
    Column("attempts", Integer, nullable=False),
    _ts("created_at"),
    _ts("enqueued_at"),
    _ts("updated_at"),
    Index("ix_work_items_state", "state", "enqueued_at"),
    Index("ix_work_items_key_id", "key_id"),
)

done_keys = Table(
    "done_keys",
    metadata,
    # Effects without a source item that must happen once (a scheduled summary per account and slot).
    Column("key", String(_NAME), primary_key=True),
    _ts("created_at"),
)

audit = Table(
    "audit",
    metadata,
    # Append-only and hash-chained (mailvoice.store.audit): references only, never content.
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    _ts("at"),
    Column("actor", String(_NAME), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", String(_NAME), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("prev", String(_HASH), nullable=False),
    Column("hash", String(_HASH), nullable=False),
    Index("ix_audit_at", "at"),
    Index("ix_audit_action_at", "action", "at"),
    sqlite_autoincrement=True,  # ids are never reused, so a removed last record leaves a gap behind
)

SEALED: dict[str, tuple[Table, tuple[str, ...]]] = {
    "messages": (messages, ("payload", "audio")),
    "outbox": (outbox, ("raw", "envelope")),
    "quarantine": (quarantine, ("raw",)),
    "work_items": (work_items, ("raw",)),
}
"""Every sealed column, by table; each row's columns share its key_id (what rotation re-seals)."""
