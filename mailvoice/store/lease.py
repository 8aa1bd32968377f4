"""A cluster-wide lease on a name: one IMAP session per mailbox, one outbox sender, at a time.

PostgreSQL: a session-level advisory lock on a dedicated connection. It lives exactly as long as that database
session: released on exit, and by the server when the holder dies (its socket closes; a holder cut off by the
network is dropped by the server's TCP keepalive, set per session in db.make_engine, within about a minute).
There is no time-to-live to outrun: a slow poll never loses its lease to a second poller.
SQLite (one machine): an flock on a file under the lock directory; the kernel drops it when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from mailvoice.errors import StoreError
from mailvoice.store.db import Db

log = logging.getLogger(__name__)


def lease_key(name: str) -> int:
    """The advisory lock key for a name: a signed 64-bit integer from its hash."""
    return int.from_bytes(hashlib.sha256(f"mailvoice-lease:{name}".encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _pg_lease(db: Db, name: str) -> Iterator[bool]:
    key = lease_key(name)
    try:
        conn = db.engine.connect()
    except SQLAlchemyError as exc:
        raise StoreError(f"store {db.where}: cannot take lease {name!r}: {exc}") from exc
    try:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        if not got:
            yield False
            return
        try:
            yield True
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
            except SQLAlchemyError:
                conn.invalidate()  # never hand a connection that may still hold the lock back to the pool
    finally:
        conn.close()


@contextlib.contextmanager
def _file_lease(lock_dir: Path, name: str) -> Iterator[bool]:
    lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = lock_dir / f"{hashlib.sha256(name.encode()).hexdigest()[:24]}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def try_lease(db: Db, name: str, lock_dir: Path) -> Iterator[bool]:
    """Yield True while holding the lease on name, False (at once, without waiting) if another holder has it."""
    if db.engine.dialect.name == "postgresql":
        with _pg_lease(db, name) as got:
            yield got
    else:
        with _file_lease(lock_dir, name) as got:
            yield got
