"""Disk full and a locked database, on the real servers: nothing acknowledged while failing, nothing lost, a clear
error, and recovery once the space or the lock is back.

The data dir is a small tmpfs the test mounts (we run as root; skipped, saying why, when mount is refused). The mail
comes from the session's Dovecot and goes to aiosmtpd or the local delivery folder; the voicemail is a real
recording (tests/data/real) transcribed by the real model.
"""

from __future__ import annotations

import asyncio
import email
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from email.policy import default as default_policy
from pathlib import Path

import pytest
from faults import SmallDisk
from mailcorpus import asterisk_mail
from servers import MailUser, SmtpServer
from speech import whisper_engine

from mailvoice.commands import open_store
from mailvoice.config import GeneralSettings, Settings, SmtpSettings
from mailvoice.crypto import create_keyring
from mailvoice.errors import StoreError
from mailvoice.runner import Runner, Transcriber, build_bindings
from mailvoice.store import Store

pytestmark = [pytest.mark.servers, pytest.mark.slow]

RECORDING = Path(__file__).parent / "data" / "real" / "cards-001.wav"  # "ten of clubs"
DONE = b"$MailvoiceDone"


def voicemail(msgid: str) -> bytes:
    return asterisk_mail(audio=RECORDING.read_bytes(), msgid=msgid)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    small = SmallDisk(tmp_path / "data", 8 << 20)
    why = small.mount()
    if why:
        pytest.skip(f"cannot mount a tmpfs for the disk-full tests ({why}); they need root (mount -t tmpfs)")
    try:
        yield small
    finally:
        small.unmount()


def _settings(data_dir: Path, mail_user: MailUser, smtp: SmtpSettings | None = None) -> Settings:
    account = mail_user.account(name="work", address=f"{mail_user.user}@example.org", idle=False)
    return Settings(general=GeneralSettings(data_dir=data_dir), smtp=smtp or SmtpSettings(), accounts=(account,))


def _open(settings: Settings) -> tuple[Store, Runner]:
    create_keyring(settings.general.resolved_key_file())
    store = open_store(settings)
    return store, Runner(settings, store, transcriber=Transcriber(settings, whisper_engine()))


def _flags(mail_user: MailUser) -> list[frozenset[bytes]]:
    client = mail_user.client()
    try:
        client.select_folder("INBOX", readonly=True)
        return [frozenset(f) for f in client.get_flags(client.search("ALL")).values()]
    finally:
        client.logout()


