"""Hostile mail against the real CLI (`run --once` and the daemon) on real Dovecot and aiosmtpd (issue 16).

One mail must never stop the run: a header that breaks the stdlib encoder, an unexpected exception in a stage,
even a failure of the quarantine itself. One mail must never buy an hour of CPU: a per-mail budget of parts and
decoded audio, and one transcript mail per incoming mail.
"""

from __future__ import annotations

import functools
import json
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from audiogen import silence_pyav
from mailcorpus import asterisk_mail, audio_part, message, text_only_mail
from servers import MailUser, SmtpServer
from test_mailloop_e2e import Bot, baseline, body_text, new_bot, notices, parsed, transcript_mails, voicemail

from mailvoice.crashpoints import FAULT_ENV, FAULT_MARK

pytestmark = [pytest.mark.servers, pytest.mark.slow]

MakeBot = Callable[..., Bot]


@pytest.fixture
def make_bot(tmp_path: Path, mail_user: MailUser, smtp_server: SmtpServer) -> MakeBot:
    return functools.partial(new_bot, tmp_path, mail_user, smtp_server)


def utf8_msgid_voicemail() -> bytes:
    """The case from the review: a UTF-8 Message-ID, and References holding an undecodable 8-bit byte."""
    raw = voicemail("<placeholder@pbx.example.com>")
    head = "Message-ID: <été@phone.example>\r\n".encode() + b"References: <older@pbx.example.com> <caf\xe9@old.example>"
    return raw.replace(b"Message-ID: <placeholder@pbx.example.com>", head, 1)


def marked(raw: bytes) -> bytes:
    """The mail an injected fault fires on (the switch also needs the environment variable)."""
    return FAULT_MARK + b" yes\r\n" + raw


