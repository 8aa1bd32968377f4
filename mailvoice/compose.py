"""Turn a transcribed voicemail (or a plain text mail) into store records and the outgoing transcript mail."""

from __future__ import annotations

import re
from email.policy import SMTP
from email.utils import getaddresses, parseaddr
from typing import TYPE_CHECKING

from mailvoice.pgpmime import protect_outgoing
from mailvoice.types import Attachment, Transcript

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.mail.mime import ParsedMail
    from mailvoice.mail.voicemail import AudioPart
    from mailvoice.pipeline import Context
    from mailvoice.store.records import NewMessage, NewOutgoing


def sender_address(settings: Settings, ctx: Context) -> str:
    """The From of our mails: the configured SMTP sender, else the mailbox's own address."""
    return settings.smtp.sender or f"mailvoice <{ctx.address}>"


def _domain(address: str) -> str:
    addr = parseaddr(address)[1]
    return addr.rpartition("@")[2] or "mailvoice.invalid"


def _from(parsed: ParsedMail) -> tuple[str, str]:
    return (parsed.from_.name, parsed.from_.address) if parsed.from_ is not None else ("", "")


def _thread_id(parsed: ParsedMail) -> str | None:
    """The Message-ID to reply to: as given when well-formed, else the normalised form."""
    mid = parsed.message_id or ""
    if re.fullmatch(r"<[^<>\s]{1,500}>", mid):
        return mid
    return parsed.message_id_normalized


def envelope_addresses(values: tuple[str, ...]) -> tuple[str, ...]:
    """Bare addresses for the SMTP envelope, from 'Name <addr>' forms."""
    return tuple(a for _, a in getaddresses(list(values)) if a)


def compose_voicemail(
    settings: Settings,
    parsed: ParsedMail,
    ctx: Context,
    part: AudioPart,
    transcript: Transcript,
    *,
    notes: tuple[str, ...],
    source: str,
) -> tuple[NewMessage, NewOutgoing | None]:
    """The sealed voicemail record plus its transcript mail, threaded as a reply to the voicemail."""
    from mailvoice.mail.callerid import caller_label, extract_caller
    from mailvoice.mail.headers import make_message_id
    from mailvoice.render import VoicemailMail, build_voicemail_mail
    from mailvoice.store.records import Envelope, MessageContent, NewMessage, NewOutgoing

    info = extract_caller(parsed)
    from_name, from_addr = _from(parsed)
    caller = caller_label(info, from_name or from_addr)
    duration = info.duration if transcript.duration <= 0 and info.duration else transcript.duration
    content = MessageContent(
        text=transcript.text,
        transcript=transcript,
        caller=caller,
        subject=parsed.subject,
        sender=from_addr,
        recipients=ctx.recipients,
        source=source,
        audio_filename=part.filename,
        audio_type=part.content_type,
        message_id=_thread_id(parsed) or "",
        references=parsed.references,
    )
    message = NewMessage(
        kind="voicemail",
        account=ctx.account,
        content=content,
        duration=duration,
        language=transcript.language,
        audio=part.data,
    )
    sender = sender_address(settings, ctx)
    message_id = make_message_id(_domain(sender))
    mail = build_voicemail_mail(
        VoicemailMail(
            caller=caller,
            transcript=transcript,
            received=parsed.date.strftime("%a %d %b %Y %H:%M %Z").strip() if parsed.date else "unknown",
            original_subject=parsed.subject,
            original_message_id=_thread_id(parsed),
            original_references=" ".join(parsed.references),
            audio=Attachment(part.filename, part.content_type, part.data) if settings.delivery.attach_audio else None,
            notes=notes,
        ),
        sender=sender,
        recipients=ctx.recipients,
        message_id=message_id,
        uncertain_below=settings.delivery.mark_uncertain_below,
        templates_dir=settings.delivery.templates_dir,
        subject_style=settings.delivery.subject_style,
    )
    envelope = Envelope(sender=envelope_addresses((sender,))[0], recipients=envelope_addresses(ctx.recipients))
    out = NewOutgoing(
        message_id_header=message_id, raw=mail.as_bytes(policy=SMTP), envelope=envelope, message_id=message.id
    )
    return message, protect_outgoing(settings, out)


def compose_text_record(parsed: ParsedMail, ctx: Context, source: str) -> NewMessage:
    """A plain mail, kept sealed for the spoken inbox summary."""
    from mailvoice.store.records import MessageContent, NewMessage

    name, addr = _from(parsed)
    content = MessageContent(
        text=parsed.text,
        subject=parsed.subject,
        sender=f"{name} <{addr}>" if name else addr,
        recipients=ctx.recipients,
        source=source,
        message_id=_thread_id(parsed) or "",
        references=parsed.references,
    )
    return NewMessage(kind="text", account=ctx.account, content=content)


def compose_quarantine_notice(
    settings: Settings, parsed: ParsedMail | None, ctx: Context, reason: str, *, had_audio: bool, source: str
) -> NewOutgoing:
    """Tell the mailbox owner that a mail (usually a voicemail) could not be handled, and what to do about it."""
    from mailvoice.mail.headers import clean_header_text, make_message_id
    from mailvoice.render import auto_mail
    from mailvoice.store.records import Envelope, NewOutgoing

    sender = sender_address(settings, ctx)
    name, addr = _from(parsed) if parsed is not None else ("", "")
    original = clean_header_text(parsed.subject if parsed is not None else "", max_len=120) or "(no subject)"
    what = "Voicemail not transcribed" if had_audio else "Message not processed"
    message_id = make_message_id(_domain(sender))
    msg = auto_mail(
        "notice",
        subject=f"{what}: {original}",
        sender=sender,
        recipients=ctx.recipients,
        message_id=message_id,
        in_reply_to=_thread_id(parsed) if parsed is not None else None,
    )
    who = clean_header_text(f"{name} <{addr}>" if name else addr, max_len=200) or "an unknown sender"
    msg.set_content(
        f"mailvoice could not handle a message from {who} ({original}).\n\n"
        f"Reason: {clean_header_text(reason, max_len=600)}\n"
        f"Where: {source}\n\n"
        "The original stays in your mailbox, untouched. A sealed copy is kept in quarantine: see it with\n"
        "`mailvoice quarantine list`, and after fixing the cause run `mailvoice quarantine retry ID`.\n"
    )
    envelope = Envelope(sender=envelope_addresses((sender,))[0], recipients=envelope_addresses(ctx.recipients))
    out = NewOutgoing(message_id_header=message_id, raw=msg.as_bytes(policy=SMTP), envelope=envelope)
    return protect_outgoing(settings, out)
