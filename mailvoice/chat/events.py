"""Matrix events as the bot reads and writes them: voice messages in, threaded transcript replies out."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from typing import Any

VOICE_FLAG = "org.matrix.msc3245.voice"
"""Set (to {}) by Element and other current clients on recorded voice messages."""


@dataclass(frozen=True, slots=True)
class AudioMessage:
    """An m.audio event in a room the bot watches."""

    room_id: str
    event_id: str
    sender: str
    url: str
    """mxc:// URI of the (unencrypted) file; empty when the file is encrypted."""
    mimetype: str
    declared_size: int | None
    thread_root: str
    """The thread the reply goes to: the event's own thread, or a new one rooted at the event."""
    voice: bool
    """Recorded as a voice message (the MSC3245 flag), not an uploaded audio file."""
    encrypted_file: bool

    @classmethod
    def parse(cls, room_id: str, source: dict[str, Any]) -> AudioMessage | None:
        """The audio message in an event's raw JSON, or None for every other kind of event."""
        content = source.get("content")
        if source.get("type") != "m.room.message" or not isinstance(content, dict):
            return None
        if content.get("msgtype") != "m.audio":
            return None
        info = as_object(content.get("info"))
        size = info.get("size")
        relates = as_object(content.get("m.relates_to"))
        event_id = str(source.get("event_id", ""))
        root = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
        url = content.get("url")
        return cls(
            room_id=room_id,
            event_id=event_id,
            sender=str(source.get("sender", "")),
            url=url if isinstance(url, str) else "",
            mimetype=str(info.get("mimetype", "")),
            declared_size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            thread_root=str(root) if isinstance(root, str) and root else event_id,
            voice=VOICE_FLAG in content,
            encrypted_file=isinstance(content.get("file"), dict),
        )

    @property
    def reference(self) -> str:
        """A log-safe short reference: a hash of room and event ids (no content, no people)."""
        return hashlib.sha256(f"{self.room_id}|{self.event_id}".encode()).hexdigest()[:12]


def as_object(value: object) -> dict[str, Any]:
    """A JSON object from an untrusted event, or an empty one."""
    return value if isinstance(value, dict) else {}


def txn_id(room_id: str, event_id: str, what: str) -> str:
    """The same transaction id for the same answer: the homeserver drops a resend after a crash or restart."""
    return "mv" + hashlib.sha256(f"{what}|{room_id}|{event_id}".encode()).hexdigest()[:40]


def threaded(msg: AudioMessage, body: str, formatted: str) -> dict[str, Any]:
    """An m.notice in the voice message's thread (a reply to it for clients without threads)."""
    return {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": msg.thread_root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": msg.event_id},
        },
    }


def notice(text: str) -> dict[str, Any]:
    """A plain notice (help, refusals) outside any thread."""
    return {
        "msgtype": "m.notice",
        "body": text,
        "format": "org.matrix.custom.html",
        "formatted_body": html.escape(text),
    }
