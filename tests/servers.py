"""Real mail servers for the tests: a private Dovecot (IMAP, IMAPS, LMTP) and an in-process aiosmtpd.

Both listen on 127.0.0.1 only, on ports chosen free at start. Dovecot runs as a child tied to the pytest
process (PR_SET_PDEATHSIG plus atexit), from a fresh directory under the system temp dir (see
/work/shared/guides/mailservers.md for why each setting is there).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from mailvoice.config import AccountSettings, SmtpSettings
from mailvoice.devservers import (  # the Dovecot launcher is shared with `mailvoice bench mail`
    APT_HINT,
    MAIL_USER,
    DovecotServer,
    free_port,
    make_cert,
    require_programs,
    wait_for_greeting,
)

__all__ = ["APT_HINT", "MAIL_USER", "DovecotServer", "free_port", "make_cert", "require_programs", "wait_for_greeting"]


@dataclass
class MailUser:
    """A fresh mailbox on the session's Dovecot: one per test."""

    server: DovecotServer
    user: str
    password: str
    password_env: str
    cafile: Path
    host: str = "127.0.0.1"

    @property
    def imap_port(self) -> int:
        return self.server.imap_port

    @property
    def imaps_port(self) -> int:
        return self.server.imaps_port

    @property
    def lmtp_port(self) -> int:
        return self.server.lmtp_port

    def client(self) -> Any:
        """A separate, logged-in IMAPClient over IMAPS (the test's "other mail client")."""
        from imapclient import IMAPClient

        ctx = ssl.create_default_context(cafile=str(self.cafile))
        client = IMAPClient(self.host, self.imaps_port, ssl=True, ssl_context=ctx, timeout=10)
        client.login(self.user, self.password)
        return client

    def append(
        self, raw: bytes, folder: str = "INBOX", flags: tuple[bytes, ...] = (), when: datetime | None = None
    ) -> int:
        """IMAP APPEND from another connection (INTERNALDATE `when`, default now); returns the new UID."""
        client = self.client()
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            resp = client.append(folder, raw, flags=flags, msg_time=when)
        finally:
            client.logout()
        # b'[APPENDUID <validity> <uid>] Append completed.'
        parts = resp.split(b"]")[0].split()
        return int(parts[2])

    def doveadm(self, command: str, *args: str) -> str:
        """`doveadm <command> -u <this user> <args>`, e.g. doveadm("mailbox update", "--uid-validity", "7", "INBOX")."""
        return self.server.doveadm(*command.split(), "-u", self.user, *args)

    def sessions(self) -> int:
        """Live IMAP sessions of this user (doveadm who)."""
        out = self.server.doveadm("who", "-1", self.user)
        return sum(
            1 for line in out.splitlines()[1:] if line.split() and line.split()[0] == self.user and "imap" in line
        )

    def uidlist_path(self, folder: str = "INBOX") -> Path:
        return self.server.maildir(self.user, folder) / "dovecot-uidlist"

    def account(self, **overrides: Any) -> AccountSettings:
        """AccountSettings for this user over IMAPS with the test CA; override any field."""
        base = AccountSettings(
            name=f"acct-{self.user}",
            host=self.host,
            username=self.user,
            port=self.imaps_port,
            password_env=self.password_env,
            tls="implicit",
            ca_file=self.cafile,
            idle=True,
            poll_interval=1.0,
            timeout=10.0,
        )
        if overrides.get("tls") in ("starttls", "none") and "port" not in overrides:
            overrides["port"] = self.imap_port
        return replace(base, **overrides)


# ---------------------------------------------------------------------------------------------- SMTP

SMTP_USER = "mailvoice"
SMTP_PASSWORD = "smtp-test-password"

SmtpMode = Literal["accept", "tempfail", "permfail", "drop"]


class _DropLoginDataNotice(logging.Filter):
    """aiosmtpd logs a deprecation notice on every successful AUTH (aio-libs/aiosmtpd#347): noise only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropLoginDataNotice())


@dataclass(frozen=True)
class Received:
    """One message the test SMTP server accepted."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes
    authenticated: bool
    tls: bool


@dataclass
class SmtpHandler:
    """aiosmtpd handler: stores what it accepts, or fails on purpose per `mode`."""

    mode: SmtpMode = "accept"
    refuse: set[str] = field(default_factory=set)
    """Recipients answered 550 at RCPT (for partial refusals)."""
    messages: list[Received] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.mode == "tempfail":
            return "451 4.3.0 try again later"
        if self.mode == "permfail":
            return "554 5.7.1 rejected by policy"
        if self.mode == "drop":
            server.transport.abort()
            return "421 4.3.0 closing"  # never reaches the client: the transport is gone
        tls = session.ssl is not None or server.transport.get_extra_info("sslcontext") is not None
        self.messages.append(
            Received(
                sender=envelope.mail_from,
                recipients=tuple(envelope.rcpt_tos),
                raw=bytes(envelope.original_content),
                authenticated=bool(session.authenticated),
                tls=tls,
            )
        )
        return "250 2.0.0 queued"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


class SmtpServer:
    """aiosmtpd on 127.0.0.1; can stop and restart on its port.

    tls: "starttls" (STARTTLS and AUTH required), "implicit" (TLS from the first byte, AUTH required), or "none"
    (no STARTTLS, no AUTH: the server a downgrade would talk to).
    """

    host = "127.0.0.1"

    def __init__(self, cert: Path, key: Path, *, tls: Literal["starttls", "implicit", "none"] = "starttls") -> None:
        self.cert, self.key, self.tls = cert, key, tls
        self.handler = SmtpHandler()
        self.port = free_port()
        self._controller: Any = None

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        kwargs: dict[str, Any] = {}
        if self.tls != "none":
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.cert, self.key)
            kwargs = {"authenticator": _authenticator}
            if self.tls == "starttls":
                kwargs.update(tls_context=ctx, require_starttls=True, auth_require_tls=True, auth_required=True)
            else:
                # aiosmtpd only counts STARTTLS as TLS for AUTH; this connection is TLS from the first byte.
                kwargs.update(ssl_context=ctx, auth_require_tls=False, auth_required=False)
        self._controller = Controller(
            self.handler, hostname=self.host, port=self.port, server_hostname="localhost", ready_timeout=10, **kwargs
        )
        self._controller.start()

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def settings(self, **overrides: Any) -> SmtpSettings:
        """SmtpSettings for this server (STARTTLS with the test CA and the fixed credentials)."""
        base = SmtpSettings(
            host=self.host,
            port=self.port,
            tls="implicit" if self.tls == "implicit" else "starttls",
            ca_file=self.cert,
            username=SMTP_USER if self.tls != "none" else "",
            password_env="MAILVOICE_TEST_SMTP_PASSWORD",
            sender="bot@example.org",
            timeout=5.0,
        )
        return replace(base, **overrides)
