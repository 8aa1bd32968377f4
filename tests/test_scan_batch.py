"""The mail scan's batched ledger: one lookup and one commit for a fetched batch, exactly-once kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from mailvoice.crypto import Sealer, create_keyring
from mailvoice.store import Store
from mailvoice.store.records import MessageContent, NewMessage, SourceRef, content_hash, message_id_hash


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    ring = create_keyring(tmp_path / "key")
    with Store.open(f"sqlite:///{tmp_path / 'store.db'}", Sealer(ring)) as s:
        yield s


def ref(uid: int, msgid: str, body: bytes = b"raw") -> SourceRef:
    return SourceRef(
        account="alice",
        folder="INBOX",
        uidvalidity=7,
        uid=uid,
        message_id_hash=message_id_hash(msgid, body),
        content_hash=content_hash([], body),
    )


def record(subject: str) -> NewMessage:
    return NewMessage(kind="text", account="alice", content=MessageContent(text="hello", subject=subject))  # type: ignore[arg-type]


def rows(store: Store, table: str) -> int:
    with store._db.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_batch_records_each_item_once_and_spots_twins(store: Store) -> None:
    assert store.record_processed(ref(1, "<a@x>"), [record("a")]) == "recorded"
    batch = [
        (ref(1, "<a@x>"), [record("a again")], []),  # already in the ledger
        (ref(2, "<b@x>"), [record("b")], []),
        (ref(3, "<b@x>"), [record("b copy")], []),  # same Message-ID and content under another UID
        (ref(4, "<c@x>"), [record("c")], []),
    ]
    assert store.record_processed_many(batch) == ["duplicate", "recorded", "duplicate", "recorded"]
    assert rows(store, "messages") == 3 and rows(store, "ledger") == 3
    assert store.record_processed_many(batch[1:2]) == ["duplicate"]
    assert store.record_processed_many([]) == []


def test_seen_uids_answers_for_the_whole_batch(store: Store) -> None:
    store.record_processed_many([(ref(u, f"<{u}@x>"), [record(str(u))], []) for u in (3, 5, 8)])
    assert store.seen_uids("alice", "INBOX", 7, [1, 3, 4, 5, 8, 9]) == {3, 5, 8}
    assert store.seen_uids("alice", "INBOX", 8, [3, 5]) == frozenset()
    assert store.seen_uids("bob", "INBOX", 7, [3]) == frozenset()
    assert store.seen_uids("alice", "INBOX", 7, []) == frozenset()


def _mail(i: int) -> bytes:
    return (
        f"From: Sender <s{i}@example.org>\r\nTo: me@example.org\r\nSubject: note {i}\r\n"
        f"Message-ID: <note-{i}@example.org>\r\n\r\nBody {i}\r\n"
    ).encode()


def test_process_many_checks_the_ledger_of_every_folder_in_the_batch(store: Store, tmp_path: Path) -> None:
    """A batch spanning two folders: items already done in either folder are duplicates, the rest are recorded
    once, a copy of the same mail later in the batch is a duplicate, and nothing reaches the transcriber."""
    from mailvoice.config import GeneralSettings, Settings
    from mailvoice.mail.source import SourceItem
    from mailvoice.mail.source import SourceRef as MailRef
    from mailvoice.pipeline import Context, Pipeline
    from mailvoice.types import Transcript

    def no_asr(data: bytes, name: str) -> Transcript:
        raise AssertionError("a text mail must not reach the transcriber")

    pipeline = Pipeline(Settings(general=GeneralSettings(data_dir=tmp_path)), store, no_asr)
    ctx = Context("alice", "me@example.org", ("me@example.org",))

    def item(folder: str, uid: int, n: int) -> SourceItem:
        raw = _mail(n)
        return SourceItem(MailRef("alice", folder, 7, uid), raw, len(raw), None)

    first = [item("INBOX", 1, 1), item("Archive", 1, 2)]
    assert [r.status for _i, r in pipeline.process_many(first, ctx)] == ["text", "text"]
    batch = [item("INBOX", 1, 1), item("Archive", 1, 2), item("Archive", 2, 3), item("INBOX", 9, 3)]
    got = [(i.ref.folder, i.ref.uid, r.status) for i, r in pipeline.process_many(batch, ctx)]
    assert got == [
        ("INBOX", 1, "duplicate"),
        ("Archive", 1, "duplicate"),
        ("Archive", 2, "text"),
        ("INBOX", 9, "duplicate"),  # the same mail as Archive uid 2, earlier in this batch
    ]
    assert rows(store, "messages") == 3 and rows(store, "ledger") == 3
    stopped = list(pipeline.process_many([item("INBOX", 20, 20)], ctx, stop=lambda: True))
    assert stopped == [] and rows(store, "ledger") == 3  # not processed, so not acknowledged: it comes back
