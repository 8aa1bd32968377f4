"""The encrypted store: messages, outbox, quarantine and the exactly-once ledger (see core.Store)."""

from __future__ import annotations

from mailvoice.store.core import Store
from mailvoice.store.records import (
    Cursor,
    Envelope,
    Message,
    MessageContent,
    MessageKind,
    NewMessage,
    NewOutgoing,
    OutboxState,
    Outcome,
    Outgoing,
    Quarantined,
    QuarantineState,
    SourceRef,
    content_hash,
    message_id_hash,
    new_id,
    utcnow,
)
from mailvoice.store.rotation import Rotation, rotate_keys

__all__ = [
    "Cursor",
    "Envelope",
    "Message",
    "MessageContent",
    "MessageKind",
    "NewMessage",
    "NewOutgoing",
    "OutboxState",
    "Outcome",
    "Outgoing",
    "QuarantineState",
    "Quarantined",
    "Rotation",
    "SourceRef",
    "Store",
    "content_hash",
    "message_id_hash",
    "new_id",
    "rotate_keys",
    "utcnow",
]
