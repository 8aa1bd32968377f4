"""A copy of each sent voice email in the account's Sent folder (IMAP APPEND, or a Maildir's .Sent)."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from mailvoice.errors import ConfigError, SourceError

if TYPE_CHECKING:
    from mailvoice.config import AccountSettings, MaildirSettings

log = logging.getLogger(__name__)

_FORBIDDEN = frozenset('\r\n\0"\\')


def _connect(acc: AccountSettings) -> Any:
    """Log in exactly as the mail source does (TLS verified against ca_file, timeouts, secrets, clear errors)."""
    from mailvoice.mail.imap import open_client

    return open_client(acc)


def _sent_folder(client: Any, configured: str) -> str:
    """The configured folder, else the server's \\Sent special-use folder, else "Sent" (created when missing)."""
    from imapclient.imapclient import SENT

    if configured:
        name = configured
    else:
        found = client.find_special_folder(SENT)
        name = found if isinstance(found, str) and found else "Sent"
    if not name or len(name) > 512 or any(c in _FORBIDDEN or ord(c) < 0x20 for c in name):
        raise ConfigError(
            f"setting voice_email.sent_folder = {name!r} is invalid: no quotes, backslashes or control characters"
        )
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