def _integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_disk_full_during_the_commit_acknowledges_nothing_and_recovers(
    disk: SmallDisk, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    settings = _settings(disk.path, mail_user, smtp_server.settings(retry_base=0.5, retry_cap=1.0))
    store, runner = _open(settings)
    try:
        asyncio.run(runner.run_once())  # first contact: the baseline
        mail_user.append(voicemail("<vm-full@pbx.example.com>"))

        binding = build_bindings(settings, store)[0]
        source = binding.open()
        source.connect()
        try:
            (item,) = source.fetch_new(10)
            disk.fill()  # after the fetch, before the commit: the stages run, the commit cannot be written
            with pytest.raises(StoreError) as failed:
                runner.pipeline.process(item, binding.ctx)
        finally:
            source.close()
        message = str(failed.value)
        assert "disk is full" in message and "nothing was recorded" in message, message
        assert str(settings.general.data_dir) in message  # names the store at fault

        # the whole run: that source stops before acknowledging anything, counts the error, and the run goes on
        stats = asyncio.run(runner.run_once())
        assert stats.errors >= 1 and stats.delivered == 0, stats
        assert _flags(mail_user) == [frozenset()], "acknowledged at the server while the store could not commit"
        assert smtp_server.messages == []
        assert store.list_messages() == ()

        disk.free()
        asyncio.run(runner.run_once())
        asyncio.run(runner.run_once())
        assert len(smtp_server.messages) == 1
        sent = email.message_from_bytes(smtp_server.messages[0].raw, policy=default_policy)
        assert sent["In-Reply-To"] == "<vm-full@pbx.example.com>"
        assert [DONE in f for f in _flags(mail_user)] == [True]
        assert len(store.list_messages()) == 1
    finally:
        store.close()
    assert _integrity(disk.path / "mailvoice.db") == "ok"


def test_disk_full_during_an_outbox_write_keeps_the_mail_and_never_sends_it_twice(
    disk: SmallDisk, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    settings = _settings(disk.path, mail_user, smtp_server.settings(retry_base=0.5, retry_cap=1.0))
    store, runner = _open(settings)
    try:
        asyncio.run(runner.run_once())
        smtp_server.stop()  # the transcript waits in the outbox
        mail_user.append(voicemail("<vm-outbox-full@pbx.example.com>"))
        asyncio.run(runner.run_once())
        (queued,) = store.list_outbox()
        assert queued.state == "pending" and [DONE in f for f in _flags(mail_user)] == [True]
        smtp_server.start()
        time.sleep(1.1)  # past the retry delay

        disk.fill()  # the outbox cannot even claim the mail: nothing is sent, it stays queued
        with pytest.raises(StoreError, match="disk is full"):
            asyncio.run(runner.outbox.flush())
        assert smtp_server.messages == [] and store.get_outgoing(queued.id).state == "pending"
        disk.free()

        accept = smtp_server.handler.handle_DATA

        async def accept_then_fill(server: object, session: object, envelope: object) -> str:
            reply = await accept(server, session, envelope)
            disk.fill()  # the server took the mail; now the outbox cannot write down that it did
            return reply

        smtp_server.handler.handle_DATA = accept_then_fill  # type: ignore[method-assign]
        with pytest.raises(StoreError, match="disk is full"):
            asyncio.run(runner.outbox.flush())
        smtp_server.handler.handle_DATA = accept  # type: ignore[method-assign]
        assert len(smtp_server.messages) == 1
        with pytest.raises(StoreError, match="disk is full"):  # still full: the next flush says so again
            asyncio.run(runner.outbox.flush())

        disk.free()
        asyncio.run(runner.outbox.flush())  # the daemon's next flush, no restart: it records what happened
        assert store.get_outgoing(queued.id).state == "sent"
        asyncio.run(runner.run_once())  # and a restart finds nothing left to send
        assert len(smtp_server.messages) == 1, "the mail the server had accepted was sent again"
    finally:
        store.close()
    assert _integrity(disk.path / "mailvoice.db") == "ok"


LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")  # the write lock, as another mailvoice (or a sqlite3 shell) would hold it
conn.execute("CREATE TABLE IF NOT EXISTS other_writer (x INTEGER)")
conn.execute("INSERT INTO other_writer VALUES (1)")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


class Locker:
    """Another process holding the store's write lock until release()."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
        assert self.proc.wait(timeout=30) == 0
        self.proc.stdin.close()
        self.proc.stdout.close()


def test_store_locked_by_another_process_waits_then_fails_clearly_and_loses_nothing(
    tmp_path: Path, mail_user: MailUser, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from mailvoice.store import db as store_db

    # A short busy timeout (30 s in production) keeps the test short; the behaviour is the same.
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_S", 2.0)
    kept = tuple(p for p in store_db._PRAGMAS if "busy_timeout" not in p)
    monkeypatch.setattr(store_db, "_PRAGMAS", (*kept, "PRAGMA busy_timeout=2000"))
    settings = _settings(tmp_path / "data", mail_user, smtp_server.settings(retry_base=0.5, retry_cap=1.0))
    db = tmp_path / "data" / "mailvoice.db"
    store, runner = _open(settings)
    try:
        asyncio.run(runner.run_once())
        mail_user.append(voicemail("<vm-locked-1@pbx.example.com>"))

        # Held for less than the busy timeout: the commit waits for it, then goes through.
        short = Locker(db)
        timer = threading.Timer(1.0, short.release)
        timer.start()
        asyncio.run(runner.run_once())
        timer.join()
        assert len(smtp_server.messages) == 1 and [DONE in f for f in _flags(mail_user)] == [True]

        # Held for longer: a clear error, nothing acknowledged or sent, and the next run does it once.
        mail_user.append(voicemail("<vm-locked-2@pbx.example.com>"))
        long = Locker(db)
        try:
            with pytest.raises(StoreError) as failed:
                asyncio.run(runner.run_once())
            assert "database is locked" in str(failed.value) and "another process" in str(failed.value)
            assert [DONE in f for f in _flags(mail_user)] == [True, False]
            assert len(smtp_server.messages) == 1
        finally:
            long.release()
        asyncio.run(runner.run_once())
        asyncio.run(runner.run_once())
        replies = sorted(str(email.message_from_bytes(m.raw)["In-Reply-To"]) for m in smtp_server.messages)
        assert replies == ["<vm-locked-1@pbx.example.com>", "<vm-locked-2@pbx.example.com>"]
        assert [DONE in f for f in _flags(mail_user)] == [True, True]
    finally:
        store.close()
    with sqlite3.connect(db) as conn:  # the other writer's rows are there too: nobody lost a write
        assert conn.execute("SELECT count(*) FROM other_writer").fetchone()[0] == 2
