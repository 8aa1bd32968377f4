"""Dictated text leaves as any other message: sealed in the store, sent by the outbox, or filed as an IMAP draft."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from servers import MailUser, SmtpServer

from mailvoice.config import GeneralSettings, Settings
from mailvoice.crypto import Sealer, create_keyring
from mailvoice.dictation.mailer import Dictated, save_draft, send
from mailvoice.errors import MailError
from mailvoice.store import Store

pytestmark = pytest.mark.servers
CANARY = "canary-dictation-7f3a"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    ring = create_keyring(tmp_path / "keys.json")
    with Store.open(f"sqlite:///{tmp_path / 'mv.db'}", Sealer(ring)) as s:
        yield s


def test_send_seals_and_delivers(tmp_path: Path, store: Store, smtp_server: SmtpServer) -> None:
    settings = Settings(general=GeneralSettings(data_dir=tmp_path), smtp=smtp_server.settings())
    d = Dictated(text=f"Hello Bob, {CANARY}.", to=("Bob <bob@example.org>",), subject="Hi\r\nBcc: evil@example.org")
    stats = asyncio.run(send(settings, store, d))
    assert stats.sent == 1
    got = smtp_server.messages[0]
    assert got.recipients == ("bob@example.org",)
    mail = message_from_bytes(got.raw, policy=policy.default)
    assert mail["Bcc"] is None and "\n" not in str(mail["Subject"])
    assert CANARY in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    [stored] = store.list_messages(kind="dictation")
    assert stored.content.text == d.text
    assert CANARY.encode() not in (tmp_path / "mv.db").read_bytes()  # sealed at rest


def test_send_refuses_bad_input(tmp_path: Path, store: Store) -> None:
    settings = Settings(general=GeneralSettings(data_dir=tmp_path))
    with pytest.raises(MailError, match="no recipient"):
        asyncio.run(send(settings, store, Dictated(text="x")))
    with pytest.raises(MailError, match="not an e-mail address"):
        asyncio.run(send(settings, store, Dictated(text="x", to=("bob",))))


def test_save_draft_appends_to_drafts(tmp_path: Path, store: Store, mail_user: MailUser) -> None:
    account = mail_user.account(address=f"{mail_user.user}@example.org")
    settings = Settings(general=GeneralSettings(data_dir=tmp_path), accounts=(account,))
    d = Dictated(text="Draft text here.", to=("ann@example.org",), subject="Later")
    folder = asyncio.run(save_draft(settings, store, d))
    client = mail_user.client()
    try:
        client.select_folder(folder, readonly=True)
        uids = client.search(["DRAFT"])
        assert len(uids) == 1
        raw = client.fetch(uids, ["RFC822"])[uids[0]][b"RFC822"]
    finally:
        client.logout()
    mail = message_from_bytes(raw, policy=policy.default)
    assert mail["Subject"] == "Later" and mail["To"] == "ann@example.org"
    assert "Draft text here." in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    [stored] = store.list_messages(kind="dictation")
    assert stored.state == "draft"
