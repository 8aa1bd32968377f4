"""Maildir source on real directories: baseline, new/ and cur/, acknowledge by info letter, renames, waiting."""

from __future__ import annotations

import os
import threading
import time
from datetime import date
from pathlib import Path

import pytest
from servers import MailUser

from mailvoice.config import MaildirSettings
from mailvoice.errors import SourceError
from mailvoice.mail.imap import ImapSource
from mailvoice.mail.maildir import MaildirSource, done_letter, split_name
from mailvoice.mail.smtp import deliver_to_maildir
from mailvoice.mail.source import MemoryCursorStore


def msg(n: int) -> bytes:
    return f"Subject: voicemail {n}\r\nMessage-ID: <m{n}@example.org>\r\n\r\nbody {n}\r\n".encode()


def make_maildir(path: Path) -> Path:
    for sub in ("new", "cur", "tmp"):
        (path / sub).mkdir(parents=True)
    return path


def put_old(folder: Path, n: int, *, sub: str = "cur", flags: str = "S", age: float = 86400.0) -> Path:
    """A message delivered `age` seconds ago, as a mail client left it."""
    name = f"{int(time.time() - age)}.M{n}P1.host"
    path = folder / sub / (f"{name}:2,{flags}" if sub == "cur" else name)
    path.write_bytes(msg(n))
    return path


def open_source(folder: Path, store: MemoryCursorStore | None = None, **kw: object) -> MaildirSource:
    src = MaildirSource(MaildirSettings(name="local", path=folder), store or MemoryCursorStore(), **kw)  # type: ignore[arg-type]
    src.connect()
    return src


def nums(items: list) -> list[int]:  # type: ignore[type-arg]
    return [int(i.raw.split(b"<m")[1].split(b"@")[0]) for i in items]


def test_baseline_skips_old_mail_and_since_takes_it(tmp_path: Path) -> None:
    folder = make_maildir(tmp_path / "Maildir")
    put_old(folder, 1)
    put_old(folder, 2, sub="new")
    src = open_source(folder)
    assert src.fetch_new() == []
    deliver_to_maildir(msg(3), folder)
    [item] = src.fetch_new()
    assert item.raw == msg(3) and item.ref.key and item.ref.uid is None and item.ref.uidvalidity == 0
    assert src.fetch_new() == []  # once per session
    backfill = open_source(folder, since=date.fromtimestamp(time.time() - 3 * 86400))
    assert nums(backfill.fetch_new()) == [1, 2, 3]


def test_acknowledge_moves_to_cur_keeps_flags_never_marks_seen(tmp_path: Path) -> None:
    folder = make_maildir(tmp_path / "Maildir")
    store = MemoryCursorStore()
    src = open_source(folder, store)
    fresh = deliver_to_maildir(msg(1), folder)
    read = put_old(folder, 2, flags="FS", age=-5)  # delivered after the baseline, already read and flagged
    items = src.fetch_new()
    assert nums(items) == [1, 2]
    for item in items:
        src.acknowledge(item.ref)
    names = sorted(os.listdir(folder / "cur"))
    assert os.listdir(folder / "new") == []
    assert f"{fresh.name}:2,z" in names  # done letter only: S (seen) is never set by us
    assert f"{split_name(read.name)[0]}:2,FSz" in names  # the user's flags are kept, letters stay sorted
    # A new session with the same store: nothing comes back.
    assert open_source(folder, store).fetch_new() == []


def test_unacknowledged_mail_comes_back_after_restart(tmp_path: Path) -> None:
    folder = make_maildir(tmp_path / "Maildir")
    store = MemoryCursorStore()
    src = open_source(folder, store)
    deliver_to_maildir(msg(1), folder)
    deliver_to_maildir(msg(2), folder)
    first, _second = src.fetch_new()
    src.acknowledge(first.ref)
    src.close()
    assert nums(open_source(folder, store).fetch_new()) == [2]


