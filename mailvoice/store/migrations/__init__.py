"""Alembic migrations of the store schema, shipped in the package; PostgreSQL runs them at Store.open.

SQLite (the embedded default) keeps creating missing tables at open, as before; these migrations are the
PostgreSQL path, where many processes share one database. Store.open runs `upgrade` under an advisory lock, so
workers starting together migrate once. To migrate as a separate deploy step instead:
``python -m mailvoice.store.migrations postgresql+psycopg://...``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

HEAD = "0003"
"""The newest revision in versions/ (a test checks that it is alembic's head)."""
FIRST = "0001"
_MIGRATE_LOCK = 0x6D61696C766F6963  # "mailvoic": serialises concurrent upgrades across processes


def _config(conn: Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    cfg.attributes["connection"] = conn
    return cfg


def current(conn: Connection) -> str | None:
    """The revision the database is at, or None before the first migration."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return str(value) if value is not None else None


def upgrade(engine: Engine) -> str | None:
    """Bring the database to HEAD (a no-op when it is there); returns the revision it was at before."""
    from alembic import command

    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATE_LOCK})
        conn.commit()
        try:
            before = current(conn)
            conn.commit()
            if before == HEAD:
                return before
            cfg = _config(conn)
            if before is None and inspect(conn).has_table("messages"):
                command.stamp(cfg, FIRST)  # made by create_all before migrations existed: revision 1 tables
                before = FIRST
            command.upgrade(cfg, "head")
            conn.commit()
            log.info("store schema migrated from %s to %s", before or "empty", HEAD)
            return before
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATE_LOCK})
            conn.commit()
