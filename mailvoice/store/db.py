"""The database connection: durable, private SQLite settings (PostgreSQL: keepalives), write transactions."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from mailvoice.crypto import Sealer
from mailvoice.errors import StoreError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0

# WAL: readers do not block the writer. synchronous=FULL: a commit is on disk before it returns (we
# acknowledge mail at the IMAP server only after it). secure_delete: freed pages are zeroed.
# temp_store=MEMORY: sorts and temporary tables never reach $TMPDIR.
_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA secure_delete=ON",
    "PRAGMA foreign_keys=ON",
    "PRAGMA temp_store=MEMORY",
    f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}",
)


_PG_OPTIONS = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"


def to_db_time(value: datetime) -> datetime:
    """UTC, so times compare the same on SQLite (stored as text) and PostgreSQL."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the store only takes timezone-aware times")
    return value.astimezone(UTC)


def from_db_time(value: datetime) -> datetime:
    """Aware UTC again (SQLite gives back naive values)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _private_sqlite_file(path: Path) -> None:
    """Create the DB file 0600 (its -wal and -shm inherit the mode); a directory we create is 0700."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = stat.S_IMODE(os.stat(candidate).st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            log.warning("store file %s had mode %04o; setting 0600", candidate, mode)
            os.chmod(candidate, 0o600)


def make_engine(url: str) -> Engine:
    """An engine for url; for SQLite, the file made private and every connection set up for durability."""
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    database = parsed.database or ""
    if is_sqlite and database and database != ":memory:" and not database.startswith("file:"):
        try:
            _private_sqlite_file(Path(database))
        except OSError as exc:
            raise StoreError(
                f"store database {parsed.database} cannot be created ({exc.strerror}); "
                "check general.data_dir / general.store_url"
            ) from exc
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}} if is_sqlite else {}
    if parsed.get_backend_name() == "postgresql":
        # A dead or cut-off peer ends its session within about a minute (and with it its advisory-lock lease).
        kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10, "options": _PG_OPTIONS}}
    engine = create_engine(url, **kwargs)
    if is_sqlite:
        _setup_sqlite(engine)
    return engine


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (the driver's implicit one is too late)
        cur = dbapi_conn.cursor()
        try:
            for pragma in _PRAGMAS:
                cur.execute(pragma)
            mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("store: SQLite refused WAL mode (journal_mode=%s); network filesystem?", mode)
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the lock up front: upgrading a read transaction later can fail at once with BUSY.
        immediate = conn.get_execution_options().get("mailvoice_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Db:
    """Engine plus sealer: what every table module needs."""

    def __init__(self, engine: Engine, sealer: Sealer, *, keep_audio: bool = True) -> None:
        self.engine = engine
        self.sealer = sealer
        self.keep_audio = keep_audio

    @property
    def where(self) -> str:
        """The database, for error messages (no password)."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction, committed durably on exit; IntegrityError passes through for the caller."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(mailvoice_write=True)
                with conn.begin():
                    yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise StoreError(
                f"store {self.where}: write failed ({cause}); nothing was recorded{_hint(str(cause))}"
            ) from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read transaction (a consistent snapshot)."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"store {self.where}: read failed: {exc}") from exc


def _hint(cause: str) -> str:
    """What to do about the two write failures an operator can fix (SQLite's wording; PostgreSQL's is similar)."""
    low = cause.lower()
    if "locked" in low or "busy" in low:
        return f"; another process holds the write lock (waited {BUSY_TIMEOUT_S:g} s): the item is retried later"
    if "disk is full" in low or "no space" in low:
        return "; free space on the disk that holds the store: the item is retried later"
    return ""


_HEX = frozenset("0123456789abcdef")
MIN_PREFIX = 6


def resolve_id(conn: Connection, table: Table, ident: str, what: str, where: str) -> str:
    """A row id from a full id or a unique prefix of at least MIN_PREFIX hex digits (what the CLI shows)."""
    ident = ident.strip().lower()
    if len(ident) < MIN_PREFIX or not set(ident) <= _HEX:
        raise StoreError(
            f"{what} id {ident!r} is not valid: give the id or at least {MIN_PREFIX} of its first hex digits"
        )
    query = select(table.c.id).where(table.c.id.startswith(ident, autoescape=True)).limit(2)
    found = conn.execute(query).all()
    if not found:
        raise StoreError(f"no {what} with id {ident} in store {where}")
    if len(found) > 1:
        raise StoreError(f"{what} id {ident} is ambiguous in store {where}: give more digits")
    return str(found[0].id)
