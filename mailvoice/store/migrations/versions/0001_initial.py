"""The schema as of mailvoice 0.1 (schema_version 1): messages, outbox, quarantine, ledger, cursors.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table("schema_version", sa.Column("version", sa.Integer, primary_key=True, autoincrement=False))
    op.create_table(
        "messages",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account", sa.String(255), nullable=False),
        _ts("created_at"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("duration", sa.Float),
        sa.Column("language", sa.String(16)),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("audio", sa.LargeBinary),
        sa.Column("audio_size", sa.BigInteger),
    )
    op.create_index("ix_messages_kind_created", "messages", ["kind", "created_at"])
    op.create_index("ix_messages_key_id", "messages", ["key_id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("message_id_header", sa.String(998), nullable=False),
        sa.Column("message_id", sa.String(32), sa.ForeignKey("messages.id", ondelete="SET NULL")),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _ts("next_attempt_at"),
        sa.Column("last_error", sa.String(300), nullable=False),
        _ts("created_at"),
        _ts("sent_at", nullable=True),
    )
    op.create_index("ix_outbox_due", "outbox", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_key_id", "outbox", ["key_id"])
    op.create_table(
        "quarantine",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("folder", sa.String(255), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("uid", sa.BigInteger),
        sa.Column("source_key", sa.String(255)),
        sa.Column("message_id_hash", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_index("ix_quarantine_state", "quarantine", ["state", "created_at"])
    op.create_index("ix_quarantine_key_id", "quarantine", ["key_id"])
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("folder", sa.String(255), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("uid", sa.BigInteger),
        sa.Column("source_key", sa.String(255)),
        sa.Column("message_id_hash", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(32), sa.ForeignKey("messages.id", ondelete="SET NULL")),
        sa.Column("quarantine_id", sa.String(32), sa.ForeignKey("quarantine.id", ondelete="SET NULL")),
        _ts("created_at"),
        sa.UniqueConstraint("account", "folder", "uidvalidity", "uid", name="uq_ledger_uid"),
        sa.UniqueConstraint("account", "folder", "source_key", name="uq_ledger_key"),
        sa.UniqueConstraint("account", "message_id_hash", "content_hash", name="uq_ledger_content"),
    )
    op.create_table(
        "cursors",
        sa.Column("account", sa.String(255), primary_key=True),
        sa.Column("folder", sa.String(255), primary_key=True),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("last_uid", sa.BigInteger, nullable=False),
        sa.Column("baseline", sa.Float, nullable=False),
        _ts("updated_at"),
    )
    op.bulk_insert(sa.table("schema_version", sa.column("version", sa.Integer)), [{"version": 1}])


def downgrade() -> None:
    for table in ("cursors", "ledger", "quarantine", "outbox", "messages", "schema_version"):
        op.drop_table(table)
