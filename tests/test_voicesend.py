"""Voice email: send and reply by voice through real SMTP (aiosmtpd) and a real IMAP Sent folder (Dovecot).

There is no sound card here: every test feeds an audio file synthesized by Piper at test time; `--record` is
covered only by its missing-dependency error.
"""

from __future__ import annotations

import asyncio
import email
import os
import subprocess
import sys
from dataclasses import replace
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from servers import MailUser, SmtpServer
from speech import normalise

from mailvoice.config import GeneralSettings, Settings
from mailvoice.crypto import Sealer, create_keyring
from mailvoice.errors import ConfigError, MissingExtraError
from mailvoice.store import Message, MessageContent, NewMessage, Store
from mailvoice.types import Transcript

SPOKEN = "Hello Alice, the garden plan looks great. Let us meet on Friday morning at the nursery."


def _settings(tmp_path: Path, smtp: SmtpServer, user: MailUser) -> Settings:
    account = user.account(name="home", address=f"{user.user}@example.org")
    return Settings(
        general=GeneralSettings(data_dir=tmp_path / "data", key_file=tmp_path / "keys.json"),
        smtp=smtp.settings(),
        accounts=(account,),
    )


def _store(settings: Settings) -> Store:
    ring = create_keyring(settings.general.resolved_key_file())
    return Store.open(settings.general.resolved_store_url(), Sealer(ring))


@pytest.fixture(scope="module")
def spoken_wav() -> bytes:
    """Piper speaks the message; a 16 kHz WAV file, as a user's recorder would leave it."""
    from speech import speak

    from mailvoice.audio import encode_audio

    return encode_audio(speak(SPOKEN), "wav")


