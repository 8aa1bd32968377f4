"""Voice email: a recording becomes a mail with its transcript (plain and HTML), the audio and a "sent by voice" line.

Send and reply share one path: transcribe, review (the CLI), record the sealed voice_email row and its outgoing mail
in one transaction, flush the outbox, then file a copy in the account's Sent folder. Replies thread through the
stored message's Message-ID and References.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from typing import TYPE_CHECKING

from mailvoice.errors import ConfigError, MailvoiceError
from mailvoice.render import first_words, format_duration, render

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.engines.base import AsrEngine
    from mailvoice.pipeline import Context
    from mailvoice.store import Message, Store
    from mailvoice.types import Transcript

log = logging.getLogger(__name__)

_MSGID = re.compile(r"<[^<>\s]{1,500}>")
_RE = re.compile(r"^\s*(re|aw|sv|antw)\s*:", re.IGNORECASE)
MAX_REFERENCES = 20


@dataclass(frozen=True)
class Recording:
    """A transcribed recording, with the audio re-encoded for mail."""

    transcript: Transcript
    audio: bytes
    format: str
    duration: float


@dataclass(frozen=True)
class VoiceDraft:
    """Everything a voice email says, before it is sent."""

    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    recording: Recording
    in_reply_to: str = ""
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sent:
    """What send_voice_email did."""

    message_id: str
    """The stored voice_email row."""
    message_id_header: str
    delivered: bool
    """False when the outbox keeps the mail for a retry (the error says why)."""
    sent_folder: str
    """Where the copy went ("" when none was filed)."""
    error: str = ""


def check_addresses(values: list[str] | tuple[str, ...], what: str) -> tuple[str, ...]:
    """Bare addresses from user input; a value that does not parse as exactly one address is a ConfigError."""
    from mailvoice.mail.headers import parse_addresses

    out: list[str] = []
    for value in values:
        pairs = parse_addresses([value]) if not any(c in value for c in "\r\n\0") else []
        if len(pairs) != 1:
            raise ConfigError(f"{what} {value!r} is not one valid mail address (e.g. alice@example.com)")
        out.append(pairs[0][1])
    return tuple(out)


def transcribe_recording(
    settings: Settings, data: bytes, name: str, asr: AsrEngine | None = None, fmt: str | None = None
) -> Recording:
    """Transcribe untrusted audio bytes and re-encode them (Ogg/Opus or MP3) for the mail; blocking."""
    from mailvoice.audio import decode_audio, encode_audio, load_for_asr

    clip = load_for_asr(data, name=name, settings=settings.audio)
    if asr is None:
        from mailvoice.engines import load_asr

        asr = load_asr(settings.asr, settings.general)
    transcript = asr.transcribe(clip)
    kind = fmt or settings.voice_email.format
    # re-encoding also drops whatever metadata (names, locations) the original file carried
    playable = decode_audio(data, name=name, settings=settings.audio, sample_rate=48000)
    return Recording(transcript, encode_audio(playable, kind), kind, playable.duration)


def subject_for(given: str | None, transcript: Transcript) -> str:
    """The given subject, else the transcript's first words (template voice_email.subject)."""
    from mailvoice.mail.headers import clean_header_text

    if given and given.strip():
        return clean_header_text(given, max_len=200)
    words = first_words(transcript.text) if transcript.text.strip() else "Voice message"
    return clean_header_text(render("voice_email.subject", {"first_words": words}), max_len=200) or "Voice message"


def reply_draft_fields(message: Message) -> tuple[tuple[str, ...], str, str, tuple[str, ...]]:
    """(to, subject, in_reply_to, references) for a reply to a stored message."""
    c = message.content
    if message.kind in ("text", "voicemail"):
        to = tuple(a for a in (parseaddr(c.sender)[1],) if a)
    elif message.kind == "voice_email":
        to = c.recipients
    else:
        raise ConfigError(
            f"message {message.id} is a {message.kind}: only mails, voicemails and voice emails can be answered"
        )
    if not to:
        raise ConfigError(f"message {message.id} has no sender address to reply to")
    subject = c.subject or ("Voicemail" if message.kind == "voicemail" else "")
    subject = subject if _RE.match(subject) else f"Re: {subject}".strip()
    mid = c.message_id if _MSGID.fullmatch(c.message_id or "") else ""
    if not mid:
        log.warning("message %s has no stored Message-ID: the reply cannot be threaded", message.id)
    refs = tuple(r for r in c.references if _MSGID.fullmatch(r))
    references = (*refs, mid) if mid else refs
    return to, subject, mid, references[-MAX_REFERENCES:]


