"""Alembic environment: runs on the connection mailvoice hands over (see migrations.upgrade)."""

from __future__ import annotations

from alembic import context

from mailvoice.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run mailvoice's migrations through mailvoice.store.migrations.upgrade (or its __main__)")
context.configure(connection=connection, target_metadata=metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
