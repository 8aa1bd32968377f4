"""IMAP source against a real Dovecot on 127.0.0.1: TLS, baseline, cursor quirks, UID changes, IDLE, reconnects."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from servers import MailUser

from mailvoice.backoff import Backoff
from mailvoice.config import AccountSettings
from mailvoice.errors import ConfigError, SourceError
from mailvoice.mail.imap import DONE_KEYWORD, ImapSource, is_transient
from mailvoice.mail.source import MemoryCursorStore, SourceItem

pytestmark = pytest.mark.servers


def msg(n: int, body: str = "hello") -> bytes:
    return (
        f"From: caller{n}@example.org\r\nTo: me@example.org\r\nSubject: voicemail {n}\r\n"
        f"Message-ID: <msg-{n}@example.org>\r\n\r\n{body} {n}\r\n"
    ).encode()


def num(raw: bytes) -> int:
    """The message number in a Message-ID written by msg()."""
    line = next(ln for ln in raw.split(b"\r\n") if ln.startswith(b"Message-ID:"))
    return int(line.split(b"msg-")[1].split(b"@")[0])


def ids(items: list[SourceItem]) -> list[int]:
    return [num(item.raw) for item in items]


def source(user: MailUser, store: MemoryCursorStore | None = None, **kw: object) -> ImapSource:
    since = kw.pop("since", None)
    max_bytes = kw.pop("max_message_bytes", None)
    src = ImapSource(
        user.account(**kw),
        store if store is not None else MemoryCursorStore(),
        since=since,  # type: ignore[arg-type]
        **({"max_message_bytes": max_bytes} if max_bytes else {}),
    )  # type: ignore[arg-type]
    src.connect()
    return src


def flags_of(user: MailUser, uid: int, folder: str = "INBOX") -> set[bytes]:
    client = user.client()
    try:
        client.select_folder(folder, readonly=True)
        return set(client.get_flags([uid]).get(uid, ()))
    finally:
        client.logout()


# ------------------------------------------------------------------------------------------- TLS and config


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_tls_modes_fetch_new_mail_byte_exact(mail_user: MailUser, tls: str) -> None:
    src = source(mail_user, tls=tls)
    try:
        assert src.fetch_new() == []
        uid = mail_user.append(msg(1))
        [item] = src.fetch_new()
        assert item.raw == msg(1)
        assert item.ref.uid == uid and item.ref.folder == "INBOX" and item.ref.account == src.name
        assert item.size == len(msg(1)) and not item.too_large
        assert item.internal_date is not None and item.internal_date.tzinfo is not None
        assert b"\\Seen" not in flags_of(mail_user, uid)  # BODY.PEEK[]: fetching never marks read
    finally:
        src.close()


def test_system_cas_reject_test_certificate_and_say_ca_file(mail_user: MailUser) -> None:
    src = ImapSource(mail_user.account(ca_file=None), MemoryCursorStore())
    with pytest.raises(SourceError) as err:
        src.connect()
    text = str(err.value)
    assert "ca_file" in text and f"127.0.0.1:{mail_user.imaps_port}" in text and src.name in text
    assert not is_transient(err.value)


def test_plaintext_only_for_loopback_with_explicit_opt_in(mail_user: MailUser) -> None:
    remote = AccountSettings(
        name="r", host="mail.example.org", username="u", password_env="X", tls="none", allow_plaintext=True
    )
    with pytest.raises(ConfigError, match="loopback"):
        ImapSource(remote, MemoryCursorStore())
    with pytest.raises(ConfigError, match="allow_plaintext"):
        ImapSource(mail_user.account(tls="none"), MemoryCursorStore())
    src = source(mail_user, tls="none", allow_plaintext=True)
    try:
        mail_user.append(msg(1))
        assert ids(src.fetch_new()) == [1]
    finally:
        src.close()


def test_wrong_password_is_permanent_and_never_echoed(mail_user: MailUser, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mail_user.password_env, "not-the-password-x1")
    backoff = Backoff(base=1.0, cap=1.0)
    src = ImapSource(mail_user.account(), MemoryCursorStore(), backoff=backoff)
    with pytest.raises(SourceError) as err:
        src.reconnect(max_attempts=5)
    assert backoff.attempt == 0  # no backoff loop on a permanent error: not one retry delay was drawn
    assert "login" in str(err.value) and mail_user.password_env in str(err.value)
    assert "not-the-password-x1" not in str(err.value)


@pytest.mark.parametrize("bad", ["INBOX\r\nA1 DELETE INBOX", 'IN"BOX', "a\x00b", ""])
def test_folder_names_that_could_inject_commands_are_refused(mail_user: MailUser, bad: str) -> None:
    with pytest.raises(ConfigError, match="folder"):
        ImapSource(mail_user.account(folders=(bad,)), MemoryCursorStore())
    with pytest.raises(ConfigError, match="folder"):
        ImapSource(mail_user.account(after="move", move_to=bad), MemoryCursorStore())


# ------------------------------------------------------------------------------------------- cursor


def test_first_contact_baselines_from_uidnext_and_since_returns_old_mail(mail_user: MailUser) -> None:
    for n in (1, 2, 3):
        mail_user.append(msg(n))
    src = source(mail_user)
    try:
        assert src.fetch_new() == []
        mail_user.append(msg(4))
        assert ids(src.fetch_new()) == [4]
    finally:
        src.close()
    backfill = source(mail_user, since=date.today())
    try:
        assert ids(backfill.fetch_new()) == [1, 2, 3, 4]
    finally:
        backfill.close()


def test_dovecot_returns_last_message_again_but_fetch_new_does_not(mail_user: MailUser) -> None:
    src = source(mail_user)
    try:
        uid = mail_user.append(msg(1))
        assert ids(src.fetch_new()) == [1]
        # The quirk is real: UID SEARCH UID <last+1>:* answers with the last message.
        client = mail_user.client()
        client.select_folder("INBOX", readonly=True)
        assert client.search(["UID", f"{uid + 1}:*"]) == [uid]
        client.logout()
        assert src.fetch_new() == []
        assert src.fetch_new() == []
    finally:
        src.close()


def test_limit_and_cursor_never_pass_an_unacknowledged_message(mail_user: MailUser) -> None:
    store = MemoryCursorStore()
    src = source(mail_user, store)
    try:
        for n in (1, 2, 3):
            mail_user.append(msg(n))
        first = src.fetch_new(limit=2)
        assert ids(first) == [1, 2]
        assert ids(src.fetch_new(limit=2)) == [3]
        src.acknowledge(first[1].ref)  # 2 done; 1 and 3 not
    finally:
        src.close()
    # A restart (new session, same store) returns what was not acknowledged, and not what was.
    again = source(mail_user, store)
    try:
        assert ids(again.fetch_new()) == [1, 3]
    finally:
        again.close()


def test_acknowledged_mail_is_not_returned_after_uidvalidity_change(mail_user: MailUser) -> None:
    now = datetime.now(UTC)
    mail_user.append(msg(7), when=now - timedelta(days=3))  # old mail, before first contact
    mail_user.append(msg(8), when=now - timedelta(hours=2))  # old too; same or previous day as the baseline
    store = MemoryCursorStore()
    src = source(mail_user, store)
    try:
        mail_user.append(msg(1))
        mail_user.append(msg(2))
        items = src.fetch_new()
        src.acknowledge(items[0].ref)
        assert flags_of(mail_user, items[0].ref.uid or 0) == {DONE_KEYWORD.encode()}
    finally:
        src.close()
    mail_user.doveadm("mailbox update", "--uid-validity", "424242", "INBOX")
    after = source(mail_user, store)
    try:
        items = after.fetch_new()
        assert ids(items) == [2]  # 1 carries the keyword; 2 was never acknowledged
        assert items[0].ref.uidvalidity == 424242
        assert after.fetch_new() == []
        after.acknowledge(items[0].ref)
        saved = store.get(after.name, "INBOX")
        assert saved is not None and saved.uidvalidity == 424242
    finally:
        after.close()


@pytest.mark.parametrize("mark_done", ["keyword", "none"])
def test_uidlist_deleted_renumbers_under_same_uidvalidity(mail_user: MailUser, mark_done: str) -> None:
    store = MemoryCursorStore()
    src = source(mail_user, store, mark_done=mark_done)
    try:
        for n in (1, 2):
            mail_user.append(msg(n))
        old = src.fetch_new()
        for item in old:
            src.acknowledge(item.ref)
    finally:
        src.close()
    mail_user.uidlist_path().unlink()
    mail_user.append(msg(3))
    again = source(mail_user, store, mark_done=mark_done)
    try:
        items = again.fetch_new()
        assert {i.ref.uidvalidity for i in items} == {old[0].ref.uidvalidity}  # same UIDVALIDITY...
        if mark_done == "keyword":
            assert ids(items) == [3]  # ...and the keyword (kept in the file name) stops the repeats
        else:
            # ...and without a keyword the renumbered messages come back under new UIDs: only the ledger
            # (Message-ID + content hash) can tell they were done.
            assert ids(items) == [1, 2, 3]
            assert {i.ref.uid for i in items[:2]}.isdisjoint({i.ref.uid for i in old})
    finally:
        again.close()


def test_oversize_message_is_reported_without_its_body(mail_user: MailUser) -> None:
    src = source(mail_user, max_message_bytes=200)
    try:
        mail_user.append(msg(1, "x" * 500))
        mail_user.append(msg(2))
        big, small = src.fetch_new()
        assert big.too_large and big.raw == b"" and big.size > 200
        assert not small.too_large and ids([small]) == [2]
    finally:
        src.close()


# ------------------------------------------------------------------------------------------- acknowledge


def test_acknowledge_seen_and_move_and_delete(mail_user: MailUser) -> None:
    mail_user.append(msg(0))  # old mail, must survive everything below
    seen = source(mail_user, mark_done="seen")
    try:
        uid = mail_user.append(msg(1))
        [item] = seen.fetch_new()
        seen.acknowledge(item.ref)
        assert flags_of(mail_user, uid) == {b"\\Seen"}
    finally:
        seen.close()
    client = mail_user.client()
    client.create_folder("Done")
    client.logout()
    mover = source(mail_user, after="move", move_to="Done")
    try:
        mail_user.append(msg(2))
        [item] = mover.fetch_new()
        mover.acknowledge(item.ref)
    finally:
        mover.close()
    deleter = source(mail_user, after="delete", mark_done="none")
    try:
        mail_user.append(msg(3))
        [item] = deleter.fetch_new()
        deleter.acknowledge(item.ref)
    finally:
        deleter.close()
    client = mail_user.client()
    try:
        client.select_folder("INBOX", readonly=True)
        inbox = client.fetch(client.search(["ALL"]), ["BODY.PEEK[]"])
        assert sorted(num(d[b"BODY[]"]) for d in inbox.values()) == [0, 1]
        client.select_folder("Done", readonly=True)
        done = client.fetch(client.search(["ALL"]), ["BODY.PEEK[]", "FLAGS"])
        assert [d[b"BODY[]"] for d in done.values()] == [msg(2)]
        assert DONE_KEYWORD.encode() in next(iter(done.values()))[b"FLAGS"]
    finally:
        client.logout()


def test_acknowledge_from_an_earlier_session_still_marks(mail_user: MailUser) -> None:
    src = source(mail_user)
    try:
        uid = mail_user.append(msg(1))
        [item] = src.fetch_new()
        src.reconnect()
        src.acknowledge(item.ref)
        assert DONE_KEYWORD.encode() in flags_of(mail_user, uid)
    finally:
        src.close()


# ------------------------------------------------------------------------------------------- waiting


def test_idle_wakes_on_an_append(mail_user: MailUser) -> None:
    src = source(mail_user)
    try:
        assert src.uses_idle()
        src.fetch_new()
        assert src.wait_for_change(0.6) is False  # quiet mailbox: the wait ends at its timeout, saying so
        timer = threading.Timer(0.3, mail_user.append, args=(msg(1),))
        timer.start()
        assert src.wait_for_change(60) is True  # True only when IDLE announced it (a timeout answers False)
        timer.join()
        assert ids(src.fetch_new()) == [1]
        # Mail that landed before IDLE started is seen (Dovecot would not announce it in IDLE).
        mail_user.append(msg(2))
        assert src.wait_for_change(60) is True
        assert ids(src.fetch_new()) == [2]
    finally:
        src.close()


def test_idle_is_rearmed_and_still_sees_mail(mail_user: MailUser, monkeypatch: pytest.MonkeyPatch) -> None:
    import mailvoice.mail.imap as imap

    monkeypatch.setattr(imap, "REARM_IDLE_S", 0.3)
    src = source(mail_user)
    try:
        src.fetch_new()
        timer = threading.Timer(1.2, mail_user.append, args=(msg(1),))  # after a few re-arms
        timer.start()
        assert src.wait_for_change(10) is True
        timer.join()
        assert ids(src.fetch_new()) == [1]
    finally:
        src.close()


def test_several_folders_are_polled(mail_user: MailUser) -> None:
    client = mail_user.client()
    client.create_folder("Voicemail")
    client.logout()
    src = source(mail_user, folders=("INBOX", "Voicemail"), poll_interval=0.2)
    try:
        assert not src.uses_idle()
        assert src.fetch_new() == []
        assert src.wait_for_change(0.5) is False
        mail_user.append(msg(1), folder="Voicemail")
        assert src.wait_for_change(5) is True
        mail_user.append(msg(2))
        items = src.fetch_new()
        assert sorted(ids(items)) == [1, 2]
        assert {i.ref.folder for i in items} == {"INBOX", "Voicemail"}
        for item in items:
            src.acknowledge(item.ref)
        assert src.fetch_new() == []
    finally:
        src.close()


def test_dropped_connection_during_idle_raises_then_reconnects(mail_user: MailUser) -> None:
    src = source(mail_user)
    try:
        src.fetch_new()
        killer = threading.Timer(0.3, mail_user.server.doveadm, args=("kick", mail_user.user))
        killer.start()
        with pytest.raises(SourceError) as err:
            src.wait_for_change(300)  # a dead link must not look like a quiet mailbox (nor wait out its timeout)
        killer.join()
        assert is_transient(err.value)
        mail_user.append(msg(1))
        src.reconnect(max_attempts=3)
        assert ids(src.fetch_new()) == [1]
        assert mail_user.sessions() == 1
    finally:
        src.close()
    assert mail_user.sessions() == 0


def test_server_restart_mid_poll_reconnects_with_backoff(mail_user: MailUser) -> None:
    store = MemoryCursorStore()
    src = source(mail_user, store)
    try:
        mail_user.append(msg(1))
        [first] = src.fetch_new()
        mail_user.server.restart()
        with pytest.raises(SourceError):
            src.fetch_new()
        src.reconnect(max_attempts=5)
        mail_user.append(msg(2))
        # Not acknowledged before the drop: it comes back (nothing lost), and the new one too.
        assert ids(src.fetch_new()) == [1, 2]
        assert first.ref.uid is not None
    finally:
        src.close()


def test_reconnect_gives_up_after_max_attempts_on_a_dead_port(mail_user: MailUser) -> None:
    from servers import free_port

    from mailvoice.backoff import Backoff

    acct = dataclasses.replace(mail_user.account(), port=free_port())
    src = ImapSource(acct, MemoryCursorStore(), backoff=Backoff(base=0.01, cap=0.05))
    with pytest.raises(SourceError, match=f"127.0.0.1:{acct.port}"):
        src.reconnect(max_attempts=3)
    assert src.backoff.attempt == 2


def test_internal_date_is_aware_and_recent(mail_user: MailUser) -> None:
    src = source(mail_user)
    try:
        mail_user.append(msg(1))
        [item] = src.fetch_new()
        assert item.internal_date is not None
        assert abs((datetime.now(UTC) - item.internal_date).total_seconds()) < 120
    finally:
        src.close()
