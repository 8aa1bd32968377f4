"""A plaintext canary sealed through every store API never reaches the disk: database, WAL, SHM, temp dir, log."""

from __future__ import annotations

import base64
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from servers import MailUser, SmtpServer
from sqlalchemy import text

from mailvoice.crypto import Sealer, create_keyring
from mailvoice.store import MessageContent, NewMessage, Store

# Runs in a child with a fresh TMPDIR (SQLite reads it once per process) and is SIGKILLed at the end,
# so the WAL and SHM stay on disk un-checkpointed, as after a crash.
CHILD = r"""
import logging, os, signal, sys
from pathlib import Path
from mailvoice.crypto import Sealer, create_keyring
from mailvoice.store import *

data, keys, log_file, control = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
canary = sys.stdin.read()
logging.basicConfig(filename=log_file, level=logging.DEBUG)
create_keyring(keys)
from mailvoice.crypto import load_keyring
store = Store.open(f"sqlite:///{data / 'mailvoice.db'}", Sealer(load_keyring(keys)))

def ref(uid):
    return SourceRef(control, "INBOX", message_id_hash(f"<{uid}@x>", b""), content_hash([], str(uid).encode()),
                     uidvalidity=1, uid=uid)

content = MessageContent(text=f"transcript {canary}", caller=f"caller {canary}", subject=f"Subject {canary}",
                         sender=f"{canary}@example.org", recipients=(f"to-{canary}@example.org",),
                         audio_filename=f"{canary}.ogg")
msg = NewMessage("voicemail", control, content, audio=f"audio {canary}".encode())
out = NewOutgoing("<a@mailvoice>", f"Subject: {canary}\r\n\r\n{canary}\r\n".encode(),
                  Envelope(f"{canary}@from.org", (f"{canary}@to.org",)), message_id=msg.id)
assert store.record_processed(ref(1), [msg], [out]) == "recorded"
assert store.record_quarantined(ref(2), "mime: too deep", f"From: x\r\n\r\n{canary}".encode("utf-16")) == "recorded"
q = store.list_quarantine()[0]
retry = NewMessage("text", control, MessageContent(text=canary.encode("utf-8").decode("utf-8")))
assert store.record_retried(q.id, [retry]) == "recorded"
gone = NewMessage("dictation", control, MessageContent(text=f"deleted {canary}"))
store.record([gone])
assert store.delete_message(gone.id)
store.mark_sending(out.id)
store.mark_retry(out.id, utcnow(), "451 try later")
rotate_keys(store, keys)
assert store.get_message(msg.id).content.subject == f"Subject {canary}"
assert canary in store.due(utcnow())[0].raw.decode()
os.kill(os.getpid(), signal.SIGKILL)
"""


def _forms(phrase: str) -> dict[str, bytes]:
    raw = phrase.encode("utf-8")
    forms = {
        "utf-8": raw,
        "utf-16-le": phrase.encode("utf-16-le"),
        "utf-16-be": phrase.encode("utf-16-be"),
        "hex": raw.hex().encode(),
        "lower": phrase.lower().encode(),
    }
    for shift in range(3):  # base64 at every alignment; the edges mix with neighbouring bytes
        forms[f"base64+{shift}"] = base64.b64encode(b"\0" * shift + raw)[4:-4]
    return forms


def _hits(paths: list[Path], phrase: str) -> list[str]:
    found = []
    for path in paths:
        data = path.read_bytes()
        found += [f"{path.name}: {name}" for name, form in _forms(phrase).items() if form in data]
    return found


def test_canary_absent_after_crash(tmp_path: Path) -> None:
    canary = f"CANARY-{secrets.token_hex(8)}-ZEBRA-PHRASE"
    control = f"control-{secrets.token_hex(6)}"  # an account name: stored in the clear on purpose
    data, tmp, keys, log = tmp_path / "data", tmp_path / "tmp", tmp_path / "keys" / "keys.json", tmp_path / "log"
    tmp.mkdir()
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp), "SQLITE_TMPDIR": str(tmp), "HOME": str(tmp_path)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), str(keys), str(log), control],
        input=canary,
        text=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    wal = data / "mailvoice.db-wal"
    assert wal.exists() and wal.stat().st_size > 0 and (data / "mailvoice.db-shm").exists()
    files = [p for p in (data, tmp, keys.parent, tmp_path) for p in p.rglob("*") if p.is_file()]
    store_files = [p for p in files if p.parent == data]
    assert _hits(store_files, control), "control string not found: the grep would miss the canary too"
    assert log.stat().st_size > 0
    assert _hits(files, canary) == []


