"""The mail loop end to end: the real `mailvoice` CLI in a subprocess against real Dovecot and aiosmtpd.

A voicemail APPENDed to Dovecot must reach the SMTP server as a transcript mail exactly once: across repeated runs,
a SIGKILL at each pipeline step, an SMTP outage, UIDVALIDITY changes and renumbered UIDs; and IDLE must deliver it
without waiting for the poll interval.
"""

from __future__ import annotations

import email
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.policy import default as default_policy
from functools import cache
from pathlib import Path

import pytest
from mailcorpus import asterisk_mail, message, text_only_mail
from servers import MailUser, SmtpServer
from speech import speak, wer

from mailvoice.audio import encode_audio

pytestmark = [pytest.mark.servers, pytest.mark.slow]

SCRIPT = (
    "Hello, this is Marcus from Northwind Logistics. I am calling about the delivery scheduled for tomorrow "
    "morning. Please call me back when you get a chance."
)
KEY_WORDS = ("marcus", "northwind", "delivery", "tomorrow")


@cache
def voicemail_wav() -> bytes:
    return encode_audio(speak(SCRIPT), "wav")


def voicemail(msgid: str) -> bytes:
    return asterisk_mail(audio=voicemail_wav(), msgid=msgid)


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


@dataclass
class Bot:
    """One mailvoice installation: a data dir, a config file, and the CLI run as a subprocess."""

    home: Path
    config: Path
    env: dict[str, str]

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mailvoice", "--config", str(self.config), *args]

    def run(self, *args: str, crash_at: str | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if crash_at:
            env["MAILVOICE_TEST_CRASH_AT"] = crash_at
        return subprocess.run(self.cmd(*args), env=env, capture_output=True, text=True, timeout=timeout)

    def once(self, **kw: object) -> subprocess.CompletedProcess[str]:
        proc = self.run("run", "--once", **kw)  # type: ignore[arg-type]
        return proc

    def messages(self) -> list[dict[str, object]]:
        proc = self.run("messages", "--json", "--limit", "1000")
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def write_config(path: Path, sections: dict[str, dict[str, object]], accounts: list[dict[str, object]]) -> None:
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
        lines.append("")
    for acc in accounts:
        lines.append("[[accounts]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in acc.items() if v is not None]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def new_bot(tmp_path: Path, mail_user: MailUser, smtp_server: SmtpServer, **sections: dict[str, object]) -> Bot:
    """A mailvoice installation against this test's mailbox and SMTP server, with extra config sections."""
    home = tmp_path / "home"
    cfg = tmp_path / "config.toml"
    smtp = smtp_server.settings()
    write_config(
        cfg,
        {
            "general": {"data_dir": str(home)},
            "smtp": {
                "host": smtp.host,
                "port": smtp.port,
                "tls": smtp.tls,
                "ca_file": str(smtp.ca_file),
                "username": smtp.username,
                "password_env": smtp.password_env,
                "sender": smtp.sender,
                "timeout": 10.0,
                "retry_base": 0.5,
                "retry_cap": 1.0,
            },
            **sections,
        },
        [
            {
                "name": "work",
                "host": mail_user.host,
                "port": mail_user.imaps_port,
                "tls": "implicit",
                "ca_file": str(mail_user.cafile),
                "username": mail_user.user,
                "password_env": mail_user.password_env,
                "address": f"{mail_user.user}@example.org",
                "poll_interval": 300.0,
                "timeout": 10.0,
            }
        ],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVOICE_")}
    env[mail_user.password_env] = mail_user.password
    env["MAILVOICE_TEST_SMTP_PASSWORD"] = os.environ["MAILVOICE_TEST_SMTP_PASSWORD"]
    env["PYTHONUNBUFFERED"] = "1"
    bot = Bot(home, cfg, env)
    init = bot.run("init")
    assert init.returncode == 0, init.stderr
    return bot


@pytest.fixture
def bot(tmp_path: Path, mail_user: MailUser, smtp_server: SmtpServer) -> Iterator[Bot]:
    yield new_bot(tmp_path, mail_user, smtp_server)


def baseline(bot: Bot) -> None:
    """First contact: the bot takes UIDNEXT as its starting point (old mail is not processed)."""
    proc = bot.once()
    assert proc.returncode == 0, proc.stderr


def parsed(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=default_policy)


def transcript_mails(smtp: SmtpServer) -> list[Message]:
    return [m for m in (parsed(r.raw) for r in smtp.messages) if m["X-Mailvoice"] == "transcript"]


def notices(smtp: SmtpServer) -> list[Message]:
    return [m for m in (parsed(r.raw) for r in smtp.messages) if m["X-Mailvoice"] == "notice"]


def body_text(msg: Message) -> str:
    part = msg.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    assert part is not None
    return str(part.get_content())


def test_voicemail_becomes_one_transcript_mail(bot: Bot, mail_user: MailUser, smtp_server: SmtpServer) -> None:
    baseline(bot)
    mail_user.append(voicemail("<vm-1@pbx.example.com>"))
    proc = bot.once()
    assert proc.returncode == 0, proc.stderr

    mails = transcript_mails(smtp_server)
    assert len(mails) == 1
    mail = mails[0]
    assert smtp_server.messages[0].tls and smtp_server.messages[0].authenticated
    assert smtp_server.messages[0].recipients == (f"{mail_user.user}@example.org",)
    assert mail["In-Reply-To"] == "<vm-1@pbx.example.com>"
    assert "<vm-1@pbx.example.com>" in mail["References"]
    assert mail["Subject"] == "Re: [PBX]: New message 5 in mailbox 100"  # subject_style "thread": Gmail threads it
    # "North Wind" or "Northwind": both right; an uncertain word comes marked "[North?]": the word is still there
    text = re.sub(r"[\s\[\]?]", "", body_text(mail).lower())
    for word in KEY_WORDS:
        assert word in text, (word, text)
    attachments = [p for p in mail.iter_attachments()]  # type: ignore[attr-defined]
    assert len(attachments) == 1 and attachments[0].get_content_type().startswith("audio/")
    assert attachments[0].get_content() == voicemail_wav()

    stored = [m for m in bot.messages() if m["kind"] == "voicemail"]
    assert len(stored) == 1
    assert wer(SCRIPT, str(stored[0]["text"])) <= 0.15

    # The source is acknowledged with our keyword, never marked read or moved.
    client = mail_user.client()
    try:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags(client.search("ALL"))
    finally:
        client.logout()
    (only,) = flags.values()
    assert b"$MailvoiceDone" in only and b"\\Seen" not in only

    again = bot.once()
    assert again.returncode == 0, again.stderr
    assert len(smtp_server.messages) == 1, "a second run must send nothing"


@pytest.mark.parametrize("step", ["fetched", "transcribed", "stored", "acknowledged", "sending", "sent"])
def test_sigkill_at_each_step_then_restart_gives_exactly_once(
    step: str, bot: Bot, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    baseline(bot)
    mail_user.append(voicemail(f"<vm-kill-{step}@pbx.example.com>"))
    mail_user.append(voicemail(f"<vm-kill-{step}-2@pbx.example.com>"))
    crashed = bot.once(crash_at=step)
    assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr)
    for _ in range(3):  # restarts until everything is through (each run crashes no more)
        proc = bot.once()
        assert proc.returncode == 0, proc.stderr
    ids = [m["Message-ID"] for m in transcript_mails(smtp_server)]
    replies_to = {m["In-Reply-To"] for m in transcript_mails(smtp_server)}
    assert replies_to == {f"<vm-kill-{step}@pbx.example.com>", f"<vm-kill-{step}-2@pbx.example.com>"}
    if step == "sent":
        # killed after the server's 250 but before the outbox recorded it: the one permitted duplicate,
        # recognisable by the same Message-ID
        assert len(set(ids)) == 2 and len(ids) <= 3
    else:
        assert len(ids) == 2 and len(set(ids)) == 2
    assert len([m for m in bot.messages() if m["kind"] == "voicemail"]) == 2


def test_smtp_down_then_back_delivers_once(bot: Bot, mail_user: MailUser, smtp_server: SmtpServer) -> None:
    baseline(bot)
    smtp_server.stop()
    mail_user.append(voicemail("<vm-outage@pbx.example.com>"))
    down = bot.once()
    assert down.returncode == 0, down.stderr
    assert smtp_server.messages == []
    smtp_server.start()
    time.sleep(1.2)  # past the (test-configured) retry delay
    up = bot.once()
    assert up.returncode == 0, up.stderr
    assert len(smtp_server.messages) == 1
    assert bot.once().returncode == 0
    assert len(smtp_server.messages) == 1


def test_uidvalidity_change_and_renumbered_uids_cause_no_duplicates(
    bot: Bot, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    baseline(bot)
    mail_user.append(voicemail("<vm-uv@pbx.example.com>"))
    assert bot.once().returncode == 0
    assert len(smtp_server.messages) == 1

    mail_user.doveadm("mailbox update", "--uid-validity", "424242", "INBOX")
    proc = bot.once()
    assert proc.returncode == 0, proc.stderr
    assert len(smtp_server.messages) == 1

    mail_user.uidlist_path().unlink()
    proc = bot.once()
    assert proc.returncode == 0, proc.stderr
    assert len(smtp_server.messages) == 1
    assert len([m for m in bot.messages() if m["kind"] == "voicemail"]) == 1


def test_bad_input_is_quarantined_and_the_mailbox_goes_on(
    bot: Bot, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    baseline(bot)
    broken = asterisk_mail(
        audio=b"RIFF\x24\x00\x00\x00WAVEfmt garbage that is no audio" * 3, msgid="<vm-broken@pbx.example.com>"
    )
    injected_from = "=?utf-8?q?Mallory=0D=0ABcc:_evil@attacker.example?= <mallory@pbx.example.com>"
    injection = asterisk_mail(audio=voicemail_wav(), msgid="<vm-inject@pbx.example.com>").replace(
        b"From: ", f"From: {injected_from}\r\nX-Old-From: ".encode(), 1
    )
    bomb = message(
        [
            ("From", "x@example.com"),
            ("To", "y@example.com"),
            ("Subject", "deep"),
            ("Message-ID", "<bomb@example.com>"),
            ("Content-Type", 'multipart/mixed; boundary="b0"'),
        ],
        body=b"".join(
            f'--b{i}\r\nContent-Type: multipart/mixed; boundary="b{i + 1}"\r\n\r\n'.encode() for i in range(3000)
        ),
    )
    for raw in (broken, bomb, text_only_mail(), injection, voicemail("<vm-good@pbx.example.com>")):
        mail_user.append(raw)
    proc = bot.once()
    assert proc.returncode == 0, proc.stderr

    replies = {m["In-Reply-To"]: m for m in transcript_mails(smtp_server)}
    assert set(replies) == {"<vm-inject@pbx.example.com>", "<vm-good@pbx.example.com>"}
    for received in smtp_server.messages:
        assert received.recipients == (f"{mail_user.user}@example.org",)
        head = parsed(received.raw)
        assert head["Bcc"] is None and "\n" not in str(head["Subject"]) and "\r" not in str(head["Subject"])

    q = bot.run("quarantine", "list", "--json")
    assert q.returncode == 0, q.stderr
    reasons = [json.loads(line)["reason"] for line in q.stdout.splitlines()]
    assert len(reasons) == 2
    assert any("audio" in r.lower() or "wav" in r.lower() for r in reasons), reasons
    assert any("mime" in r.lower() or "depth" in r.lower() or "nest" in r.lower() for r in reasons), reasons
    # the owner hears about each quarantined mail once, threaded to it, with the reason
    told = notices(smtp_server)
    assert len(told) == 2
    # the broken voicemail was parsed (threaded notice); the bomb was refused before parsing (no thread to join)
    assert sorted(str(m["In-Reply-To"]) for m in told) == ["<vm-broken@pbx.example.com>", "None"]
    assert any(m["Subject"].startswith("Voicemail not transcribed") for m in told)
    assert all("quarantine retry" in body_text(m) for m in told)
    assert bot.once().returncode == 0
    assert len(smtp_server.messages) == 4


def test_idle_delivers_without_waiting_for_the_poll(
    bot: Bot, mail_user: MailUser, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    log_path = tmp_path / "daemon.log"
    with open(log_path, "w") as log:
        daemon = subprocess.Popen(bot.cmd("-v", "run"), env=bot.env, stdout=log, stderr=subprocess.STDOUT)

    def output() -> str:
        return log_path.read_text(errors="replace")

    try:
        deadline = time.monotonic() + 30
        while mail_user.sessions() < 1:
            assert daemon.poll() is None, output()
            assert time.monotonic() < deadline, "the daemon never connected"
            time.sleep(0.2)
        time.sleep(1.0)  # let it baseline and enter IDLE
        appended = time.monotonic()
        mail_user.append(voicemail("<vm-idle@pbx.example.com>"))
        # Not a speed check: the account polls every 300 s, so delivery before then can only be IDLE's doing;
        # the deadline sits just below the poll, far beyond any machine's load.
        while not smtp_server.messages:
            assert daemon.poll() is None, output()
            assert time.monotonic() - appended < 280, "not delivered before the 300 s poll: IDLE did not wake it"
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            rc = daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            raise
    assert rc == 0, output()
    assert len(smtp_server.messages) == 1
    deadline = time.monotonic() + 10
    while mail_user.sessions() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mail_user.sessions() == 0, "the daemon left an IMAP session behind"


def test_permanent_refusal_is_not_retried_and_the_owner_is_told_once(
    bot: Bot, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    text = bot.config.read_text()
    bot.config.write_text(text.replace("[smtp]", '[delivery]\nowners = ["owner@example.org"]\n\n[smtp]', 1))
    baseline(bot)
    recipient = f"{mail_user.user}@example.org"
    smtp_server.handler.refuse.add(recipient)
    mail_user.append(voicemail("<vm-refused@pbx.example.com>"))
    assert bot.once().returncode == 0
    time.sleep(1.2)  # past any retry delay: a 5xx must not be retried anyway
    assert bot.once().returncode == 0
    assert len(smtp_server.messages) == 1, "only the notice to the owner"
    notice = smtp_server.messages[0]
    assert notice.recipients == ("owner@example.org",)
    head = parsed(notice.raw)
    assert head["X-Mailvoice"] == "notice" and head["Auto-Submitted"] == "auto-generated"
    assert "could not be delivered" in body_text(head)
    assert bot.once().returncode == 0
    assert len(smtp_server.messages) == 1


def test_imap_server_restart_under_the_daemon_reconnects_without_leaks(
    bot: Bot, mail_user: MailUser, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    log_path = tmp_path / "daemon.log"
    with open(log_path, "w") as log:
        daemon = subprocess.Popen(bot.cmd("-v", "run"), env=bot.env, stdout=log, stderr=subprocess.STDOUT)

    def wait_for(cond: object, what: str, limit: float = 60) -> None:
        deadline = time.monotonic() + limit
        while not cond():  # type: ignore[operator]
            assert daemon.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, f"{what}\n{log_path.read_text(errors='replace')[-3000:]}"
            time.sleep(0.2)

    try:
        wait_for(lambda: mail_user.sessions() >= 1, "the daemon never connected")
        time.sleep(1.0)
        mail_user.append(voicemail("<vm-before-restart@pbx.example.com>"))
        wait_for(lambda: len(smtp_server.messages) == 1, "first voicemail not delivered")
        mail_user.server.restart()  # every connection dropped; same ports
        mail_user.append(voicemail("<vm-after-restart@pbx.example.com>"))
        wait_for(lambda: len(smtp_server.messages) == 2, "not delivered after the IMAP server restarted")
        wait_for(lambda: mail_user.sessions() == 1, "expected exactly one IMAP session after reconnecting")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            raise
    replies = [m["In-Reply-To"] for m in transcript_mails(smtp_server)]
    assert sorted(replies) == ["<vm-after-restart@pbx.example.com>", "<vm-before-restart@pbx.example.com>"]


CANARY_SCRIPT = "Hello, this is a test message about the purple elephant parade on Saturday."


def _grep_tree(root: Path, needles: tuple[bytes, ...]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            hits += [f"{path}: {n!r}" for n in needles if n in data]
    return hits


def test_no_plaintext_transcript_on_disk_or_in_logs_crash_paths_included(
    bot: Bot, mail_user: MailUser, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    bot.env["TMPDIR"] = str(tmpdir)
    logs = tmp_path / "logs"
    logs.mkdir()
    baseline(bot)
    mail_user.append(asterisk_mail(audio=encode_audio(speak(CANARY_SCRIPT), "wav"), msgid="<vm-canary@pbx>"))
    for i, crash in enumerate(("stored", "sending", None)):
        proc = bot.run("-vv", "run", "--once", crash_at=crash)
        (logs / f"run{i}.log").write_text(proc.stdout + proc.stderr)
    assert len(smtp_server.messages) == 1
    sent = body_text(parsed(smtp_server.messages[0].raw)).lower()
    assert "elephant" in sent and "parade" in sent  # the canary really went through the pipeline
    needles = (b"purple elephant", b"elephant parade", "elephant".encode("utf-16-le"))
    hits = _grep_tree(bot.home, needles) + _grep_tree(tmpdir, needles) + _grep_tree(logs, needles)
    assert hits == [], hits