def _body(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body((subtype,))
    assert part is not None
    return str(part.get_content())


def _sent_copies(user: MailUser) -> list[tuple[bytes, tuple[bytes, ...]]]:
    client = user.client()
    try:
        client.select_folder("Sent", readonly=True)
        data = client.fetch(client.search(["ALL"]), ["BODY.PEEK[]", "FLAGS"])
        return [(d[b"BODY[]"], tuple(d[b"FLAGS"])) for d in data.values()]
    finally:
        client.logout()


def test_addresses_are_checked() -> None:
    from mailvoice.voicesend import check_addresses

    assert check_addresses(["Bob <bob@example.com>"], "--to") == ("bob@example.com",)
    for bad in ("bob@example.com, eve@example.com", "bob@example.com\r\nBcc: eve@example.com", "not an address"):
        with pytest.raises(ConfigError, match="--to"):
            check_addresses([bad], "--to")


def test_subject_from_first_words_and_header_safety() -> None:
    from mailvoice.voicesend import subject_for

    t = Transcript(text="Hello Alice the garden plan looks great let us meet on Friday", language="en", duration=4)
    assert subject_for(None, t) == "Hello Alice the garden plan looks great let…"
    assert subject_for("Plan\r\nBcc: eve@example.com", t) == "Plan Bcc: eve@example.com"
    assert subject_for(None, Transcript(text="", language="en", duration=1, no_speech=True)) == "Voice message"


def test_reply_fields_thread_and_refuse_summaries() -> None:
    from mailvoice.store.records import utcnow
    from mailvoice.voicesend import reply_draft_fields

    def stored(kind: Any, **content: Any) -> Message:
        return Message(
            id="abc",
            kind=kind,
            account="home",
            created_at=utcnow(),
            state="stored",
            duration=None,
            language=None,
            content=MessageContent(**content),
            audio=None,
            audio_size=None,
            key_id="k",
        )

    to, subject, irt, refs = reply_draft_fields(
        stored(
            "text",
            sender="Alice <alice@example.com>",
            subject="Garden",
            message_id="<m2@example.com>",
            references=("<m0@example.com>", "<m1@example.com>"),
        )
    )
    assert (to, subject, irt) == (("alice@example.com",), "Re: Garden", "<m2@example.com>")
    assert refs == ("<m0@example.com>", "<m1@example.com>", "<m2@example.com>")
    assert reply_draft_fields(stored("text", sender="a@example.com", subject="RE: x"))[1] == "RE: x"
    with pytest.raises(ConfigError, match="summary"):
        reply_draft_fields(stored("summary", text="..."))


def test_record_without_sounddevice_says_what_to_install() -> None:
    """No sound card and no sounddevice on CI: --record must fail with the install hint, not a traceback."""
    pytest.importorskip("numpy")
    if "sounddevice" in sys.modules or _importable("sounddevice"):
        pytest.skip("sounddevice is installed here")
    from mailvoice.spoken.mic import record_wav

    with pytest.raises(MissingExtraError, match="pip install sounddevice"):
        record_wav(max_seconds=0.1)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.slow
@pytest.mark.servers
def test_voice_reply_arrives_threaded_with_transcript_and_playable_opus(
    tmp_path: Path, smtp_server: SmtpServer, mail_user: MailUser, spoken_wav: bytes
) -> None:
    from speech import wer, whisper_engine

    from mailvoice.audio import decode_audio
    from mailvoice.voicesend import VoiceDraft, reply_draft_fields, send_voice_email, transcribe_recording

    settings = _settings(tmp_path, smtp_server, mail_user)
    with _store(settings) as store:
        original = NewMessage(
            kind="text",
            account="home",
            content=MessageContent(
                text="Here are the garden plans.",
                subject="Garden plans",
                sender="Alice <alice@example.com>",
                message_id="<orig-1@example.com>",
                references=("<root@example.com>",),
            ),
        )
        store.record(messages=(original,))
        to, subject, irt, refs = reply_draft_fields(store.get_message(original.id))
        rec = transcribe_recording(settings, spoken_wav, "reply.wav", asr=whisper_engine())
        draft = VoiceDraft(to=to, cc=(), subject=subject, recording=rec, in_reply_to=irt, references=refs)
        sent = asyncio.run(send_voice_email(settings, store, draft, account="home"))
        assert sent.delivered and sent.sent_folder == "Sent", sent
        assert store.get_message(sent.message_id).kind == "voice_email"

    assert len(smtp_server.messages) == 1
    got = smtp_server.messages[0]
    assert got.recipients == ("alice@example.com",) and got.tls and got.authenticated
    msg = email.message_from_bytes(got.raw, policy=default)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == "Re: Garden plans"
    assert msg["In-Reply-To"] == "<orig-1@example.com>"
    assert msg["References"].split() == ["<root@example.com>", "<orig-1@example.com>"]
    assert msg["X-Mailvoice"] == "voice" and msg["From"] == f"{mail_user.user}@example.org"
    plain, rich = _body(msg, "plain"), _body(msg, "html")
    assert "Sent by voice" in plain and "Sent by voice" in rich
    assert wer(SPOKEN, plain.replace("\r\n", "\n").split("\n--\n")[0]) < 0.25, plain
    assert "garden plan" in rich.lower()
    audio = [p for p in msg.iter_attachments() if p.get_content_type() == "audio/ogg"]
    assert len(audio) == 1 and audio[0].get_filename() == "voice-message.ogg"
    data = audio[0].get_content()
    assert data[:4] == b"OggS" and b"OpusHead" in data[:200]
    clip = decode_audio(data, name="voice-message.ogg")
    assert abs(clip.duration - rec.duration) < 0.2
    heard = whisper_engine().transcribe(clip).text
    assert wer(SPOKEN, heard) < 0.25, heard

    copies = _sent_copies(mail_user)
    assert len(copies) == 1 and b"\\Seen" in copies[0][1]
    assert email.message_from_bytes(copies[0][0])["Message-ID"] == msg["Message-ID"]


@pytest.mark.slow
@pytest.mark.servers
def test_cli_send_with_audio_file(
    tmp_path: Path, smtp_server: SmtpServer, mail_user: MailUser, spoken_wav: bytes
) -> None:
    """The real CLI in a subprocess: `mailvoice send --to ... --audio F --yes`, MP3 configured for compatibility."""
    settings = _settings(tmp_path, smtp_server, mail_user)
    create_keyring(settings.general.resolved_key_file())  # what `mailvoice init` does
    audio = tmp_path / "message.wav"
    audio.write_bytes(spoken_wav)
    smtp, acc = settings.smtp, settings.accounts[0]
    config = tmp_path / "config.toml"
    config.write_text(
        f'[general]\ndata_dir = "{settings.general.data_dir}"\nkey_file = "{settings.general.key_file}"\n'
        f'[voice_email]\nformat = "mp3"\n'
        f'[smtp]\nhost = "{smtp.host}"\nport = {smtp.port}\nusername = "{smtp.username}"\n'
        f'password_env = "{smtp.password_env}"\nca_file = "{smtp.ca_file}"\n'
        f'[[accounts]]\nname = "home"\nhost = "{acc.host}"\nport = {acc.port}\nusername = "{acc.username}"\n'
        f'password_env = "{acc.password_env}"\nca_file = "{acc.ca_file}"\naddress = "{acc.address}"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVOICE_") or "TEST" in k}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailvoice",
            "--config",
            str(config),
            "send",
            "--to",
            "Bob <bob@example.com>",
            "--cc",
            "carol@example.com",
            "--audio",
            str(audio),
            "--yes",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Transcript" in proc.stderr and "garden" in proc.stderr.lower()
    got = smtp_server.messages[0]
    assert set(got.recipients) == {"bob@example.com", "carol@example.com"}
    msg = email.message_from_bytes(got.raw, policy=default)
    assert normalise(msg["Subject"]).startswith("hello alice")  # the first words; Whisper may punctuate them
    assert msg["In-Reply-To"] is None
    audio_parts = [p for p in msg.iter_attachments() if p.get_content_type() == "audio/mpeg"]
    assert len(audio_parts) == 1 and audio_parts[0].get_filename() == "voice-message.mp3"
    assert len(_sent_copies(mail_user)) == 1


def test_send_without_terminal_needs_yes(tmp_path: Path) -> None:
    from mailvoice.commands.send import _confirm

    args = replace_ns(yes=False)
    if sys.stdin.isatty():
        pytest.skip("needs a non-interactive stdin")
    with pytest.raises(ConfigError, match="--yes"):
        _confirm(args, "To: x", "hello")


def replace_ns(**kw: Any) -> Any:
    import argparse

    return argparse.Namespace(**kw)


def test_unknown_account_is_named(tmp_path: Path) -> None:
    from mailvoice.voicesend import account_context

    settings = replace(Settings(), general=GeneralSettings(data_dir=tmp_path))
    with pytest.raises(ConfigError, match="unknown account 'nope'"):
        account_context(settings, "nope")
