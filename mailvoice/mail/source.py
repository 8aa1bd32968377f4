"""The mail-source boundary: stable references, fetched raw items, and the cursor the caller persists.

A source deals in raw bytes only (parsing is mime.py's job). It is synchronous (imapclient blocks); the runner
gives each source its own thread and must not call one source from two threads at once.

Exactly-once contract between a source and the runner:
- `fetch_new` returns each message once per session; items fetched but never acknowledged come back after a
  reconnect or a restart (the persisted cursor never moves past an unacknowledged item), so nothing is lost.
- `acknowledge` marks the message done at the source and advances the cursor. Call it for every item the runner
  finished with, quarantined ones included, and only after the store and every sink committed.
- A reference (UIDVALIDITY, UID) is not a message identity: UIDs can be renumbered under the same UIDVALIDITY.
  After such an event a source may return messages already processed; the runner's ledger (Message-ID plus a
  content hash) drops them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class SourceRef:
    """Where a message lives: enough to acknowledge it, and to log it without its content."""

    account: str
    """The account or Maildir name from the config."""
    folder: str
    """IMAP folder name, or the Maildir path for a Maildir source."""
    uidvalidity: int
    """IMAP UIDVALIDITY; 0 for a Maildir."""
    uid: int | None
    """IMAP UID; None for a Maildir."""
    key: str | None = None
    """Maildir unique name (the file name before ':2,'); None for IMAP."""

    def __str__(self) -> str:
        where = f"uid {self.uidvalidity}:{self.uid}" if self.uid is not None else f"key {self.key}"
        return f"{self.account}/{self.folder} {where}"


@dataclass(frozen=True)
class SourceItem:
    """One fetched message, as raw bytes."""

    ref: SourceRef
    raw: bytes
    """The whole message; empty when too_large."""
    size: int
    """Size the source reported (RFC822.SIZE or the file size)."""
    internal_date: datetime | None
    """Arrival time at the source (IMAP INTERNALDATE, or Maildir delivery time), timezone-aware."""
    too_large: bool = False
    """Over the source's size limit: no body was fetched; the runner quarantines it."""


@dataclass(frozen=True)
class Cursor:
    """What a source needs persisted per (account, folder) to resume without reprocessing or losing mail."""

    uidvalidity: int
    """UIDVALIDITY the cursor belongs to; 0 for a Maildir."""
    last_uid: int
    """Every message with a UID at or below this is done (acknowledged, or older than the baseline)."""
    baseline: float = field(default_factory=time.time)
    """Epoch seconds of the first connection (or of `since`): mail that arrived before it is old mail,
    also when a UIDVALIDITY change forces a rescan."""


class CursorStore(Protocol):
    """Persists cursors; the runner plugs in the SQL store, tests use MemoryCursorStore."""

    def get(self, account: str, folder: str) -> Cursor | None:
        """The saved cursor, or None for a mailbox never seen."""
        ...

    def set(self, account: str, folder: str, cursor: Cursor) -> None:
        """Save durably before returning (a crash right after must not lose it)."""
        ...


class MemoryCursorStore:
    """A dict-backed CursorStore: for tests and one-shot runs."""

    def __init__(self) -> None:
        self.cursors: dict[tuple[str, str], Cursor] = {}

    def get(self, account: str, folder: str) -> Cursor | None:
        return self.cursors.get((account, folder))

    def set(self, account: str, folder: str, cursor: Cursor) -> None:
        self.cursors[(account, folder)] = cursor


class MailSource(Protocol):
    """A mailbox the runner drains: connect, fetch new items, acknowledge them, wait for more."""

    name: str
    old_mail: dict[str, int]
    """Folder -> messages left as old mail at first contact (filled by connect; empty once a cursor exists)."""

    def connect(self) -> None:
        """Open the connection (or check the folder); raises SourceError or ConfigError."""
        ...

    def fetch_new(self, limit: int = 50) -> list[SourceItem]:
        """Up to `limit` messages not returned before in this session and not done; oldest first."""
        ...

    def acknowledge(self, ref: SourceRef) -> None:
        """Mark the message done at the source (as configured) and advance the cursor."""
        ...

    def acknowledge_many(self, refs: list[SourceRef]) -> None:
        """Acknowledge several items at once (fewer round trips); same contract as acknowledge."""
        ...

    def wait_for_change(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True when new mail may have arrived."""
        ...

    def close(self) -> None:
        """Release the connection; never raises."""
        ...
