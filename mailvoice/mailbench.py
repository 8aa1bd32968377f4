"""`mailvoice bench mail`: the mail loop against a private Dovecot on loopback.

Figures: text mails scanned per second by our whole path (fetch, parse, seal, commit, acknowledge) against a bare
imapclient FETCH of the same mails in the same process (the baseline), 20 short voicemails end to end, an idle poll
cycle, APPEND-to-delivered latency of a 30 s voicemail with IDLE, and resident memory after 100 and 1,000 messages.
Needs Debian's dovecot-imapd and openssl (root, or a user that may run Dovecot from a private config).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailvoice.config import AccountSettings, Settings
    from mailvoice.devservers import DovecotServer

TEXT_MAILS = 1000
VOICEMAILS = 20
SHORT_SCRIPT = "Hi, it's Sam. Call me back about the invoice when you can. Thanks."
LONG_SCRIPT = (
    "Good morning, this is Jordan Ellis from the facilities team. I'm calling about the maintenance visit planned "
    "for next Tuesday. The technicians will need access to the server room and the loading dock from eight in the "
    "morning until about noon. If that doesn't work for your team, please let me know by Friday so we can "
    "reschedule. You can reach me at my desk or on my mobile. Also, the parking garage will be closed on Wednesday "
    "for cleaning, so please remind everyone to use the north lot instead. Thanks a lot, and have a good day."
)


@dataclass(frozen=True)
class MailBench:
    text_mails: int
    scan_seconds: float
    text_mails_per_s: float
    bare_fetch_per_s: float
    """Baseline: imapclient fetching the same bodies, nothing else."""
    overhead_ratio: float
    """Our scan time over the bare fetch time for the same mails."""
    voicemails: int
    voicemail_seconds: float
    idle_poll_ms: float
    """Median of a poll cycle that finds nothing new."""
    long_voicemail_seconds: float
    idle_append_to_delivered_s: float
    rss_mb_after_100: float
    rss_mb_after_1000: float
    rss_growth_mb: float


def rss_mb() -> float:
    """Current resident set size (not the peak): what a leak would grow."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def _text_mail(i: int) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"Sender {i % 37} <sender{i % 37}@example.org>"
    msg["To"] = "bench@example.org"
    msg["Subject"] = f"Status report {i}"
    msg["Message-ID"] = f"<bench-text-{i}@example.org>"
    msg["Date"] = "Wed, 25 Nov 2026 08:00:00 +0000"
    msg.set_content(("Here is the weekly status. " * 20 + "\n\n") * (1 + i % 5))
    return msg.as_bytes()


def _voicemail(i: int, wav: bytes) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = '"Asterisk PBX" <asterisk@pbx.example.org>'
    msg["To"] = "bench@example.org"
    msg["Subject"] = f"[PBX]: New message {i} in mailbox 100"
    msg["Message-ID"] = f"<bench-vm-{i}-{time.time_ns()}@pbx.example.org>"
    msg.set_content(f'You have a new message from "Caller {i}" <555000{i:04d}>, 0:05 long.\n')
    msg.add_attachment(wav, maintype="audio", subtype="x-wav", filename=f"msg{i:04d}.wav")
    return msg.as_bytes()


def _append_all(server: DovecotServer, user: str, password: str, cafile: Path, raws: list[bytes]) -> None:
    client = server.client(user, password, cafile)
    try:
        for raw in raws:
            client.append("INBOX", raw)
    finally:
        client.logout()


def _bare_fetch(server: DovecotServer, user: str, password: str, cafile: Path) -> tuple[int, float]:
    client = server.client(user, password, cafile)
    try:
        client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
        start = time.perf_counter()
        for i in range(0, len(uids), 20):
            client.fetch(uids[i : i + 20], ["BODY.PEEK[]", "RFC822.SIZE", "INTERNALDATE"])
        return len(uids), time.perf_counter() - start
    finally:
        client.logout()