def test_secure_delete_wipes_deleted_rows(tmp_path: Path) -> None:
    marker = f"ERASE-{secrets.token_hex(8)}"  # in the clear (account name), so only secure_delete can hide it
    db = tmp_path / "mailvoice.db"
    ring = create_keyring(tmp_path / "keys.json")
    store = Store.open(f"sqlite:///{db}", Sealer(ring))
    with store._db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    victim = NewMessage("text", marker, MessageContent(text="x" * 300))
    store.record([victim, NewMessage("text", "keeper", MessageContent(text="y"))])
    checkpoint = text("PRAGMA wal_checkpoint(TRUNCATE)")
    with store._db.engine.connect() as conn:
        conn.execute(checkpoint)
    assert marker.encode() in db.read_bytes()
    assert store.delete_message(victim.id)
    with store._db.engine.connect() as conn:
        conn.execute(checkpoint)
    store.close()
    assert marker.encode() not in db.read_bytes()
    for suffix in ("-wal", "-shm"):
        side = db.with_name(db.name + suffix)
        assert not side.exists() or marker.encode() not in side.read_bytes()


def test_without_secure_delete_the_row_would_remain(tmp_path: Path) -> None:
    """The control for the test above: plain SQLite keeps a deleted row's bytes in the file."""
    marker = f"ERASE-{secrets.token_hex(8)}".encode()
    db = tmp_path / "plain.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA secure_delete=OFF")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    conn.execute("INSERT INTO t (v) VALUES (?), (?)", (marker + b"x" * 300, b"keep"))
    conn.execute("DELETE FROM t WHERE id = 1")
    conn.close()
    assert marker in db.read_bytes()


@pytest.mark.servers
@pytest.mark.slow
def test_filenames_subjects_and_senders_never_reach_disk_or_logs(
    tmp_path: Path, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    """The real CLI at -vv, a crash mid-run included: a delivered and a quarantined voicemail whose filename, subject
    and sender are canaries leave no trace in the database, WAL, TMPDIR or logs (issue 16: the quarantine reason held
    the filename in clear, and a debug line named the file)."""
    from mailcorpus import audio_part, message
    from test_mailloop_e2e import baseline, new_bot, transcript_mails, voicemail_wav

    tag = secrets.token_hex(6).upper()
    canaries = {
        "filename": f"CALLER5551234{tag}FILE",
        "subject": f"SUBJECT{tag}SECRET",
        "sender": f"SENDER{tag}NAME",
        "sender address": f"addr{tag.lower()}@pbx.example.com",
    }

    def voicemail(audio: bytes, msgid: str) -> bytes:
        headers = [
            ("From", f'"{canaries["sender"]}" <{canaries["sender address"]}>'),
            ("To", "bob@example.com"),
            ("Subject", f"Voicemail {canaries['subject']}"),
            ("Date", "Fri, 01 Mar 2024 10:15:03 +0100"),
            ("Message-ID", msgid),
        ]
        return message(headers, [audio_part(audio, "audio/x-wav", f"{canaries['filename']}.wav")])

    tmpdir, logs = tmp_path / "tmp", tmp_path / "logs"
    tmpdir.mkdir()
    logs.mkdir()
    bot = new_bot(tmp_path, mail_user, smtp_server)
    bot.env["TMPDIR"] = str(tmpdir)
    baseline(bot)
    mail_user.append(voicemail(voicemail_wav(), "<vm-canary-good@pbx.example.com>"))
    mail_user.append(voicemail(b"RIFF\x24\x00\x00\x00WAVEfmt not audio at all" * 3, "<vm-canary-bad@pbx.example.com>"))
    for i, crash in enumerate(("stored", None)):
        proc = bot.run("-vv", "run", "--once", crash_at=crash)
        (logs / f"run{i}.log").write_text(proc.stdout + proc.stderr)
        if crash:  # the data dir as the crash left it, WAL and SHM un-checkpointed
            shutil.copytree(bot.home, tmp_path / "after-crash")
    listing = bot.run("-vv", "quarantine", "list")
    (logs / "list.log").write_text(listing.stderr)  # stdout shows the owner the reason: stderr is the log

    assert len(transcript_mails(smtp_server)) == 1
    assert canaries["subject"] in smtp_server.messages[0].raw.decode("ascii", "replace")  # they really went through
    assert any(canaries["filename"] in r.raw.decode("ascii", "replace") for r in smtp_server.messages)
    store_files = [p for d in (bot.home, tmp_path / "after-crash") for p in d.rglob("*") if p.is_file()]
    assert any(p.name.endswith("-wal") for p in store_files), "no WAL left by the crash: the grep would miss it"
    assert _hits(store_files, "work"), "the account name is stored in clear: a grep that misses it misses the canary"
    files = store_files + [p for p in (tmpdir, logs) for p in p.rglob("*") if p.is_file()]
    assert (logs / "run1.log").stat().st_size > 0
    found = {what: _hits(files, phrase) for what, phrase in canaries.items()}
    lines = [ln for f in logs.iterdir() for ln in f.read_text().splitlines() if any(c in ln for c in canaries.values())]
    assert found == {what: [] for what in canaries}, "\n".join(ln[:300] for ln in lines[:20])
