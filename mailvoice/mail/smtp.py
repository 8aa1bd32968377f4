"""Outgoing mail: SMTP with TLS required (aiosmtplib), or local delivery into a Maildir when no SMTP is set.

How failures are classified (DeliveryError.permanent), so the outbox knows whether to retry:
- permanent=True only when the server refused *this message* with a 5xx (MAIL FROM, every RCPT, or DATA), or the
  addresses are unusable: retrying cannot help; the owner is told once.
- permanent=False for everything else: 4xx, connection refused or dropped, timeouts, and also configuration or
  security problems (no STARTTLS offered while TLS is required, certificate not trusted, AUTH refused or not
  offered). Those do not make the message undeliverable: the outbox keeps it and retries with backoff while the
  error text says what to fix; a stripped STARTTLS may also be an attacker on the path, which passes.
- Some recipients refused, others accepted: not an error (the accepted ones have it, a retry would duplicate it);
  the result lists the refusals with their codes, so the caller can retry the 4xx ones alone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailvoice.config import SmtpSettings, is_loopback, read_secret
from mailvoice.errors import ConfigError, DeliveryError

if TYPE_CHECKING:
    import aiosmtplib

log = logging.getLogger(__name__)

_BAD_ADDRESS_CHARS = frozenset("\r\n\0<> \t")


@dataclass(frozen=True)
class Refusal:
    """One recipient the server refused at RCPT."""

    recipient: str
    code: int
    message: str

    @property
    def permanent(self) -> bool:
        return self.code >= 500


@dataclass(frozen=True)
class SendResult:
    """What the server accepted; `refused` is empty on full success."""

    accepted: tuple[str, ...]
    refused: tuple[Refusal, ...] = ()


def _where(settings: SmtpSettings, port: int) -> str:
    return f"SMTP server {settings.host}:{port}"


def _port(settings: SmtpSettings) -> int:
    return settings.port or {"implicit": 465, "starttls": 587, "none": 25}[settings.tls]


def _check_address(address: str, what: str) -> str:
    if not address or any(c in _BAD_ADDRESS_CHARS for c in address):
        raise DeliveryError(
            f"{what} {address!r} is not a usable address (empty, or has spaces, angle brackets or control characters)",
            permanent=True,
        )
    return address


def check_settings(settings: SmtpSettings) -> None:
    """Refuse a configuration that would send in clear or cannot work, naming the setting to change."""
    if not settings.host:
        raise ConfigError("smtp.host is empty: set it, or deliver locally with deliver_to_maildir()")
    if settings.tls == "none":
        if not settings.allow_plaintext:
            raise ConfigError(
                f"{_where(settings, _port(settings))}: smtp.tls = 'none' would send mail (and the "
                "password) in clear; use 'starttls' or 'implicit', or set smtp.allow_plaintext = "
                "true for a loopback host"
            )
        if not is_loopback(settings.host):
            raise ConfigError(
                f"{_where(settings, _port(settings))}: smtp.allow_plaintext is only honoured for a "
                "loopback host (localhost, 127.0.0.1, ::1); use smtp.tls = 'starttls' or 'implicit'"
            )
    if settings.ca_file is not None and not settings.ca_file.is_file():
        raise ConfigError(f"smtp.ca_file {settings.ca_file} does not exist")


async def send(raw: bytes, sender: str, recipients: Sequence[str], settings: SmtpSettings) -> SendResult:
    """Send one message; raises DeliveryError (see the module docstring for `permanent`)."""
    check_settings(settings)
    _check_address(sender, "sender")
    rcpts = [_check_address(r, "recipient") for r in recipients]
    if not rcpts:
        raise DeliveryError("no recipients given", permanent=True)
    where = _where(settings, _port(settings))
    client, password = _client(settings)
    try:
        await client.connect()
        if settings.username:
            await client.login(settings.username, password or "")
        errors, _ = await client.sendmail(sender, rcpts, raw)
    except Exception as exc:
        raise _classify(exc, where, settings) from exc
    finally:
        await _close(client, where)
    refused = tuple(Refusal(r, int(resp.code), str(resp.message)) for r, resp in errors.items())
    accepted = tuple(r for r in rcpts if r not in errors)
    if refused:
        log.warning("%s: accepted for %d recipient(s), refused for %d", where, len(accepted), len(refused))
    else:
        log.info("%s: accepted for %d recipient(s), %d bytes", where, len(accepted), len(raw))
    return SendResult(accepted, refused)


def _client(settings: SmtpSettings) -> tuple[aiosmtplib.SMTP, str | None]:
    """The client with the configured TLS mode and CA (never a silent plaintext fallback), and the password."""
    import aiosmtplib

    port = _port(settings)
    where = _where(settings, port)
    password = (
        read_secret(f"smtp ({where})", settings.password_env, settings.password_file) if settings.username else None
    )
    ctx = (
        ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
        if settings.tls != "none"
        else None
    )
    client = aiosmtplib.SMTP(
        hostname=settings.host,
        port=port,
        timeout=settings.timeout,
        use_tls=settings.tls == "implicit",
        # start_tls=True: fail when STARTTLS is not offered, instead of aiosmtplib's silent plaintext.
        start_tls=settings.tls == "starttls",
        validate_certs=True,
        tls_context=ctx,
    )
    return client, password


async def _close(client: aiosmtplib.SMTP, where: str) -> None:
    protocol = client.protocol
    try:
        if client.is_connected:
            await client.quit()
    except Exception:
        log.debug("%s: QUIT failed; closing", where)
    finally:
        client.close()  # also after a failed connect or STARTTLS: no transport is left open
        await _closed(protocol)


async def check_login(settings: SmtpSettings) -> str:
    """Connect, TLS, and authenticate when a username is set; send nothing. Returns what was verified;
    raises DeliveryError naming the fix (`mailvoice doctor`)."""
    check_settings(settings)
    where = _where(settings, _port(settings))
    client, password = _client(settings)
    try:
        await client.connect()
        tls = "TLS" if settings.tls == "implicit" else "STARTTLS" if settings.tls == "starttls" else "no TLS"
        if settings.username:
            await client.login(settings.username, password or "")
            return f"{where}: {tls}, logged in as {settings.username}"
        return f"{where}: {tls}, no login configured (smtp.username empty)"
    except Exception as exc:
        raise _classify(exc, where, settings) from exc
    finally:
        await _close(client, where)


async def _closed(protocol: object, limit: float = 1.0) -> None:
    """Let the TLS shutdown finish so the socket is really closed (a loop that ends first leaks it)."""
    deadline = time.monotonic() + limit
    # aiosmtplib exposes no close waiter; its protocol drops `transport` in connection_lost.
    while getattr(protocol, "transport", None) is not None and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)


def _classify(exc: Exception, where: str, settings: SmtpSettings) -> DeliveryError:
    """Map aiosmtplib and socket errors to DeliveryError with `permanent` and the SMTP code."""
    import aiosmtplib

    cert = _find_cause(exc, ssl.SSLCertVerificationError)
    if cert is not None:
        ca = f"smtp.ca_file {settings.ca_file}" if settings.ca_file else "the system CAs (smtp.ca_file unset)"
        return DeliveryError(
            f"{where}: TLS certificate verification failed against {ca}: "
            f"{cert.verify_message}; set smtp.ca_file to the CA that signed the server certificate"
        )
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return DeliveryError(
            f"{where}: login as {settings.username!r} refused ({exc.code} {exc.message}); check "
            f"the password in {settings.password_env or settings.password_file}",
            code=exc.code,
        )
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        permanent = bool(codes) and all(c >= 500 for c in codes)
        detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients[:3])
        return DeliveryError(
            f"{where}: every recipient refused ({detail})", permanent=permanent, code=codes[0] if codes else None
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        step = {
            aiosmtplib.SMTPSenderRefused: "MAIL FROM",
            aiosmtplib.SMTPDataError: "DATA",
            aiosmtplib.SMTPHeloError: "EHLO",
        }.get(type(exc), "the dialogue")
        permanent = exc.code >= 500 and not isinstance(exc, aiosmtplib.SMTPHeloError | aiosmtplib.SMTPConnectError)
        return DeliveryError(
            f"{where}: refused at {step}: {exc.code} {exc.message}", permanent=permanent, code=exc.code
        )
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return DeliveryError(f"{where}: timed out after {settings.timeout} s; retrying later")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError | OSError):
        return DeliveryError(f"{where}: connection failed or dropped ({exc}); retrying later")
    if isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS" in str(exc):
        return DeliveryError(
            f"{where}: the server offers no STARTTLS and smtp.tls = 'starttls' requires it; "
            "nothing was sent. Use smtp.tls = 'implicit' (port 465) or fix the server"
        )
    if isinstance(exc, aiosmtplib.SMTPException) and "AUTH" in str(exc):
        return DeliveryError(
            f"{where}: the server offers no AUTH for smtp.username {settings.username!r}; check the port and TLS mode"
        )
    if isinstance(exc, ValueError):
        return DeliveryError(f"{where}: an address cannot be sent safely ({exc})", permanent=True)
    return DeliveryError(f"{where}: {type(exc).__name__}: {exc}")


def _find_cause(exc: BaseException, kind: type[ssl.SSLCertVerificationError]) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


_counter = 0


def _unique_name() -> str:
    """A Maildir unique name: time, microseconds, pid, a counter and randomness, then the host."""
    global _counter
    _counter += 1
    now = time.time()
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"
    return f"{int(now)}.M{int(now * 1e6) % 1_000_000}P{os.getpid()}Q{_counter}R{secrets.token_hex(8)}.{host}"


def deliver_to_maildir(raw: bytes, folder: Path) -> Path:
    """Deliver into a Maildir (tmp/, fsync, rename into new/): the no-SMTP default's equivalent of sending.

    The written file is delivered mail in the user's own mailbox (what an SMTP server would store on their mail
    host), so it is plaintext by nature: this is the one place mailvoice writes a mail body to disk unencrypted,
    and only because delivering it is the point. Blocking I/O: call it from a worker thread, not the event loop.
    Returns the path in new/; raises DeliveryError (transient: space and permissions can be fixed).
    """
    try:
        return _deliver(raw, folder)
    except OSError as exc:
        raise DeliveryError(
            f"local delivery into Maildir {folder} failed ({exc.strerror or exc}); check the "
            "folder's permissions and free space"
        ) from exc


def _deliver(raw: bytes, folder: Path) -> Path:
    for sub in ("tmp", "new", "cur"):
        (folder / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    name = _unique_name()
    tmp, final = folder / "tmp" / name, folder / "new" / name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.rename(tmp, final)
    _fsync_dir(folder / "new")
    return final


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["Refusal", "SendResult", "check_settings", "deliver_to_maildir", "send"]
