"""Transcript mails thread under the voicemail in Gmail and in Thunderbird: References, In-Reply-To and the subject.

The clients' rules, as each documents them: Thunderbird threads on References / In-Reply-To alone; Gmail also needs
the subject to be the original's, give or take a reply prefix ("test" and "Re: test" thread, "test 123" does not).
"""

from __future__ import annotations

import email
import re
from dataclasses import replace
from email.message import Message
from email.policy import default as default_policy

import pytest
from mailcorpus import asterisk_mail, audio_part, message, text_part, tiny_wav

from mailvoice.compose import compose_voicemail
from mailvoice.config import DeliverySettings, Settings
from mailvoice.errors import ConfigError
from mailvoice.mail.mime import parse_message
from mailvoice.mail.voicemail import find_audio_parts
from mailvoice.pipeline import Context
from mailvoice.types import Transcript

CTX = Context(account="home", address="me@example.org", recipients=("me@example.org",))
TRANSCRIPT = Transcript(text="Hi, this is Alice about the invoice, please call back.", language="en", duration=42.4)
ORIGINAL_ID = "<Asterisk-5-1234567890-100-4242@pbx.example.com>"
ORIGINAL_SUBJECT = "[PBX]: New message 5 in mailbox 100"


def transcript_mail(raw: bytes, settings: Settings) -> Message:
    parsed = parse_message(raw)
    part = find_audio_parts(parsed)[0]
    _, out = compose_voicemail(settings, parsed, CTX, [(part, TRANSCRIPT)], notes=(), source="home/INBOX uid 1")
    assert out is not None
    return email.message_from_bytes(out.raw, policy=default_policy)


def thunderbird_threads(mail: Message, original_id: str) -> bool:
    return original_id in str(mail["References"]).split() or mail["In-Reply-To"] == original_id


def gmail_threads(mail: Message, original_id: str, original_subject: str) -> bool:
    base = re.sub(r"^\s*((re|fwd?|aw)\s*:\s*)+", "", str(mail["Subject"]), flags=re.IGNORECASE)
    return thunderbird_threads(mail, original_id) and base == original_subject


def test_default_subject_threads_in_gmail_and_thunderbird() -> None:
    mail = transcript_mail(asterisk_mail(), Settings())
    assert mail["Subject"] == f"Re: {ORIGINAL_SUBJECT}"
    assert mail["In-Reply-To"] == ORIGINAL_ID
    assert thunderbird_threads(mail, ORIGINAL_ID)
    assert gmail_threads(mail, ORIGINAL_ID, ORIGINAL_SUBJECT)


def test_reply_style_names_caller_and_length() -> None:
    settings = Settings(delivery=DeliverySettings(subject_style="reply"))
    mail = transcript_mail(asterisk_mail(), settings)
    assert mail["Subject"] == f"Re: {ORIGINAL_SUBJECT} — Alice Smith (5551234567) (0:42)"
    assert thunderbird_threads(mail, ORIGINAL_ID)


def test_informative_style_keeps_the_template_subject() -> None:
    settings = Settings(delivery=DeliverySettings(subject_style="informative"))
    mail = transcript_mail(asterisk_mail(), settings)
    assert str(mail["Subject"]).startswith("Voicemail from Alice Smith")
    assert "0:42" in str(mail["Subject"])
    assert thunderbird_threads(mail, ORIGINAL_ID) and not gmail_threads(mail, ORIGINAL_ID, ORIGINAL_SUBJECT)


def test_one_reply_prefix_and_fallbacks() -> None:
    raw = asterisk_mail().replace(ORIGINAL_SUBJECT.encode(), b"RE: Callback wanted")
    mail = transcript_mail(raw, Settings())
    assert mail["Subject"] == "Re: Callback wanted"
    assert gmail_threads(mail, ORIGINAL_ID, "Callback wanted")
    # no original subject: nothing to thread on in Gmail, the informative subject says more
    bare = message(
        [("From", "pbx@example.com"), ("To", "me@example.org"), ("Message-ID", "<x1@example.com>")],
        [text_part("voicemail"), audio_part(tiny_wav(), "audio/x-wav", "msg.wav")],
    )
    assert str(transcript_mail(bare, Settings())["Subject"]).startswith("Voicemail from ")


def test_unknown_style_is_a_config_error() -> None:
    settings = replace(Settings(), delivery=replace(DeliverySettings(), subject_style="fancy"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="subject_style"):
        transcript_mail(asterisk_mail(), settings)
