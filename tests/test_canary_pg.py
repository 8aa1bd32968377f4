"""The plaintext canary on PostgreSQL: sealed through every store API, then absent from the server's files.

After a CHECKPOINT the heap, index and WAL files under the data directory (and the server log) hold what was
written; the account name, stored in the clear on purpose, must be found there (the grep works), the canary
in none of its encodings.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from pgutil import pg_session_url, pg_url  # noqa: F401  (fixtures)
from sqlalchemy import text
from test_canary import _hits

from mailvoice.crypto import Sealer, create_keyring, load_keyring
from mailvoice.store import (
    Envelope,
    MessageContent,
    NewMessage,
    NewOutgoing,
    SourceRef,
    Store,
    content_hash,
    message_id_hash,
    rotate_keys,
    utcnow,
)

pytestmark = pytest.mark.scale


def _server_files(data_dir: Path) -> list[Path]:
    roots = [data_dir, Path("/var/log/postgresql")]
    skip = {"postmaster.pid", "postmaster.opts"}
    return [p for root in roots if root.is_dir() for p in root.rglob("*") if p.is_file() and p.name not in skip]


def test_canary_absent_from_postgresql_files(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    canary = f"CANARY-{secrets.token_hex(8)}-ZEBRA-PHRASE"
    control = f"control-{secrets.token_hex(6)}"
    keys = tmp_path / "keys.json"
    create_keyring(keys)
    store = Store.open(pg_url, Sealer(load_keyring(keys)))
    with store._db.engine.connect() as conn:
        data_dir = Path(str(conn.execute(text("SHOW data_directory")).scalar()))
    if not os.access(data_dir / "base", os.R_OK):
        pytest.skip(f"PostgreSQL data directory {data_dir} is not readable by this user (run as root)")

    def ref(uid: int) -> SourceRef:
        return SourceRef(
            control,
            "INBOX",
            message_id_hash(f"<{uid}@x>", b""),
            content_hash([], str(uid).encode()),
            uidvalidity=1,
            uid=uid,
        )

    content = MessageContent(
        text=f"transcript {canary}",
        caller=f"caller {canary}",
        subject=f"Subject {canary}",
        sender=f"{canary}@example.org",
        recipients=(f"to-{canary}@example.org",),
        audio_filename=f"{canary}.ogg",
    )
    msg = NewMessage("voicemail", control, content, audio=f"audio {canary}".encode())
    out = NewOutgoing(
        "<a@mailvoice>",
        f"Subject: {canary}\r\n\r\n{canary}\r\n".encode(),
        Envelope(f"{canary}@from.org", (f"{canary}@to.org",)),
        message_id=msg.id,
    )
    assert store.record_processed(ref(1), [msg], [out]) == "recorded"
    assert store.record_quarantined(ref(2), "mime: too deep", f"From: x\r\n\r\n{canary}".encode("utf-16")) == "recorded"
    q = store.list_quarantine()[0]
    assert store.record_retried(q.id, [NewMessage("text", control, MessageContent(text=canary))]) == "recorded"
    wid = store.record_queued(ref(3), f"Subject: {canary}\r\n\r\nqueued {canary}".encode(), 40, None)
    assert wid is not None
    queued_only = store.record_queued(ref(4), f"Subject: {canary}\r\n\r\nwaiting {canary}".encode(), 40, None)
    assert queued_only is not None
    assert store.record_work_done(wid, [NewMessage("voicemail", control, MessageContent(text=canary))]) == "recorded"
    assert (
        store.record_once(f"summary:{control}:slot", [NewMessage("summary", control, MessageContent(text=canary))])
        == "recorded"
    )
    gone = NewMessage("dictation", control, MessageContent(text=f"deleted {canary}"))
    store.record([gone])
    assert store.delete_message(gone.id)
    store.mark_sending(out.id)
    store.mark_retry(out.id, utcnow(), "451 try later")
    rotate_keys(store, keys)
    assert store.get_message(msg.id).content.subject == f"Subject {canary}"
    with store._db.engine.connect() as conn:
        conn.execute(text("CHECKPOINT"))
        conn.commit()
    store.close()

    files = _server_files(data_dir)
    assert _hits(files, control), "control string not found: the grep would miss the canary too"
    assert _hits(files, canary) == []