def test_renamed_by_a_mail_client_between_fetch_and_acknowledge(tmp_path: Path) -> None:
    folder = make_maildir(tmp_path / "Maildir")
    src = open_source(folder)
    path = deliver_to_maildir(msg(1), folder)
    [item] = src.fetch_new()
    moved = folder / "cur" / f"{path.name}:2,S"
    path.rename(moved)  # the user's client saw it and marked it read
    src.acknowledge(item.ref)
    assert os.listdir(folder / "cur") == [f"{path.name}:2,Sz"]
    # Gone entirely (deleted by the user): acknowledging is a no-op, not an error.
    (folder / "cur" / f"{path.name}:2,Sz").unlink()
    src.acknowledge(item.ref)


def test_wait_for_change_sees_a_delivery(tmp_path: Path) -> None:
    folder = make_maildir(tmp_path / "Maildir")
    src = open_source(folder, poll_interval=0.05)
    assert src.fetch_new() == []
    assert src.wait_for_change(0.3) is False
    timer = threading.Timer(0.2, deliver_to_maildir, args=(msg(1), folder))
    timer.start()
    assert src.wait_for_change(5) is True
    timer.join()
    assert nums(src.fetch_new()) == [1]


def test_not_a_maildir_and_foreign_refs_are_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(SourceError, match=r"not a Maildir.*new/"):
        open_source(tmp_path / "plain")
    src = open_source(make_maildir(tmp_path / "Maildir"))
    deliver_to_maildir(msg(1), tmp_path / "Maildir")
    [item] = src.fetch_new()
    from dataclasses import replace

    with pytest.raises(ValueError):
        src.acknowledge(replace(item.ref, key="../../etc/passwd"))
    with pytest.raises(ValueError):
        src.acknowledge(replace(item.ref, account="other"))


def test_too_large_is_reported_without_body(tmp_path: Path) -> None:
    folder = make_maildir(tmp_path / "Maildir")
    src = open_source(folder, max_message_bytes=10)
    deliver_to_maildir(msg(1), folder)
    [item] = src.fetch_new()
    assert item.too_large and item.raw == b"" and item.size == len(msg(1))


def test_done_letter_follows_dovecot_keywords(tmp_path: Path) -> None:
    folder = make_maildir(tmp_path / "Maildir")
    assert done_letter(folder) == "z"
    (folder / "dovecot-keywords").write_text("0 $Junk\n1 $MailvoiceDone\n")
    assert done_letter(folder) == "b"
    (folder / "dovecot-keywords").write_text("0 $Junk\n25 $Work\n")
    assert done_letter(folder) is None  # 'z' is someone else's keyword: mark nothing, rely on the ledger
    src = open_source(folder)
    path = deliver_to_maildir(msg(1), folder)
    [item] = src.fetch_new()
    src.acknowledge(item.ref)
    assert os.listdir(folder / "cur") == [f"{path.name}:2,"]


@pytest.mark.servers
def test_maildir_and_imap_agree_on_done_through_dovecot(mail_user: MailUser) -> None:
    """The same mailbox seen by our IMAP source and, on disk, by our Maildir source."""
    folder = mail_user.server.maildir(mail_user.user)
    store = MemoryCursorStore()
    imap = ImapSource(mail_user.account(), MemoryCursorStore())
    imap.connect()
    maildir: MaildirSource | None = None
    try:
        mail_user.append(msg(1))
        mail_user.append(msg(2))
        one, _two = imap.fetch_new()
        imap.acknowledge(one.ref)  # Dovecot writes $MailvoiceDone into dovecot-keywords and the file name
        maildir = MaildirSource(
            MaildirSettings(name="disk", path=folder), store, since=date.fromtimestamp(time.time() - 86400)
        )
        maildir.connect()
        assert maildir.letter == "a"
        [two] = maildir.fetch_new()
        assert nums([two]) == [2]
        maildir.acknowledge(two.ref)
        client = mail_user.client()
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags(client.search(["ALL"]))
        client.logout()
        assert all(b"$MailvoiceDone" in f for f in flags.values())  # our Maildir mark is Dovecot's keyword
        assert all(b"\\Seen" not in f for f in flags.values())
    finally:
        imap.close()
