"""Scale-out: work_items (sealed polled mail awaiting a worker) and done_keys (idempotency of scheduled effects).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "work_items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("folder", sa.String(255), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("uid", sa.BigInteger),
        sa.Column("source_key", sa.String(255)),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("raw", sa.LargeBinary),
        sa.Column("size", sa.BigInteger, nullable=False),
        _ts("internal_date", nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _ts("created_at"),
        _ts("enqueued_at"),
        _ts("updated_at"),
    )
    op.create_index("ix_work_items_state", "work_items", ["state", "enqueued_at"])
    op.create_index("ix_work_items_key_id", "work_items", ["key_id"])
    op.create_table("done_keys", sa.Column("key", sa.String(255), primary_key=True), _ts("created_at"))


def downgrade() -> None:
    op.drop_table("done_keys")
    op.drop_table("work_items")