def _transcript_html(text: str) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()] or ["(no speech detected)"]
    return "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def build_voice_email(settings: Settings, draft: VoiceDraft, *, sender: str, message_id: str) -> EmailMessage:
    """multipart/mixed: (text/plain + text/html with the transcript and the "sent by voice" line) + the audio."""
    from mailvoice.audio import content_type_for, extension_for
    from mailvoice.mail.headers import clean_header_text
    from mailvoice.store.records import utcnow

    rec, tdir = draft.recording, settings.delivery.templates_dir
    audio_name = f"voice-message{extension_for(rec.format)}"
    values = {"duration": format_duration(rec.duration), "audio_name": audio_name}
    text = rec.transcript.text.strip() or "(no speech detected)"
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = clean_header_text(draft.subject, max_len=200)
    msg["From"] = sender
    msg["To"] = ", ".join(draft.to)
    if draft.cc:
        msg["Cc"] = ", ".join(draft.cc)
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(utcnow())
    msg["X-Mailvoice"] = "voice"
    if draft.in_reply_to:
        msg["In-Reply-To"] = draft.in_reply_to
    if draft.references:
        msg["References"] = " ".join(draft.references)
    msg.set_content(render("voice_email.txt", {**values, "transcript": text}, tdir))
    msg.add_alternative(
        render(
            "voice_email.html",
            {**{k: html.escape(v) for k, v in values.items()}, "transcript": _transcript_html(text)},
            tdir,
        ),
        subtype="html",
    )
    maintype, _, subtype = content_type_for(rec.format).partition("/")
    msg.add_attachment(rec.audio, maintype=maintype, subtype=subtype, filename=audio_name)
    return msg


def account_context(settings: Settings, account: str | None) -> Context:
    """The named account's context, or the first configured one."""
    from mailvoice.runner import contexts

    ctxs = contexts(settings)
    if account is None:
        if not ctxs:
            raise ConfigError("no account configured: add an [[accounts]] or [[maildirs]] section")
        return next(iter(ctxs.values()))
    if account not in ctxs:
        raise ConfigError(f"unknown account {account!r}: known accounts are {', '.join(ctxs) or '(none)'}")
    return ctxs[account]


def _file_copy(settings: Settings, account: str, raw: bytes) -> str:
    from mailvoice.spoken.sent import append_to_maildir_sent, append_to_sent

    for acc in settings.accounts:
        if acc.name == account:
            return append_to_sent(acc, raw, settings.voice_email.sent_folder)
    for md in settings.maildirs:
        if md.name == account:
            return append_to_maildir_sent(md, raw)
    return ""


async def send_voice_email(settings: Settings, store: Store, draft: VoiceDraft, *, account: str | None = None) -> Sent:
    """Seal and queue the voice email, send it now through the outbox, then file a copy in Sent."""
    from mailvoice.audio import content_type_for, extension_for
    from mailvoice.compose import envelope_addresses
    from mailvoice.mail.headers import make_message_id
    from mailvoice.outbox import Outbox
    from mailvoice.pgpmime import protect_outgoing
    from mailvoice.store.records import Envelope, MessageContent, NewMessage, NewOutgoing

    ctx = account_context(settings, account)
    sender = ctx.address or settings.smtp.sender
    bare = envelope_addresses((sender,))
    if not bare:
        raise ConfigError(f"account {ctx.account!r} has no address to send from: set its address or smtp.sender")
    mid = make_message_id(bare[0].rpartition("@")[2] or "mailvoice.invalid")
    mail = build_voice_email(settings, draft, sender=sender, message_id=mid)
    raw = mail.as_bytes(policy=SMTP)
    rec = draft.recording
    content = MessageContent(
        text=rec.transcript.text,
        transcript=rec.transcript,
        subject=draft.subject,
        sender=sender,
        recipients=(*draft.to, *draft.cc),
        message_id=mid,
        references=draft.references,
        source="voice email",
        audio_filename=f"voice-message{extension_for(rec.format)}",
        audio_type=content_type_for(rec.format),
    )
    message = NewMessage(
        kind="voice_email",
        account=ctx.account,
        content=content,
        duration=rec.duration,
        language=rec.transcript.language,
        audio=rec.audio,
    )
    out = protect_outgoing(
        settings,
        NewOutgoing(
            message_id_header=mid, raw=raw, envelope=Envelope(bare[0], (*draft.to, *draft.cc)), message_id=message.id
        ),
    )
    await asyncio.to_thread(store.record, (message,), (out,))
    await Outbox(settings, store).flush()
    row = await asyncio.to_thread(store.get_outgoing, out.id)
    if row.state != "sent":
        return Sent(message.id, mid, False, "", row.last_error or row.state)
    folder = ""
    if settings.voice_email.append_sent:
        try:
            folder = await asyncio.to_thread(_file_copy, settings, ctx.account, raw)
        except (MailvoiceError, OSError) as exc:  # the mail is out: say so and go on
            log.warning("voice email sent, but no copy was filed in Sent: %s", exc)
            return Sent(message.id, mid, True, "", f"no copy filed in Sent: {exc}")
    return Sent(message.id, mid, True, folder)