def quarantined(bot: Bot) -> list[dict[str, object]]:
    proc = bot.run("quarantine", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def ascii_headers(smtp: SmtpServer) -> bool:
    """Every header of every mail we sent is 7-bit on the wire, and no decoded value holds a line break."""
    for received in smtp.messages:
        head = re.split(rb"\r?\n\r?\n", received.raw, maxsplit=1)[0]
        values = parsed(received.raw).values()
        if not head.isascii() or any("\n" in str(v) or "\r" in str(v) for v in values):
            return False
    return True


def test_utf8_message_id_with_8bit_references_is_delivered_and_the_run_goes_on(
    make_bot: MakeBot, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    bot = make_bot()
    baseline(bot)
    mail_user.append(utf8_msgid_voicemail())
    mail_user.append(voicemail("<vm-after@pbx.example.com>"))
    mail_user.append(text_only_mail())
    proc = bot.once()
    assert proc.returncode == 0, proc.stderr  # before the fix: UnicodeEncodeError, exit 1, outbox never flushed

    mails = transcript_mails(smtp_server)
    assert len(mails) == 2 and ascii_headers(smtp_server)
    by_reply = {m["In-Reply-To"]: m for m in mails}
    assert set(by_reply) == {None, "<vm-after@pbx.example.com>"}
    hostile = by_reply[None]  # its own Message-ID cannot be written back in an ASCII header: not threaded
    assert hostile["References"] is None and "marcus" in body_text(hostile).lower()
    assert [m["kind"] for m in bot.messages()].count("text") == 1  # the text mail after it was processed too
    assert quarantined(bot) == []
    again = bot.once()
    assert again.returncode == 0, again.stderr
    assert len(smtp_server.messages) == 2  # acknowledged: no second transcription, no second mail


def test_references_are_cleaned_before_they_reach_our_headers(
    make_bot: MakeBot, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    bot = make_bot()
    baseline(bot)
    refs = b"References: <ok-1@pbx.example.com>\r\n <bad\x01ctl@x> <" + b"l" * 400 + b"@long> <caf\xe9@x> junk <ok-2@x>"
    raw = voicemail("<vm-refs@pbx.example.com>").replace(b"Message-ID:", refs + b"\r\nMessage-ID:", 1)
    mail_user.append(raw)
    assert bot.once().returncode == 0
    [mail] = transcript_mails(smtp_server)
    assert ascii_headers(smtp_server)
    assert mail["In-Reply-To"] == "<vm-refs@pbx.example.com>"
    assert str(mail["References"]).split() == ["<ok-1@pbx.example.com>", "<ok-2@x>", "<vm-refs@pbx.example.com>"]


def test_unexpected_exception_in_a_stage_quarantines_that_mail_only(
    make_bot: MakeBot, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    bot = make_bot()
    baseline(bot)
    mail_user.append(marked(voicemail("<vm-faulty@pbx.example.com>")))
    mail_user.append(voicemail("<vm-next@pbx.example.com>"))
    bot.env[FAULT_ENV] = "compose"
    proc = bot.once()
    assert proc.returncode == 0, proc.stderr
    assert [m["In-Reply-To"] for m in transcript_mails(smtp_server)] == ["<vm-next@pbx.example.com>"]
    [q] = quarantined(bot)
    reason = str(q["reason"])
    assert "InjectedFault in the compose stage" in reason
    assert "msg0004" not in reason and "Alice" not in reason and "PBX" not in reason  # a reference, not content
    [told] = notices(smtp_server)
    assert told["In-Reply-To"] == "<vm-faulty@pbx.example.com>"
    assert bot.once().returncode == 0 and len(smtp_server.messages) == 2


def _daemon(bot: Bot, log_path: Path, fault_at: str) -> subprocess.Popen[bytes]:
    env = dict(bot.env)
    env[FAULT_ENV] = fault_at
    with open(log_path, "w") as log:
        return subprocess.Popen(bot.cmd("-vv", "run"), env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait(check: Callable[[], bool], what: str, log_path: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}; log:\n{log_path.read_text(errors='replace')[-4000:]}"
        time.sleep(0.5)


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def runs(log: str, uid: int) -> int:
    """How often the pipeline started on this UID (its -vv line: 'work/INBOX uid VALIDITY:UID: processing')."""
    return len(re.findall(rf" uid \d+:{uid}: processing", log))


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "daemon.log"


def test_daemon_parks_a_mail_whose_quarantine_fails_and_never_loops_on_it(
    make_bot: MakeBot, mail_user: MailUser, smtp_server: SmtpServer, logged: Path
) -> None:
    bot = make_bot()
    baseline(bot)
    broken = asterisk_mail(audio=b"RIFF\x24\x00\x00\x00WAVEfmt no audio here" * 3, msgid="<vm-loop@pbx.example.com>")
    uid = mail_user.append(marked(broken))
    mail_user.append(voicemail("<vm-behind@pbx.example.com>"))
    daemon = _daemon(bot, logged, "quarantine")
    try:
        _wait(lambda: len(transcript_mails(smtp_server)) == 1, "the mail behind it was never delivered", logged)
        time.sleep(3)  # a loop would be retrying the same item meanwhile
    finally:
        _stop(daemon)
    log = logged.read_text(errors="replace")
    assert runs(log, uid) == 1, log[-4000:]  # one attempt, then parked: no re-run
    assert "InjectedFault" in log and "parked in quarantine" in log
    [q] = quarantined(bot)
    assert "InjectedFault" in str(q["reason"]) and q["uid"] == uid
    assert transcript_mails(smtp_server)[0]["In-Reply-To"] == "<vm-behind@pbx.example.com>"


def test_daemon_backs_off_without_reset_while_the_same_mail_keeps_failing(
    make_bot: MakeBot, mail_user: MailUser, smtp_server: SmtpServer, logged: Path
) -> None:
    bot = make_bot()
    baseline(bot)
    uid = mail_user.append(marked(text_only_mail()))
    daemon = _daemon(bot, logged, "compose,quarantine,park")  # nothing can take the item: it stays at the source
    try:
        _wait(lambda: "(attempt 3)" in logged.read_text(errors="replace"), "no third backoff", logged)
    finally:
        _stop(daemon)
    log = logged.read_text(errors="replace")
    attempts = [int(line.rsplit("(attempt ", 1)[1].split(")")[0]) for line in log.splitlines() if "(attempt " in line]
    # a successful reconnect no longer resets the backoff: each retry waits up to twice as long as the last
    assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) >= 3, attempts
    assert len(attempts) <= runs(log, uid) <= len(attempts) + 1
    assert quarantined(bot) == [] and smtp_server.messages == []


def flac_silence(seconds: float) -> bytes:
    """Digital silence as FLAC with long frames and no padding block: 14.4 minutes in about 2.5 KB."""
    data = silence_pyav("flac", "flac", 8000, seconds, frame=32768, options={"frame_size": "32768"})
    pos, blocks = 4, []
    while True:
        last, kind, size = data[pos] & 0x80, data[pos] & 0x7F, int.from_bytes(data[pos + 1 : pos + 4], "big")
        blocks.append((kind, data[pos + 4 : pos + 4 + size]))
        pos += 4 + size
        if last:
            break
    keep = [(k, b) for k, b in blocks if k not in (1, 3)]  # drop PADDING and SEEKTABLE
    out = bytearray(b"fLaC")
    for i, (kind, body) in enumerate(keep):
        out += bytes([kind | (0x80 if i == len(keep) - 1 else 0)]) + len(body).to_bytes(3, "big") + body
    return bytes(out + data[pos:])


def test_many_small_parts_of_long_silence_are_refused_within_the_per_mail_budget(
    make_bot: MakeBot, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    part = flac_silence(14.4 * 60)
    assert len(part) < 3000
    parts = [audio_part(part, "audio/flac", f"msg{n:04d}.flac") for n in range(1, 13)]
    headers = [
        ("From", "PBX <pbx@pbx.example.com>"),
        ("To", "bob@example.com"),
        ("Subject", "New voicemail"),
        ("Date", "Fri, 01 Mar 2024 10:15:03 +0100"),
        ("Message-ID", "<vm-budget@pbx.example.com>"),
    ]
    raw = message(headers, parts)
    assert len(raw) < 50_000
    bot = make_bot()
    baseline(bot)
    mail_user.append(raw)
    proc = bot.run("-v", "run", "--once")
    assert proc.returncode == 0, proc.stderr

    [mail] = transcript_mails(smtp_server)  # one incoming mail, one transcript mail (was: twelve)
    text = body_text(mail)
    for n in (1, 2):  # 28.9 min fit the 30 min budget; no speech in them, said in this mail
        assert f"msg{n:04d}.flac: no speech detected" in text
    for n in range(3, 11):  # each declares 14.4 min: refused from the header, before decoding
        assert re.search(rf"msg{n:04d}\.flac: declares 86\d s of audio, over the \d+ s left", text), text
    assert "audio.max_mail_duration" in text
    for n in (11, 12):
        assert f"msg{n:04d}.flac: over the per-mail budget of 10 audio parts" in text
    assert len([m for m in bot.messages() if m["kind"] == "voicemail"]) == 2
    assert quarantined(bot) == []
    assert ".flac" not in proc.stderr  # references only in logs, never the filenames


def test_budget_is_configurable_and_a_mail_with_nothing_in_budget_is_quarantined(
    make_bot: MakeBot, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    part = flac_silence(120)
    bot = make_bot(audio={"max_mail_duration": 60.0, "max_parts_per_mail": 3})
    baseline(bot)
    parts = [audio_part(part, "audio/flac", f"caller-555-{n}.flac") for n in range(1, 5)]
    mail_user.append(message([("From", "pbx@pbx.example.com"), ("Message-ID", "<vm-cfg@pbx>")], parts))
    assert bot.once().returncode == 0
    assert transcript_mails(smtp_server) == []
    [q] = quarantined(bot)
    reason = str(q["reason"])
    assert "part 1 (audio/flac" in reason and "audio.max_mail_duration" in reason
    assert "caller-555" not in reason  # the filename is content: only the part number in the clear
    [told] = notices(smtp_server)  # sealed in the outbox, sent to the owner: it names each file and why
    said = " ".join(body_text(told).split())
    assert "caller-555-1.flac: declares 12" in said and "per-mail budget of 60 s (audio.max_mail_duration)" in said
    assert "caller-555-4.flac: over the per-mail budget of 3 audio parts (audio.max_parts_per_mail)" in said
