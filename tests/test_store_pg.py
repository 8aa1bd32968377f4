"""The store on PostgreSQL: the backend-neutral store tests again, plus what only a shared server can show.

The tests imported from test_store run here against PostgreSQL (this module's `store` fixture); on SQLite they
run in test_store. PostgreSQL-only: the concurrent-duplicate IntegrityError path, migrations equal to the
schema, advisory-lock leases, work items, and the plaintext canary in the server's data files.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgutil import pg_session_url, pg_url  # noqa: F401  (fixtures)
from sqlalchemy import create_engine, text
from test_store import (  # noqa: F401  (fixtures and tests collected again here, on PostgreSQL)
    count,
    key_path,
    mail,
    ref,
    ring,
    test_cursor,
    test_delete_message_keeps_ledger,
    test_due_order_and_limit,
    test_maildir_items,
    test_message_round_trip,
    test_outbox_state_machine,
    test_quarantine_and_retry,
    test_record_processed_is_atomic,
    test_renumbered_uid_same_message_is_duplicate,
    test_rotation_refused_when_key_file_lacks_a_key,
    test_same_uid_twice_is_duplicate,
    test_swapped_or_flipped_ciphertexts_refused,
    voicemail,
)

from mailvoice.crypto import Keyring, Sealer
from mailvoice.store import Store, rotate_keys
from mailvoice.store import ledger as ledger_rows

pytestmark = pytest.mark.scale


@pytest.fixture
def store(pg_url: str, ring: Keyring) -> Iterator[Store]:  # noqa: F811
    with Store.open(pg_url, Sealer(ring)) as s:
        assert s.backend == "postgresql"
        yield s


def test_concurrent_duplicate_takes_the_integrity_error_path(store: Store, pg_url: str, ring: Keyring) -> None:  # noqa: F811
    # Another run has inserted the same ledger row and not committed yet: our existence check cannot see it,
    # our insert waits on the unique index, then fails when the other commits. That must read "duplicate".
    other = Store.open(pg_url, Sealer(ring))
    conn = other._db.engine.connect()
    tx = conn.begin()
    ledger_rows.insert(conn, ref(9), "done")
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(store.record_processed(ref(9), [voicemail()], [mail()])))
    worker.start()
    time.sleep(0.7)
    assert worker.is_alive(), "the insert should wait on the unique index"
    tx.commit()
    worker.join(10)
    conn.close()
    other.close()
    assert outcome == ["duplicate"]
    assert count(store, "messages") == 0 and count(store, "outbox") == 0 and count(store, "ledger") == 1


def test_many_concurrent_runs_record_once(pg_url: str, ring: Keyring) -> None:  # noqa: F811
    stores = [Store.open(pg_url, Sealer(ring)) for _ in range(6)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(stores))

    def run(s: Store) -> None:
        barrier.wait()
        outcomes.append(s.record_processed(ref(11), [voicemail()], [mail()]))

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["duplicate"] * 5 + ["recorded"]
    assert count(stores[0], "messages") == 1 and count(stores[0], "outbox") == 1
    for s in stores:
        s.close()


def test_migrations_equal_the_schema(store: Store, pg_url: str) -> None:  # noqa: F811
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    import mailvoice.store.migrations as migrations
    from mailvoice.store.schema import metadata

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    assert ScriptDirectory.from_config(cfg).get_current_head() == migrations.HEAD
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert migrations.current(conn) == migrations.HEAD
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_unique_constraints_hold_without_the_check(store: Store) -> None:
    from sqlalchemy.exc import IntegrityError

    with store._db.engine.begin() as conn:
        ledger_rows.insert(conn, ref(21), "done")
    for twin in (ref(21, audio=b"other"), ref(22)):  # same UID; same Message-ID + content under another UID
        with pytest.raises(IntegrityError), store._db.engine.begin() as conn:
            ledger_rows.insert(conn, twin, "done")


def test_lease_is_exclusive_and_dies_with_its_session(
    store: Store,
    pg_url: str,  # noqa: F811
    ring: Keyring,  # noqa: F811
    tmp_path: Path,
) -> None:
    other = Store.open(pg_url, Sealer(ring))
    try:
        with store.lease("mailbox:a", tmp_path) as held:
            assert held
            with other.lease("mailbox:a", tmp_path) as second, other.lease("mailbox:b", tmp_path) as third:
                assert (second, third) == (False, True)
        with other.lease("mailbox:a", tmp_path) as again:
            assert again
        # A holder whose session ends (process killed) frees the lease at once.
        engine = create_engine(pg_url)
        conn = engine.connect()
        from mailvoice.store.lease import lease_key

        assert conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lease_key("mailbox:c")}).scalar()
        holder = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with other.lease("mailbox:c", tmp_path) as blocked:
            assert not blocked
        conn.invalidate()
        conn.close()
        engine.dispose()
        # The server ends the backend (and drops its locks) asynchronously after the socket closes: wait for that
        # backend to be gone, which is the event under test, rather than racing it on a loaded machine.
        probe = create_engine(pg_url)
        try:
            deadline = time.monotonic() + 60
            with probe.connect() as watch:
                while watch.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": holder}
                ).scalar():
                    assert time.monotonic() < deadline, "the killed holder's backend never ended"
                    time.sleep(0.05)
                    watch.rollback()
        finally:
            probe.dispose()
        with other.lease("mailbox:c", tmp_path) as freed:
            assert freed
    finally:
        other.close()


def test_work_item_done_once(store: Store) -> None:
    raw = b"Message-ID: <w1@x>\r\n\r\nvoicemail"
    wid = store.record_queued(ref(30), raw, len(raw), None)
    assert wid is not None and store.record_queued(ref(30), raw, len(raw), None) is None
    assert store.seen("alice", "INBOX", 7, 30)
    item = store.get_work(wid)
    assert item is not None and item.raw == raw and item.state == "queued"
    assert store.start_work(wid)
    m = voicemail()
    results: list[str] = []
    barrier = threading.Barrier(3)

    def finish() -> None:
        barrier.wait()
        results.append(store.record_work_done(wid, [m] if not results else [voicemail()], [mail(m.id)]))

    threads = [threading.Thread(target=finish) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["duplicate", "duplicate", "recorded"]
    assert not store.start_work(wid)
    done = store.get_work(wid)
    assert done is not None and done.state == "done" and done.raw == b""
    assert count(store, "messages") == 1 and count(store, "outbox") == 1
    with store._db.engine.connect() as conn:
        assert conn.execute(text("SELECT state FROM ledger")).scalar_one() == "done"
    assert store.work_counts() == {"done": 1}


def test_rotation_reseals_work_items(store: Store, key_path: Path, ring: Keyring) -> None:  # noqa: F811
    raw = b"Message-ID: <w2@x>\r\n\r\nsealed"
    wid = store.record_queued(ref(31), raw, len(raw), None)
    assert wid is not None
    result = rotate_keys(store, key_path)
    assert result.resealed == 1 and store.key_ids_in_use() == {result.active}
    item = store.get_work(wid)
    assert item is not None and item.raw == raw
