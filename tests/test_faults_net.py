"""Network faults under the real daemon (Runner.run_forever in a thread) against the real servers.

- An SMTP server that accepts the TCP connection and then never speaks (a tarpit on the SMTP port): each attempt
  times out, the mail is retried, and the intake goes on meanwhile; once a real server answers on that port, every
  mail is delivered exactly once.
- IMAP cut mid-FETCH by a TCP proxy of our own between the daemon and Dovecot: the source reconnects and the
  voicemail is delivered exactly once, with one IMAP session left at the end.
"""

from __future__ import annotations

import asyncio
import email
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faults import CuttingProxy, Tarpit
from mailcorpus import asterisk_mail
from servers import MailUser, SmtpServer
from speech import whisper_engine

from mailvoice.commands import open_store
from mailvoice.config import AccountSettings, GeneralSettings, Settings, SmtpSettings
from mailvoice.crypto import create_keyring
from mailvoice.runner import Runner, Transcriber
from mailvoice.store import Store

pytestmark = [pytest.mark.servers, pytest.mark.slow]

RECORDING = Path(__file__).parent / "data" / "real" / "cards-001.wav"
DONE = b"$MailvoiceDone"


def voicemail(msgid: str) -> bytes:
    return asterisk_mail(audio=RECORDING.read_bytes(), msgid=msgid)


class Daemon:
    """`mailvoice run` in this process: the runner's own loop in a thread, stopped like SIGTERM stops it."""

    def __init__(self, settings: Settings) -> None:
        create_keyring(settings.general.resolved_key_file())
        self.store: Store = open_store(settings)
        self.runner = Runner(settings, self.store, transcriber=Transcriber(settings, whisper_engine()))
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="daemon", daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await self.runner.run_forever(self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    def __enter__(self) -> Daemon:
        self._thread.start()
        assert self._ready.wait(30) and self.error is None, self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(90)
        alive = self._thread.is_alive()
        self.store.close()
        assert not alive, "the daemon did not stop"
        assert self.error is None, self.error


def wait_for(cond: Callable[[], bool], what: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _settings(data: Path, account: AccountSettings, smtp: SmtpSettings) -> Settings:
    return Settings(general=GeneralSettings(data_dir=data), smtp=smtp, accounts=(account,))


def _replies(smtp: SmtpServer) -> list[str]:
    return sorted(str(email.message_from_bytes(m.raw)["In-Reply-To"]) for m in smtp.messages)


@pytest.fixture
def tarpit_on_smtp_port(smtp_server: SmtpServer) -> Iterator[Tarpit]:
    smtp_server.stop()
    pit = Tarpit(smtp_server.port)
    try:
        yield pit
    finally:
        pit.close()


def test_smtp_tarpit_times_out_and_retries_while_the_intake_goes_on(
    tmp_path: Path, mail_user: MailUser, smtp_server: SmtpServer, tarpit_on_smtp_port: Tarpit
) -> None:
    smtp = smtp_server.settings(timeout=1.5, retry_base=0.5, retry_cap=1.0)
    account = mail_user.account(name="work", address=f"{mail_user.user}@example.org", poll_interval=1.0)
    with Daemon(_settings(tmp_path / "data", account, smtp)) as daemon:
        wait_for(lambda: mail_user.sessions() >= 1, "the daemon never connected")
        time.sleep(1.0)  # baselined, waiting for mail
        mail_user.append(voicemail("<vm-tarpit-1@pbx.example.com>"))
        wait_for(lambda: tarpit_on_smtp_port.accepted >= 1, "the outbox never tried the SMTP server")
        # The outbox is stuck on a server that never answers; new mail must still come in and be committed.
        mail_user.append(voicemail("<vm-tarpit-2@pbx.example.com>"))
        wait_for(lambda: len(daemon.store.list_messages()) == 2, "the intake stalled behind the SMTP tarpit")
        wait_for(lambda: tarpit_on_smtp_port.accepted >= 2, "the timed-out mail was not retried")
        rows = daemon.store.list_outbox()
        assert len(rows) == 2 and all(r.state in ("pending", "sending") for r in rows)
        assert any("timed out" in r.last_error for r in rows), [r.last_error for r in rows]

        tarpit_on_smtp_port.close()  # a real server answers on that port again
        smtp_server.start()
        wait_for(lambda: len(smtp_server.messages) >= 2, "not delivered once the server answered")
        time.sleep(2.0)  # a later flush must send nothing again
    assert _replies(smtp_server) == ["<vm-tarpit-1@pbx.example.com>", "<vm-tarpit-2@pbx.example.com>"]


@pytest.mark.parametrize("cut_at", [b"BODY[] {", b"RFC822.SIZE "], ids=["in-the-body", "in-the-metadata"])
def test_imap_cut_mid_fetch_reconnects_and_delivers_exactly_once(
    tmp_path: Path, mail_user: MailUser, smtp_server: SmtpServer, cut_at: bytes
) -> None:
    proxy = CuttingProxy(("127.0.0.1", mail_user.imap_port))
    try:
        # Plain IMAP on loopback, so the proxy can see where the FETCH response is (TLS would hide it).
        account = mail_user.account(
            name="work",
            address=f"{mail_user.user}@example.org",
            tls="none",
            allow_plaintext=True,
            port=proxy.port,
            poll_interval=1.0,
        )
        smtp = smtp_server.settings(retry_base=0.5, retry_cap=1.0)
        with Daemon(_settings(tmp_path / "data", account, smtp)) as daemon:
            wait_for(lambda: mail_user.sessions() >= 1, "the daemon never connected")
            time.sleep(1.0)
            proxy.cut_on(cut_at, extra=300)
            mail_user.append(voicemail("<vm-cut@pbx.example.com>"))
            wait_for(lambda: len(smtp_server.messages) >= 1, "not delivered after the cut")
            assert proxy.cut_count == 1 and proxy.connections >= 2, (proxy.cut_count, proxy.connections)
            wait_for(lambda: mail_user.sessions() == 1, "expected one IMAP session after reconnecting")
            time.sleep(2.0)  # a later poll must not process it again
            assert len(daemon.store.list_messages()) == 1
        client = mail_user.client()
        try:
            client.select_folder("INBOX", readonly=True)
            (flags,) = client.get_flags(client.search("ALL")).values()
        finally:
            client.logout()
        assert DONE in flags
    finally:
        proxy.close()
    assert _replies(smtp_server) == ["<vm-cut@pbx.example.com>"]
