"""Stored messages (transcripts, dictations, summaries, voice emails, texts): content and audio sealed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Connection, Row, delete, func, select, update

from mailvoice.crypto import record_aad
from mailvoice.store.db import Db, from_db_time, resolve_id, to_db_time
from mailvoice.store.records import Message, MessageContent, MessageKind, NewMessage
from mailvoice.store.schema import messages
from mailvoice.types import Segment, Transcript, Word

TABLE = "messages"


def content_to_json(content: MessageContent) -> dict[str, Any]:
    """The sealed payload."""
    return {
        "text": content.text,
        "transcript": content.transcript.to_json() if content.transcript is not None else None,
        "caller": content.caller,
        "subject": content.subject,
        "sender": content.sender,
        "recipients": list(content.recipients),
        "source": content.source,
        "audio_filename": content.audio_filename,
        "audio_type": content.audio_type,
        "message_id": content.message_id,
        "references": list(content.references),
    }


def _transcript(doc: dict[str, Any]) -> Transcript:
    segments = tuple(
        Segment(
            start=s["start"],
            end=s["end"],
            text=s["text"],
            avg_logprob=s["avg_logprob"],
            no_speech_prob=s["no_speech_prob"],
            words=tuple(
                Word(start=w["start"], end=w["end"], word=w["word"], probability=w["probability"]) for w in s["words"]
            ),
        )
        for s in doc["segments"]
    )
    return Transcript(
        text=doc["text"],
        language=doc["language"],
        duration=doc["duration"],
        segments=segments,
        no_speech=doc["no_speech"],
        language_probability=doc["language_probability"],
        translation=doc.get("translation", ""),
        other_language=doc.get("other_language", ""),
    )


def content_from_json(doc: dict[str, Any]) -> MessageContent:
    """The payload, opened, back to a MessageContent."""
    transcript = doc.get("transcript")
    return MessageContent(
        text=doc.get("text", ""),
        transcript=_transcript(transcript) if transcript else None,
        caller=doc.get("caller", ""),
        subject=doc.get("subject", ""),
        sender=doc.get("sender", ""),
        recipients=tuple(doc.get("recipients", ())),
        source=doc.get("source", ""),
        audio_filename=doc.get("audio_filename", ""),
        audio_type=doc.get("audio_type", ""),
        message_id=doc.get("message_id", ""),
        references=tuple(doc.get("references", ())),
    )


def row(db: Db, new: NewMessage) -> dict[str, Any]:
    """The sealed row of one message, ready to insert."""
    sealer = db.sealer
    audio = new.audio if db.keep_audio else None
    return {
        "id": new.id,
        "kind": new.kind,
        "account": new.account,
        "created_at": to_db_time(new.created_at),
        "state": new.state,
        "duration": new.duration,
        "language": new.language,
        "key_id": sealer.active_key_id,
        "payload": sealer.seal_json(content_to_json(new.content), record_aad(TABLE, new.id, "payload")),
        "audio": sealer.seal(audio, record_aad(TABLE, new.id, "audio")) if audio is not None else None,
        "audio_size": len(audio) if audio is not None else None,
    }


def insert(conn: Connection, db: Db, new: NewMessage) -> None:
    """Seal and insert one message (inside the caller's transaction)."""
    conn.execute(messages.insert().values(**row(db, new)))


def insert_many(conn: Connection, db: Db, news: Sequence[NewMessage]) -> None:
    """Seal and insert messages with one statement (inside the caller's transaction)."""
    if news:
        conn.execute(messages.insert(), [row(db, new) for new in news])


class MessageQueries:
    """Store methods to read and manage messages; adding goes through record / record_processed."""

    _db: Db

    def _open_message(self, row: Row[Any]) -> Message:
        sealer = self._db.sealer
        return Message(
            id=row.id,
            kind=cast(MessageKind, row.kind),
            account=row.account,
            created_at=from_db_time(row.created_at),
            state=row.state,
            duration=row.duration,
            language=row.language,
            content=content_from_json(sealer.open_json(row.payload, record_aad(TABLE, row.id, "payload"))),
            audio=(sealer.open(row.audio, record_aad(TABLE, row.id, "audio")) if row.audio is not None else None),
            audio_size=row.audio_size,
            key_id=row.key_id,
        )

    def get_message(self, message_id: str) -> Message:
        """One message by id or unique id prefix; StoreError naming the id when there is none."""
        with self._db.read() as conn:
            mid = resolve_id(conn, messages, message_id, "message", self._db.where)
            row = conn.execute(select(messages).where(messages.c.id == mid)).one()
        return self._open_message(row)

    def list_messages(
        self, kind: MessageKind | None = None, *, account: str | None = None, limit: int = 50
    ) -> tuple[Message, ...]:
        """The newest messages first, optionally of one kind or account."""
        query = select(messages).order_by(messages.c.created_at.desc(), messages.c.id).limit(limit)
        if kind is not None:
            query = query.where(messages.c.kind == kind)
        if account is not None:
            query = query.where(messages.c.account == account)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return tuple(self._open_message(row) for row in rows)

    def count_messages(self) -> int:
        """How many messages are stored (a COUNT: nothing is opened)."""
        with self._db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())

    def set_message_state(self, message_id: str, state: str) -> None:
        """Record a message's progress (free-form short word, no content)."""
        with self._db.write() as conn:
            conn.execute(update(messages).where(messages.c.id == message_id).values(state=state))

    def delete_message(self, message_id: str) -> bool:
        """Delete a message (its outbox and ledger rows keep existing, unlinked); True if it existed."""
        with self._db.write() as conn:
            return conn.execute(delete(messages).where(messages.c.id == message_id)).rowcount > 0
