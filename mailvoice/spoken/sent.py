"""A copy of each sent voice email in the account's Sent folder (IMAP APPEND, or a Maildir's .Sent)."""

from __future__ import annotations

import contextlib
import logging
import ssl
from typing import TYPE_CHECKING, Any

from mailvoice.config import is_loopback, read_secret
from mailvoice.errors import ConfigError, SourceError

if TYPE_CHECKING:
    from mailvoice.config import AccountSettings, MaildirSettings

log = logging.getLogger(__name__)

_FORBIDDEN = frozenset("\r\n\0\"\\")


def _connect(acc: AccountSettings) -> Any:
    """Log in with the account's TLS mode, CA file, timeouts and secret (as the IMAP source does)."""
    from imapclient import IMAPClient, SocketTimeout

    port = acc.port or (993 if acc.tls == "implicit" else 143)
    where = f"IMAP account {acc.name!r} ({acc.host}:{port})"
    if acc.tls == "none" and not (acc.allow_plaintext and is_loopback(acc.host)):
        raise ConfigError(f"{where}: tls = 'none' is only allowed with allow_plaintext on a loopback host")
    password = read_secret(where, acc.password_env, acc.password_file)
    ctx = ssl.create_default_context(cafile=str(acc.ca_file) if acc.ca_file else None) if acc.tls != "none" else None
    try:
        client = IMAPClient(acc.host, port, ssl=acc.tls == "implicit", ssl_context=ctx,
                            timeout=SocketTimeout(connect=acc.timeout, read=acc.timeout))
    except (OSError, ssl.SSLError) as exc:
        raise SourceError(f"{where}: connect failed: {exc}") from exc
    try:
        if acc.tls == "starttls":
            client.starttls(ssl_context=ctx)
        client.login(acc.username, password)
    except Exception as exc:
        with contextlib.suppress(Exception):
            client.shutdown()
        raise SourceError(f"{where}: log in as {acc.username!r} failed ({exc}); check the password and TLS "
                          "settings") from exc
    return client


def _sent_folder(client: Any, configured: str) -> str:
    """The configured folder, else the server's \\Sent special-use folder, else "Sent" (created when missing)."""
    from imapclient.imapclient import SENT

    if configured:
        name = configured
    else:
        found = client.find_special_folder(SENT)
        name = found if isinstance(found, str) and found else "Sent"
    if not name or len(name) > 512 or any(c in _FORBIDDEN or ord(c) < 0x20 for c in name):
        raise ConfigError(f"setting voice_email.sent_folder = {name!r} is invalid: no quotes, backslashes or "
                          "control characters")
    if not client.folder_exists(name):
        client.create_folder(name)
    return name


def append_to_sent(acc: AccountSettings, raw: bytes, folder: str = "") -> str:
    """APPEND the sent mail, flagged \\Seen, to the Sent folder; returns the folder's name. Blocking."""
    client = _connect(acc)
    try:
        name = _sent_folder(client, folder)
        client.append(name, raw, flags=(b"\\Seen",))
    except (ConfigError, SourceError):
        raise
    except Exception as exc:
        raise SourceError(f"IMAP account {acc.name!r}: APPEND to the Sent folder failed: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            client.logout()
    log.info("voice email copied to %s/%s", acc.name, name)
    return name


def append_to_maildir_sent(md: MaildirSettings, raw: bytes) -> str:
    """File the sent mail in the Maildir++ subfolder .Sent (blocking)."""
    from mailvoice.mail.smtp import deliver_to_maildir

    deliver_to_maildir(raw, md.path / ".Sent")
    return ".Sent"
