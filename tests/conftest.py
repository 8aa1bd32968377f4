"""Shared fixtures, grouped by the part they serve. Server implementations live in tests/servers.py."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import SMTP_PASSWORD, DovecotServer, MailUser, SmtpServer, make_cert

# ------------------------------------------------------------------------------------------- mail servers


@pytest.fixture(scope="session")
def tls_cert() -> Iterator[tuple[Path, Path]]:
    """(cert.pem, key.pem): a self-signed localhost / 127.0.0.1 certificate; cert.pem is also the test CA."""
    directory = Path(tempfile.mkdtemp(prefix="mailvoice-tls-"))
    try:
        yield make_cert(directory)
    finally:
        for f in directory.iterdir():
            f.unlink()
        directory.rmdir()


@pytest.fixture(scope="session")
def dovecot(tls_cert: tuple[Path, Path]) -> Iterator[DovecotServer]:
    """One private Dovecot per session (IMAP+STARTTLS, IMAPS, LMTP on free 127.0.0.1 ports)."""
    server = DovecotServer(*tls_cert)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def mail_user(dovecot: DovecotServer, tls_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> MailUser:
    """A fresh mailbox per test; its password is in an environment variable set for this test only."""
    name = f"u{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    env = f"MAILVOICE_TEST_PW_{name.upper()}"
    monkeypatch.setenv(env, password)
    dovecot.add_user(name, password)
    return MailUser(dovecot, name, password, env, tls_cert[0])


@pytest.fixture
def smtp_server(tls_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """aiosmtpd with STARTTLS + AUTH required; `.handler.mode` switches it to 4xx / 5xx / drop."""
    monkeypatch.setenv("MAILVOICE_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    server = SmtpServer(*tls_cert)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def plain_smtp_server(tls_cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    """aiosmtpd that offers no STARTTLS and no AUTH (to prove we never fall back to plaintext)."""
    server = SmtpServer(*tls_cert, tls="none")
    server.start()
    try:
        yield server
    finally:
        server.stop()
