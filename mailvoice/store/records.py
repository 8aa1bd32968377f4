"""Rows the store hands out and takes in: frozen, typed, secrets already opened (or not yet sealed)."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from mailvoice.types import Transcript

MessageKind = Literal["voicemail", "dictation", "summary", "voice_email", "text"]
LedgerState = Literal["done", "quarantined", "queued"]
"""queued: taken in by the scaled-out poller, a worker has yet to process it (see work_items)."""
OutboxState = Literal["pending", "sending", "sent", "failed"]
QuarantineState = Literal["open", "retried", "resolved"]
Outcome = Literal["recorded", "duplicate"]
"""What record_processed / record_quarantined did: "duplicate" means an earlier or concurrent run had it."""

_FOLD = re.compile(r"\s+")


def new_id() -> str:
    """A random row id, known before the insert so sealed columns can be bound to it."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """Now, timezone-aware UTC (the only kind of time the store keeps)."""
    return datetime.now(UTC)


def message_id_hash(message_id: str | None, raw: bytes) -> str:
    """sha256 hex of the normalised Message-ID (folding and angle brackets removed), or of the raw mail."""
    normalized = _FOLD.sub("", message_id or "").strip("<>")
    if normalized:
        return hashlib.sha256(normalized.encode("utf-8", "surrogateescape")).hexdigest()
    return hashlib.sha256(raw).hexdigest()


def content_hash(audio_parts: Iterable[bytes], raw: bytes) -> str:
    """sha256 hex over the sorted hashes of the audio parts (order-free), or of the raw mail when none."""
    digests = sorted(hashlib.sha256(part).digest() for part in audio_parts)
    if not digests:
        return hashlib.sha256(raw).hexdigest()
    return hashlib.sha256(b"".join(digests)).hexdigest()


@dataclass(frozen=True)
class SourceRef:
    """Where a source item came from: IMAP identity (or Maildir key) plus hashes that survive renumbering."""

    account: str
    folder: str
    message_id_hash: str
    """See message_id_hash()."""
    content_hash: str
    """See content_hash()."""
    uidvalidity: int = 0
    uid: int | None = None
    """IMAP UID; None for a Maildir item."""
    key: str | None = None
    """Maildir key (unique name); None for an IMAP item."""

    def __post_init__(self) -> None:
        if (self.uid is None) == (self.key is None):
            raise ValueError(f"SourceRef for {self.account}/{self.folder} needs exactly one of uid or key")


@dataclass(frozen=True)
class Cursor:
    """Where polling of one folder stands."""

    account: str
    folder: str
    uidvalidity: int
    last_uid: int
    """Highest UID already looked at; the next poll asks for last_uid+1:*."""
    baseline: float = 0.0
    """Epoch seconds of the first connection (or of `since`): mail that arrived before it is old mail."""


@dataclass(frozen=True)
class MessageContent:
    """Everything a message says or reveals about people: sealed as one JSON payload."""

    text: str = ""
    """Transcript text, mail text or summary."""
    transcript: Transcript | None = None
    """Segments and words, when the text came from speech."""
    caller: str = ""
    subject: str = ""
    sender: str = ""
    recipients: tuple[str, ...] = ()
    source: str = ""
    """Human reference to the origin (e.g. "account/INBOX uid 42"); no content."""
    audio_filename: str = ""
    audio_type: str = ""
    message_id: str = ""
    """Message-ID header of the original mail ("<id@host>"), for threading a reply; empty when unknown."""
    references: tuple[str, ...] = ()
    """The original mail's References ids, oldest first."""


@dataclass(frozen=True)
class NewMessage:
    """A message to store (transcript, dictation, summary, voice email, text)."""

    kind: MessageKind
    account: str
    content: MessageContent = field(repr=False)
    duration: float | None = None
    language: str | None = None
    audio: bytes | None = field(default=None, repr=False)
    """Encoded audio to keep (dropped when the store is opened with keep_audio=False)."""
    state: str = "stored"
    id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class Message:
    """A stored message, opened."""

    id: str
    kind: MessageKind
    account: str
    created_at: datetime
    state: str
    duration: float | None
    language: str | None
    content: MessageContent = field(repr=False)
    audio: bytes | None = field(repr=False)
    audio_size: int | None
    key_id: str


@dataclass(frozen=True)
class Envelope:
    """SMTP envelope of an outgoing mail."""

    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class NewOutgoing:
    """A mail to send; message_id_header stays the same across every retry."""

    message_id_header: str
    raw: bytes = field(repr=False)
    envelope: Envelope = field(repr=False)
    message_id: str | None = None
    """The stored message it carries, if any."""
    id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class Outgoing:
    """An outbox row, opened."""

    id: str
    message_id_header: str
    raw: bytes = field(repr=False)
    envelope: Envelope = field(repr=False)
    state: OutboxState
    attempts: int
    next_attempt_at: datetime
    last_error: str
    created_at: datetime
    sent_at: datetime | None
    message_id: str | None
    key_id: str


@dataclass(frozen=True)
class Quarantined:
    """A quarantined source item, opened: raw holds the whole mail so it can be re-run without the source."""

    id: str
    account: str
    folder: str
    uidvalidity: int
    uid: int | None
    key: str | None
    message_id_hash: str
    reason: str
    raw: bytes = field(repr=False)
    state: QuarantineState
    attempts: int
    created_at: datetime
    updated_at: datetime
    key_id: str
