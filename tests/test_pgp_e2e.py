"""Encrypted delivery end to end: the real CLI on real Dovecot + aiosmtpd, read back by real `gpg --decrypt`.

The owner's key pair is generated at test time in a throw-away GNUPGHOME; mailvoice gets only the public key.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import test_mailloop_e2e
import test_voicesend
from gpgreader import Gpg, new_gpg
from servers import MailUser, SmtpServer
from test_mailloop_e2e import KEY_WORDS, Bot, baseline, parsed, voicemail, voicemail_wav

pytestmark = [pytest.mark.servers, pytest.mark.slow]
bot = test_mailloop_e2e.bot  # the same installation fixture: data dir, config, the real CLI
spoken_wav = test_voicesend.spoken_wav  # Piper speaks the voice email once per module


@pytest.fixture
def owner_key(mail_user: MailUser, tmp_path: Path) -> Iterator[tuple[Gpg, Path]]:
    gpg = new_gpg()
    address = f"{mail_user.user}@example.org"
    gpg.generate(address)
    try:
        yield gpg, gpg.export(address, tmp_path / "owner.asc")
    finally:
        gpg.close()


def of_kind(smtp: SmtpServer, kind: str) -> list[tuple[bytes, EmailMessage]]:
    out = []
    for r in smtp.messages:
        msg = parsed(r.raw)
        assert isinstance(msg, EmailMessage)
        if msg["X-Mailvoice"] == kind:
            out.append((r.raw, msg))
    return out


def assert_sealed(raw: bytes, msg: EmailMessage) -> bytes:
    """Encrypted, and the outside names no caller and no word of the message."""
    assert msg.get_content_type() == "multipart/encrypted"
    # everything but the ciphertext (random base64 may spell a short word by chance)
    outside = re.sub(rb"-----BEGIN PGP MESSAGE-----.*-----END PGP MESSAGE-----", b"", raw, flags=re.S)
    assert len(outside) < 2000
    lowered = outside.lower().replace(b" ", b"")
    for word in (*KEY_WORDS, "marcus", "asterisk", "voicemail from", "msg0000"):
        assert word.replace(" ", "").encode() not in lowered, word
    return lowered


def decrypt(gpg: Gpg, raw: bytes) -> EmailMessage:
    plain, status = gpg.decrypt(raw)
    assert "DECRYPTION_OKAY" in status
    inner = parsed(plain)
    assert isinstance(inner, EmailMessage)
    assert inner.get_param("protected-headers") == "v1"
    return inner


def test_transcript_and_summary_mails_decrypt_with_gpg(
    bot: Bot, mail_user: MailUser, smtp_server: SmtpServer, owner_key: tuple[Gpg, Path]
) -> None:
    gpg, key_file = owner_key
    imported = bot.run("keys", "pgp", "import", str(key_file))
    assert imported.returncode == 0, imported.stderr
    baseline(bot)
    mail_user.append(voicemail("<vm-pgp-1@pbx.example.com>"))
    proc = bot.once()
    assert proc.returncode == 0, proc.stderr

    ((raw, outer),) = of_kind(smtp_server, "transcript")
    assert_sealed(raw, outer)
    assert outer["Subject"] == "Voicemail"
    assert outer["In-Reply-To"] == "<vm-pgp-1@pbx.example.com>"  # threading survives
    inner = decrypt(gpg, raw)
    assert inner["Subject"] == "Re: [PBX]: New message 5 in mailbox 100"  # the real subject travels inside
    assert inner["Message-ID"] == outer["Message-ID"]
    body = inner.get_body(preferencelist=("plain",))
    assert body is not None
    # words below the certainty threshold come marked as "[word?]": "[North?] Wind" still reads Northwind
    text = re.sub(r"[\s\[\]?]", "", str(body.get_content()).lower())
    for word in KEY_WORDS:
        assert word in text, (word, text)
    (audio,) = list(inner.iter_attachments())
    assert audio.get_content_type().startswith("audio/") and audio.get_content() == voicemail_wav()

    summary = bot.run("summary", "--send", "--since", "1h")
    assert summary.returncode == 0, summary.stderr
    ((sraw, souter),) = of_kind(smtp_server, "summary")
    assert_sealed(sraw, souter)
    assert souter["Subject"] == "..."
    sinner = decrypt(gpg, sraw)
    assert sinner["Subject"] and sinner["Subject"] != "..."
    (spoken,) = list(sinner.iter_attachments())
    assert spoken.get_content().startswith(b"OggS")


def test_required_policy_holds_mail_tells_the_owner_once_then_sends_encrypted(
    bot: Bot, mail_user: MailUser, smtp_server: SmtpServer, owner_key: tuple[Gpg, Path]
) -> None:
    gpg, key_file = owner_key
    bot.env["MAILVOICE_DELIVERY__PGP"] = "required"
    baseline(bot)
    for n in (1, 2):
        mail_user.append(voicemail(f"<vm-held-{n}@pbx.example.com>"))
        proc = bot.once()
        assert proc.returncode == 0, proc.stderr
        time.sleep(1.2)  # past the test config's 1 s retry cap: the held mail is due again in the next run
    assert of_kind(smtp_server, "transcript") == []  # never plaintext
    notices = [(r, m) for r, m in of_kind(smtp_server, "notice") if m["X-Mailvoice-Notice"] == "pgp-key"]
    assert len(notices) == 1  # told once, across runs and mails
    nraw, notice = notices[0]
    assert f"{mail_user.user}@example.org" in str(notice["To"])
    body = notice.get_body(preferencelist=("plain",))
    assert body is not None and "mailvoice keys pgp import" in str(body.get_content())
    for word in ("marcus", "northwind", "logistics", "tomorrow", "asterisk"):  # the notice holds no content
        assert word.encode() not in nraw.lower() and word not in str(body.get_content()).lower()

    # A wrong key (another address) changes nothing; the owner's key releases the held mail, encrypted.
    other = new_gpg()
    try:
        other.generate("someone-else@example.org")
        wrong = other.export("someone-else@example.org", key_file.with_name("wrong.asc"))
        assert bot.run("keys", "pgp", "import", str(wrong)).returncode == 0
        assert bot.once().returncode == 0
        assert of_kind(smtp_server, "transcript") == []
    finally:
        other.close()
    time.sleep(1.2)
    assert bot.run("keys", "pgp", "import", str(key_file)).returncode == 0
    proc = bot.once()
    assert proc.returncode == 0, proc.stderr
    held = of_kind(smtp_server, "transcript")
    assert sorted(m["In-Reply-To"] for _, m in held) == ["<vm-held-1@pbx.example.com>", "<vm-held-2@pbx.example.com>"]
    for raw, outer in held:
        assert_sealed(raw, outer)
        assert decrypt(gpg, raw)["Subject"].startswith("Re: [PBX]: New message")


def test_voice_email_to_a_recipient_with_a_key_is_encrypted_to_that_key(
    tmp_path: Path, smtp_server: SmtpServer, mail_user: MailUser, spoken_wav: bytes
) -> None:
    import asyncio
    from dataclasses import replace

    from speech import whisper_engine
    from test_voicesend import _settings, _store

    from mailvoice.voicesend import VoiceDraft, send_voice_email, transcribe_recording

    gpg = new_gpg()
    try:
        gpg.generate("alice@example.com")
        key = gpg.export("alice@example.com", tmp_path / "alice.asc")
        base = _settings(tmp_path, smtp_server, mail_user)
        settings = replace(base, delivery=replace(base.delivery, pgp_keys=(key,)))
        with _store(settings) as store:
            rec = transcribe_recording(settings, spoken_wav, "note.wav", asr=whisper_engine())
            draft = VoiceDraft(to=("alice@example.com",), cc=(), subject="Garden plans", recording=rec)
            sent = asyncio.run(send_voice_email(settings, store, draft, account="home"))
            assert sent.delivered, sent
        ((raw, outer),) = of_kind(smtp_server, "voice")
        assert b"garden" not in assert_sealed(raw, outer)  # the subject is inside only
        assert outer["Subject"] == "..."
        inner = decrypt(gpg, raw)
        assert inner["Subject"] == "Garden plans"
        audio = [p for p in inner.iter_attachments() if p.get_content_type() == "audio/ogg"]
        assert len(audio) == 1 and audio[0].get_content()[:4] == b"OggS"
    finally:
        gpg.close()