def bench_mail(settings: Settings) -> MailBench:
    from mailvoice.audio import assemble, encode_audio
    from mailvoice.config import AccountSettings, GeneralSettings
    from mailvoice.crypto import Sealer, create_keyring
    from mailvoice.devservers import DovecotServer, make_cert
    from mailvoice.engines import load_tts
    from mailvoice.mail.imap import ImapSource
    from mailvoice.runner import Runner, StoreCursors
    from mailvoice.store import Store

    work = Path(tempfile.mkdtemp(prefix="mailvoice-bench-"))
    cert, key = make_cert(work)
    server = DovecotServer(cert, key)
    server.start()
    try:
        user, password = "bench", "bench-password"
        server.add_user(user, password)
        import os

        os.environ["MAILVOICE_BENCH_PASSWORD"] = password
        account = AccountSettings(
            name="bench",
            host=server.host,
            username=user,
            port=server.imaps_port,
            password_env="MAILVOICE_BENCH_PASSWORD",  # noqa: S106
            tls="implicit",
            ca_file=cert,
            address="bench@example.org",
            poll_interval=300.0,
            timeout=30.0,
        )
        s = replace(
            settings,
            general=GeneralSettings(data_dir=work / "data"),
            accounts=(account,),
            maildirs=(),
            smtp=replace(settings.smtp, host=""),
        )
        s.general.data_dir.mkdir(mode=0o700)
        keyring = create_keyring(s.general.resolved_key_file())
        store = Store.open(s.general.resolved_store_url(), Sealer(keyring))
        tts = load_tts(s.tts, s.general)
        short_wav = encode_audio(assemble(tts.synthesize(SHORT_SCRIPT)), "wav")
        long_clip = assemble(tts.synthesize(LONG_SCRIPT))
        long_wav = encode_audio(long_clip, "wav")
        runner = Runner(s, store, since=datetime(2000, 1, 1, tzinfo=UTC))
        # load the model now: the scan figures must not include it
        runner.transcriber(short_wav, "warm-up.wav")

        _append_all(server, user, password, cert, [_text_mail(i) for i in range(100)])
        asyncio.run(runner.run_once())
        rss_100 = rss_mb()
        _append_all(server, user, password, cert, [_text_mail(i) for i in range(100, TEXT_MAILS)])
        start = time.perf_counter()
        asyncio.run(runner.run_once())
        scan = time.perf_counter() - start
        rss_1000 = rss_mb()
        scanned = TEXT_MAILS - 100
        bare_n, bare_s = _bare_fetch(server, user, password, cert)
        bare_rate = bare_n / bare_s

        _append_all(server, user, password, cert, [_voicemail(i, short_wav) for i in range(VOICEMAILS)])
        start = time.perf_counter()
        asyncio.run(runner.run_once())
        vm_seconds = time.perf_counter() - start

        source = ImapSource(account, StoreCursors(store))
        source.connect()
        polls = []
        for _ in range(20):
            t0 = time.perf_counter()
            assert source.fetch_new(50) == []
            polls.append(time.perf_counter() - t0)
        source.close()

        latency = _idle_latency(s, store, server, account, cert, long_wav)
        store.close()
        return MailBench(
            text_mails=scanned,
            scan_seconds=scan,
            text_mails_per_s=scanned / scan,
            bare_fetch_per_s=bare_rate,
            overhead_ratio=(scan / scanned) / (bare_s / bare_n),
            voicemails=VOICEMAILS,
            voicemail_seconds=vm_seconds,
            idle_poll_ms=statistics.median(polls) * 1000,
            long_voicemail_seconds=long_clip.duration,
            idle_append_to_delivered_s=latency,
            rss_mb_after_100=rss_100,
            rss_mb_after_1000=rss_1000,
            rss_growth_mb=rss_1000 - rss_100,
        )
    finally:
        server.cleanup()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def _idle_latency(
    s: Settings, store: object, server: DovecotServer, account: AccountSettings, cafile: Path, wav: bytes
) -> float:
    """Run the daemon (IDLE) in a thread, APPEND a voicemail, time until its transcript is delivered."""
    from mailvoice.runner import Runner
    from mailvoice.store import Store

    assert isinstance(store, Store)
    runner = Runner(s, store)
    runner.transcriber(wav, "warm-up.wav")
    delivered = (s.delivery.folder or s.general.data_dir / "delivered") / "new"
    before = len(list(delivered.iterdir())) if delivered.exists() else 0
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def serve() -> None:
        loop.run_until_complete(runner.run_forever(stop))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        time.sleep(3.0)  # connected, baselined, in IDLE
        t0 = time.perf_counter()
        _append_all(server, account.username, "bench-password", cafile, [_voicemail(999, wav)])
        while time.perf_counter() - t0 < 120:
            if delivered.exists() and len(list(delivered.iterdir())) > before:
                return time.perf_counter() - t0
            time.sleep(0.05)
        return float("inf")
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=60)
        runner.transcriber.close()
