"""The encrypted store: exactly-once ledger, atomic records, outbox state machine, quarantine, rotation."""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from mailvoice.crypto import Keyring, Sealer, create_keyring, load_keyring
from mailvoice.errors import StoreError, UnsealError
from mailvoice.store import (
    Cursor,
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
from mailvoice.store.schema import ledger, messages, outbox, schema_version
from mailvoice.types import Segment, Transcript, Word


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "keys.json"


@pytest.fixture
def ring(key_path: Path) -> Keyring:
    return create_keyring(key_path)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "mailvoice.db"


@pytest.fixture
def store(db_path: Path, ring: Keyring) -> Iterator[Store]:
    with Store.open(f"sqlite:///{db_path}", Sealer(ring)) as s:
        yield s


def ref(
    uid: int = 1,
    *,
    account: str = "alice",
    msgid: str = "<m1@example.org>",
    audio: bytes = b"voice",
    uidvalidity: int = 7,
) -> SourceRef:
    return SourceRef(
        account=account,
        folder="INBOX",
        uidvalidity=uidvalidity,
        uid=uid,
        message_id_hash=message_id_hash(msgid, b"raw"),
        content_hash=content_hash([audio], b"raw"),
    )


def voicemail(text_: str = "call me back", account: str = "alice", **kw: object) -> NewMessage:
    return NewMessage(
        kind="voicemail",
        account=account,
        content=MessageContent(text=text_, caller="Bob", subject="Voicemail from Bob"),
        **kw,
    )  # type: ignore[arg-type]


def mail(message_id: str | None = None, **kw: object) -> NewOutgoing:
    return NewOutgoing(
        message_id_header="<out1@mailvoice>",
        raw=b"Subject: hi\r\n\r\nbody\r\n",
        envelope=Envelope("bot@example.org", ("alice@example.org",)),
        message_id=message_id,
        **kw,
    )  # type: ignore[arg-type]


def count(store: Store, table: str) -> int:
    with store._db.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


# --- opening ---------------------------------------------------------------------------------------------------


def test_sqlite_settings_and_file_modes(store: Store, db_path: Path) -> None:
    with store._db.engine.connect() as conn:
        pragmas = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "secure_delete", "foreign_keys", "temp_store")
        }
    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "secure_delete": 1, "foreign_keys": 1, "temp_store": 2}
    store.record([voicemail()])
    for name in ("mailvoice.db", "mailvoice.db-wal", "mailvoice.db-shm"):
        assert stat.S_IMODE((db_path.parent / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700


def test_loose_db_file_is_tightened(db_path: Path, ring: Keyring) -> None:
    db_path.parent.mkdir()
    db_path.touch(mode=0o644)
    db_path.chmod(0o644)
    Store.open(f"sqlite:///{db_path}", Sealer(ring)).close()
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_schema_version(store: Store, db_path: Path, ring: Keyring) -> None:
    with store._db.engine.begin() as conn:
        assert conn.execute(select(schema_version.c.version)).scalars().all() == [1]
        conn.execute(update(schema_version).values(version=2))
    with pytest.raises(StoreError, match=r"schema version 2.*upgrade mailvoice"):
        Store.open(f"sqlite:///{db_path}", Sealer(ring))


# --- ledger -----------------------------------------------------------------------------------------------------


def test_same_uid_twice_is_duplicate(store: Store) -> None:
    m1 = voicemail()
    assert store.record_processed(ref(1), [m1], [mail(m1.id)]) == "recorded"
    assert store.record_processed(ref(1, audio=b"other"), [voicemail()], [mail()]) == "duplicate"
    assert count(store, "messages") == 1 and count(store, "outbox") == 1 and count(store, "ledger") == 1
    assert store.seen("alice", "INBOX", 7, 1)
    assert not store.seen("alice", "INBOX", 8, 1) and not store.seen("alice", "INBOX", 7, 2)


def test_renumbered_uid_same_message_is_duplicate(store: Store) -> None:
    assert store.record_processed(ref(1), [voicemail()]) == "recorded"
    assert store.seen_content("alice", ref(1).message_id_hash, ref(1).content_hash)
    # Dovecot renumbered the mailbox under the same UIDVALIDITY, or UIDVALIDITY changed.
    assert store.record_processed(ref(40), [voicemail()]) == "duplicate"
    assert store.record_processed(ref(1, uidvalidity=99), [voicemail()]) == "duplicate"
    # Same Message-ID but different audio is a different item; so is the same mail in another account.
    assert store.record_processed(ref(41, audio=b"new audio"), [voicemail()]) == "recorded"
    assert store.record_processed(ref(1, account="bob"), [voicemail(account="bob")]) == "recorded"
    assert count(store, "messages") == 3
    assert [m.account for m in store.list_messages(account="bob")] == ["bob"]
    assert store.max_uid("alice", "INBOX", 7) == 41 and store.max_uid("alice", "INBOX", 99) is None


def test_maildir_items(store: Store) -> None:
    item = SourceRef("box", "new", message_id_hash("<x@y>", b""), content_hash([], b"raw"), key="1700.M1.host")
    assert store.record_processed(item, [voicemail(account="box")]) == "recorded"
    assert store.seen_key("box", "new", "1700.M1.host") and store.seen_ref(item)
    other = SourceRef("box", "new", message_id_hash("<z@y>", b""), content_hash([], b"raw2"), key="1701.M2.host")
    assert store.record_processed(other, [voicemail(account="box")]) == "recorded"
    assert store.record_processed(item, []) == "duplicate"
    with pytest.raises(ValueError, match="exactly one of uid or key"):
        SourceRef("box", "new", "h", "c", uid=1, key="k")


def test_hashes() -> None:
    assert message_id_hash("<a@b>", b"x") == message_id_hash("  <a@b>\r\n ", b"y") == message_id_hash("a@b", b"")
    assert message_id_hash(None, b"x") != message_id_hash(None, b"y")
    assert content_hash([b"1", b"2"], b"") == content_hash([b"2", b"1"], b"other")
    assert content_hash([], b"raw1") != content_hash([], b"raw2")


def test_record_processed_is_atomic(store: Store) -> None:
    first = mail()
    store.record([], [first])
    # The second outbox row reuses an id: the insert fails after the message row went in.
    with pytest.raises(StoreError, match="nothing was recorded"):
        store.record_processed(ref(5), [voicemail()], [mail(id=first.id)])
    assert count(store, "messages") == 0 and count(store, "ledger") == 0 and count(store, "outbox") == 1
    assert not store.seen("alice", "INBOX", 7, 5)
    # A failure in our own code mid-transaction (sealing a bad value) rolls back too.
    broken = NewOutgoing("<x@y>", raw=None, envelope=Envelope("a@b", ()))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.record_processed(ref(5), [voicemail()], [broken])
    assert count(store, "messages") == 0 and count(store, "ledger") == 0
    assert store.record_processed(ref(5), [voicemail()], [mail()]) == "recorded"


def test_concurrent_runs_record_once(db_path: Path, ring: Keyring) -> None:
    stores = [Store.open(f"sqlite:///{db_path}", Sealer(ring)) for _ in range(4)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(stores))

    def run(s: Store) -> None:
        barrier.wait()
        outcomes.append(s.record_processed(ref(9), [voicemail()], [mail()]))

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["duplicate"] * 3 + ["recorded"]
    assert count(stores[0], "messages") == 1 and count(stores[0], "outbox") == 1
    for s in stores:
        s.close()


def test_cursor(store: Store) -> None:
    assert store.get_cursor("alice", "INBOX") is None
    store.save_cursor(Cursor("alice", "INBOX", uidvalidity=7, last_uid=100, baseline=1700000000.0))
    store.save_cursor(Cursor("alice", "INBOX", uidvalidity=7, last_uid=120, baseline=1700000000.0))
    store.save_cursor(Cursor("alice", "Voicemail", uidvalidity=3, last_uid=1))
    assert store.get_cursor("alice", "INBOX") == Cursor("alice", "INBOX", 7, 120, 1700000000.0)
    assert store.get_cursor("alice", "Voicemail") == Cursor("alice", "Voicemail", 3, 1, 0.0)


# --- messages ---------------------------------------------------------------------------------------------------


def test_message_round_trip(store: Store) -> None:
    transcript = Transcript(
        text="Hi it's Bob.",
        language="en",
        duration=2.5,
        segments=(
            Segment(0.0, 2.5, "Hi it's Bob.", -0.2, 0.01, (Word(0.0, 0.4, "Hi", 0.9), Word(0.5, 1.0, "it's", 0.8))),
        ),
    )
    new = NewMessage(
        "voicemail",
        "alice",
        MessageContent(
            text=transcript.text,
            transcript=transcript,
            caller="Bob",
            subject="Voicemail",
            sender="bob@x",
            recipients=("a@x", "b@x"),
            audio_filename="vm.ogg",
        ),
        duration=2.5,
        language="en",
        audio=b"OggS....",
    )
    store.record([new, voicemail("second"), NewMessage("summary", "alice", MessageContent(text="sum"))])
    got = store.get_message(new.id[:8])
    assert got.content == new.content and got.audio == b"OggS...." and got.audio_size == 8
    assert got.content.transcript == transcript
    assert (got.duration, got.language, got.kind, got.state) == (2.5, "en", "voicemail", "stored")
    assert got.created_at == new.created_at
    assert [m.content.text for m in store.list_messages("voicemail")] == ["second", transcript.text]
    assert [m.kind for m in store.list_messages("summary")] == ["summary"]
    assert len(store.list_messages(limit=2)) == 2
    store.set_message_state(new.id, "delivered")
    assert store.get_message(new.id).state == "delivered"
    with pytest.raises(StoreError, match="no message"):
        store.get_message("ffffffff")


def test_audio_not_kept_when_disabled(db_path: Path, ring: Keyring) -> None:
    with Store.open(f"sqlite:///{db_path}", Sealer(ring), keep_audio=False) as s:
        new = voicemail(audio=b"OggS")
        s.record([new])
        got = s.get_message(new.id)
        assert got.audio is None and got.audio_size is None and got.content.text == "call me back"


def test_delete_message_keeps_ledger(store: Store) -> None:
    m = voicemail()
    store.record_processed(ref(3), [m], [mail(m.id)])
    assert store.delete_message(m.id)
    assert not store.delete_message(m.id)
    assert store.seen("alice", "INBOX", 7, 3)
    assert store.list_outbox()[0].message_id is None


def test_swapped_or_flipped_ciphertexts_refused(store: Store) -> None:
    a, b = voicemail("first text"), voicemail("second text")
    store.record([a, b])
    with store._db.engine.begin() as conn:
        pa = conn.execute(select(messages.c.payload).where(messages.c.id == a.id)).scalar_one()
        pb = conn.execute(select(messages.c.payload).where(messages.c.id == b.id)).scalar_one()
        conn.execute(update(messages).where(messages.c.id == a.id).values(payload=pb))
        conn.execute(update(messages).where(messages.c.id == b.id).values(payload=pa))
    for m in (a, b):
        with pytest.raises(UnsealError):
            store.get_message(m.id)
    o = mail()
    store.record([], [o])
    with store._db.engine.begin() as conn:  # envelope pasted into the raw column of the same row
        env = conn.execute(select(outbox.c.envelope).where(outbox.c.id == o.id)).scalar_one()
        conn.execute(update(outbox).where(outbox.c.id == o.id).values(raw=env))
    with pytest.raises(UnsealError):
        store.get_outgoing(o.id)
    c = voicemail("third")
    store.record([c])
    with store._db.engine.begin() as conn:
        blob = bytearray(conn.execute(select(messages.c.payload).where(messages.c.id == c.id)).scalar_one())
        blob[-20] ^= 0x04
        conn.execute(update(messages).where(messages.c.id == c.id).values(payload=bytes(blob)))
    with pytest.raises(UnsealError):
        store.get_message(c.id)


# --- outbox -----------------------------------------------------------------------------------------------------


def test_outbox_state_machine(store: Store) -> None:
    o = mail()
    store.record([], [o])
    now = utcnow()
    (due,) = store.due(now)
    assert (due.id, due.state, due.attempts, due.raw, due.envelope) == (o.id, "pending", 0, o.raw, o.envelope)
    with pytest.raises(StoreError, match="'pending', cannot become 'sent'"):
        store.mark_sent(o.id)
    assert store.mark_sending(o.id) is True
    assert store.mark_sending(o.id) is False  # another worker cannot claim it twice
    assert store.due(now) == ()
    store.mark_retry(o.id, now + timedelta(minutes=5), "451 4.3.0 try later\r\nInjected: header" + "x" * 500)
    retried = store.get_outgoing(o.id)
    assert retried.state == "pending" and retried.attempts == 1
    assert "\r" not in retried.last_error and "\n" not in retried.last_error and len(retried.last_error) <= 300
    assert store.due(now) == () and [d.id for d in store.due(now + timedelta(minutes=6))] == [o.id]
    assert store.mark_sending(o.id)
    store.mark_sent(o.id)
    sent = store.get_outgoing(o.id)
    assert sent.state == "sent" and sent.attempts == 2 and sent.sent_at is not None and sent.last_error == ""
    assert sent.message_id_header == o.message_id_header
    with pytest.raises(StoreError, match="'sent'"):
        store.mark_retry(o.id, now, "again")
    f = mail()
    store.record([], [f])
    store.mark_sending(f.id)
    store.mark_failed(f.id, "550 5.1.1 no such user")
    assert store.get_outgoing(f.id).state == "failed" and store.due(now + timedelta(days=1)) == ()
    assert [x.id for x in store.list_outbox("failed")] == [f.id]
    with pytest.raises(StoreError, match="no outbox entry"):
        store.mark_sent("f" * 32)


def test_due_order_and_limit(store: Store) -> None:
    start = utcnow()
    rows = [mail(created_at=start + timedelta(seconds=i)) for i in range(5)]
    store.record([], list(reversed(rows)))
    assert [d.id for d in store.due(start + timedelta(minutes=1), limit=3)] == [r.id for r in rows[:3]]
    assert [d.id for d in store.due(start + timedelta(seconds=1))] == [r.id for r in rows[:2]]


def test_sending_requeued_at_open(db_path: Path, ring: Keyring) -> None:
    url = f"sqlite:///{db_path}"
    with Store.open(url, Sealer(ring)) as s:
        o = mail()
        s.record([], [o])
        assert s.mark_sending(o.id)
    with Store.open(url, Sealer(ring), recover=False) as s:
        assert s.get_outgoing(o.id).state == "sending"
    with Store.open(url, Sealer(ring)) as s:
        again = s.get_outgoing(o.id)
        assert again.state == "pending" and again.message_id_header == "<out1@mailvoice>"
        assert [d.id for d in s.due(utcnow())] == [o.id]


# --- quarantine -------------------------------------------------------------------------------------------------


def test_quarantine_and_retry(store: Store) -> None:
    raw = b"From: bob\r\nSubject: broken voicemail\r\n\r\n..."
    assert store.record_quarantined(ref(4), "audio: corrupt ogg", raw) == "recorded"
    assert store.record_quarantined(ref(4), "again", raw) == "duplicate"
    assert store.record_processed(ref(4), [voicemail()]) == "duplicate"  # quarantined items are not re-run
    assert store.seen("alice", "INBOX", 7, 4)
    (q,) = store.list_quarantine()
    assert (q.raw, q.reason, q.state, q.attempts, q.uid) == (raw, "audio: corrupt ogg", "open", 0, 4)
    assert store.get_quarantined(q.id[:6]) == q
    store.quarantine_again(q.id, "audio: still corrupt")
    q2 = store.get_quarantined(q.id)
    assert (q2.state, q2.attempts, q2.reason) == ("open", 1, "audio: still corrupt")
    m = voicemail("fixed")
    assert store.record_retried(q.id, [m], [mail(m.id)]) == "recorded"
    assert store.record_retried(q.id, [voicemail()]) == "duplicate"
    assert store.get_quarantined(q.id).state == "retried" and store.list_quarantine() == ()
    assert count(store, "messages") == 1 and count(store, "outbox") == 1
    with store._db.engine.connect() as conn:
        row = conn.execute(select(ledger.c.state, ledger.c.message_id)).one()
    assert tuple(row) == ("done", m.id)
    assert store.record_quarantined(ref(6, audio=b"6"), "mime: too deep", b"x") == "recorded"
    (q3,) = store.list_quarantine()
    store.resolve_quarantined(q3.id)
    assert [x.state for x in store.list_quarantine(None)] == ["resolved", "retried"]
    with pytest.raises(StoreError, match="not valid"):
        store.get_quarantined("12")


# --- rotation ---------------------------------------------------------------------------------------------------


def test_rotate_keys_reseals_everything(store: Store, key_path: Path, ring: Keyring, db_path: Path) -> None:
    old = voicemail("sealed under the old key", audio=b"old audio")
    store.record_processed(ref(1), [old], [mail(old.id)])
    assert store.record_quarantined(ref(2, audio=b"q"), "bad", b"raw quarantined") == "recorded"
    store.record([voicemail(f"bulk {i}") for i in range(7)])
    assert store.key_ids_in_use() == {ring.active}
    result = rotate_keys(store, key_path, batch_size=3)
    assert result.active != ring.active and result.resealed == 8 + 1 + 1 and result.retired == ()
    assert store.key_ids_in_use() == {result.active}
    new = voicemail("sealed under the new key")
    store.record([new])
    assert store.get_message(old.id).content.text == "sealed under the old key"
    assert store.get_message(old.id).audio == b"old audio"
    assert store.get_message(new.id).key_id == result.active
    assert store.list_quarantine()[0].raw == b"raw quarantined"
    assert store.list_outbox()[0].key_id == result.active
    assert set(load_keyring(key_path).keys) == {ring.active, result.active}  # old key kept by default
    second = rotate_keys(store, key_path, retire=True)
    assert set(second.retired) == {ring.active, result.active}
    assert set(load_keyring(key_path).keys) == {second.active}
    with Store.open(f"sqlite:///{db_path}", Sealer(load_keyring(key_path))) as fresh:
        assert fresh.get_message(old.id).content.text == "sealed under the old key"
        assert len(fresh.list_messages(limit=100)) == 9


def test_rotation_refused_when_key_file_lacks_a_key(store: Store, tmp_path: Path) -> None:
    store.record([voicemail()])
    other = create_keyring(tmp_path / "other" / "keys.json")
    with pytest.raises(StoreError, match="lacks"):
        rotate_keys(store, tmp_path / "other" / "keys.json")
    assert set(load_keyring(tmp_path / "other" / "keys.json").keys) == {other.active}
