"""The audit trail: records at every read, send, rotation and login; `audit --verify` finds removed and altered ones."""

from __future__ import annotations

import itertools
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgutil import pg_session_url, pg_url  # noqa: F401  (fixtures)

from mailvoice.crypto import Sealer, create_keyring
from mailvoice.store import Envelope, MessageContent, NewMessage, NewOutgoing, Store

SECRET = "Call me about the Zanzibar contract"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    ring = create_keyring(tmp_path / "keys.json")
    with Store.open(f"sqlite:///{tmp_path / 'mv.db'}", Sealer(ring)) as s:
        yield s


def _fill(store: Store, n: int = 5) -> None:
    for i in range(n):
        store.audit("message.shown", f"id{i:04d}", actor="cli:alice")


def _sql(db: Path, statement: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(statement)


def test_an_intact_chain_verifies(store: Store) -> None:
    _fill(store)
    check = store.audit_verify()
    assert check.ok and check.records == 5
    records = store.audit_records()
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert all(b.prev == a.hash for a, b in itertools.pairwise(records))
    assert check.head == records[-1].hash


@pytest.mark.parametrize(
    ("statement", "finding"),
    [
        ("UPDATE audit SET target = 'id9999' WHERE seq = 3", "record 3 was altered"),
        ("UPDATE audit SET actor = 'cli:mallory' WHERE seq = 1", "record 1 was altered"),
        ("UPDATE audit SET at = '2020-01-01 00:00:00.000000' WHERE seq = 2", "record 2 was altered"),
        ("DELETE FROM audit WHERE seq = 3", "records 3..3 are missing"),
        ("DELETE FROM audit WHERE seq = 5", "records 5..5 at the end are missing"),
        ("DELETE FROM audit WHERE seq = 1", "record 2 does not follow"),
    ],
)
def test_verify_finds_an_edited_database(store: Store, tmp_path: Path, statement: str, finding: str) -> None:
    _fill(store)
    _sql(tmp_path / "mv.db", statement)
    check = store.audit_verify()
    assert not check.ok
    assert any(finding in p for p in check.problems), check.problems


def test_a_removed_last_record_stays_visible_after_more_appends(store: Store, tmp_path: Path) -> None:
    _fill(store)
    _sql(tmp_path / "mv.db", "DELETE FROM audit WHERE seq = 5")
    store.audit("message.listed", "kind=any count=0", actor="cli:alice")  # seq 5 is not given out again
    assert [r.seq for r in store.audit_records()][-1] == 6
    assert any("records 5..5 are missing" in p for p in store.audit_verify().problems)


def test_a_sent_mail_is_audited_in_the_same_transaction(store: Store) -> None:
    mail = NewOutgoing(
        "<x@mailvoice>", b"Subject: " + SECRET.encode() + b"\r\n\r\nbody", Envelope("a@x.org", ("b@x.org",))
    )
    store.record(outgoing=[mail])
    assert store.mark_sending(mail.id)
    store.mark_sent(mail.id)
    (rec,) = store.audit_records()
    assert (rec.action, rec.target, rec.outcome) == ("mail.sent", mail.id, "ok")


def test_bursts_of_failed_logins_and_reads_warn(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mailvoice.store.audit")
    for _ in range(5):
        store.audit("login.failed", "/ws bad or missing token", actor="web:127.0.0.9", outcome="failed")
    assert "audit:" not in caplog.text  # a few typos are not a burst
    store.audit("login.failed", "/ws bad or missing token", actor="web:127.0.0.9", outcome="failed")
    assert "6 login.failed records by web:127.0.0.9" in caplog.text
    caplog.clear()
    for i in range(51):
        store.audit("message.shown", f"id{i}", actor="cli:bob")
    assert "51 message.shown records by cli:bob" in caplog.text


def _mailvoice(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailvoice", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_cli_reads_are_audited_and_verify_fails_on_a_tampered_trail(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVOICE_")}
    env["MAILVOICE_GENERAL__DATA_DIR"] = str(tmp_path / "data")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    assert _mailvoice(env, "init").returncode == 0
    from mailvoice.crypto import load_keyring

    message = NewMessage("voicemail", "main", MessageContent(text=SECRET, caller="+15550100"))
    db = tmp_path / "data" / "mailvoice.db"
    with Store.open(f"sqlite:///{db}", Sealer(load_keyring(tmp_path / "data" / "keys.json"))) as s:
        s.record(messages=[message])
    assert _mailvoice(env, "show", message.id[:8]).returncode == 0
    assert _mailvoice(env, "messages", "--json").returncode == 0
    assert _mailvoice(env, "speak", "--message", message.id, "-o", str(tmp_path / "out.wav")).returncode == 0
    assert _mailvoice(env, "keys", "rotate").returncode == 0
    listed = _mailvoice(env, "audit", "--json")
    assert listed.returncode == 0, listed.stderr
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["action"], r["target"]) for r in records] == [
        ("message.shown", message.id),
        ("message.listed", "kind=any count=1"),
        ("audio.exported", message.id),
        ("keys.rotated", records[-1]["target"]),
    ]
    assert records[-1]["target"].startswith("active=") and "resealed=" in records[-1]["target"]
    assert all(r["actor"].startswith("cli:") for r in records)
    assert SECRET not in listed.stdout and "Zanzibar" not in db.read_bytes().decode("latin-1")
    assert _mailvoice(env, "audit", "--since", "1h", "--json").stdout == listed.stdout
    assert _mailvoice(env, "audit", "--since", "2999-01-01", "--json").stdout == ""
    ok = _mailvoice(env, "audit", "--verify")
    assert ok.returncode == 0 and "intact: 4 record(s)" in ok.stderr
    _sql(db, "UPDATE audit SET action = 'message.listed' WHERE seq = 1")  # hide that the message was shown
    bad = _mailvoice(env, "audit", "--verify")
    assert bad.returncode == 1
    assert "record 1 was altered" in bad.stderr and "BROKEN" in bad.stderr
    verdict = json.loads(_mailvoice(env, "audit", "--verify", "--json").stdout)
    assert verdict["ok"] is False and verdict["records"] == 4


@pytest.mark.scale
def test_postgres_chain_is_one_under_concurrent_appends_and_refuses_edits(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    import threading

    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    ring = create_keyring(tmp_path / "keys.json")
    stores = [Store.open(pg_url, Sealer(ring)) for _ in range(4)]
    try:

        def append(s: Store, who: str) -> None:
            for i in range(10):
                s.audit("message.shown", f"id{i}", actor=who)

        threads = [threading.Thread(target=append, args=(s, f"cli:u{n}")) for n, s in enumerate(stores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        check = stores[0].audit_verify()
        assert check.ok and check.records == 40, check.problems
        engine = create_engine(pg_url)
        try:
            for statement in ("UPDATE audit SET target = 'x' WHERE seq = 3", "DELETE FROM audit WHERE seq = 3"):
                with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                    conn.execute(text(statement))
        finally:
            engine.dispose()
        assert stores[0].audit_verify().ok
    finally:
        for s in stores:
            s.close()
