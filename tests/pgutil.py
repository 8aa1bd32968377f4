"""PostgreSQL and RabbitMQ on 127.0.0.1 for the store and scale-out tests: throwaway databases, reachability.

The services are the machine's own (scripts/services.sh installs and starts them from Debian packages). A test
that needs one skips when it is not running, unless MAILVOICE_REQUIRE_SERVICES=1 (scripts/test.sh, CI) makes
that a failure.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get("MAILVOICE_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BROKER_URL = os.environ.get("MAILVOICE_TEST_BROKER", "amqp://guest@127.0.0.1:5672//")
BROKER_PASSWORD = os.environ.get("MAILVOICE_TEST_BROKER_PASSWORD", "guest")
STORE_TABLES = ("messages", "outbox", "quarantine", "ledger", "cursors", "work_items", "done_keys", "audit")


def reachable(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def need(port: int, what: str) -> None:
    """Skip (or fail under MAILVOICE_REQUIRE_SERVICES=1) when a service is not listening."""
    if reachable(port):
        return
    message = f"{what} is not running on 127.0.0.1:{port}: run scripts/services.sh"
    if os.environ.get("MAILVOICE_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def create_database() -> str:
    """A new empty database; returns its SQLAlchemy URL."""
    name = f"mailvoice_test_{secrets.token_hex(6)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def truncate_all(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            present = [
                t for t in STORE_TABLES if conn.execute(text("SELECT to_regclass(:t)"), {"t": t}).scalar() is not None
            ]
            if present:
                conn.execute(text(f"TRUNCATE {', '.join(present)} CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """One throwaway database for the test session, dropped at its end."""
    need(5432, "PostgreSQL")
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def pg_url(pg_session_url: str) -> str:
    """The session database, emptied before each test (the schema stays)."""
    truncate_all(pg_session_url)
    return pg_session_url


@pytest.fixture
def pg_fresh_url() -> Iterator[str]:
    """A database of its own for one test (the scale-out clusters), dropped after it."""
    need(5432, "PostgreSQL")
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)
