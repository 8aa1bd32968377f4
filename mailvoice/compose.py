"""Turn a transcribed voicemail (or a plain text mail) into store records and the outgoing transcript mail."""

from __future__ import annotations

from collections.abc import Sequence
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
    """The Message-ID to reply to, when it can be written back as it is (ASCII, no controls, bounded); else None."""
    from mailvoice.mail.headers import clean_message_id

    return clean_message_id(parsed.message_id) or clean_message_id(parsed.message_id_normalized)


def envelope_addresses(values: tuple[str, ...]) -> tuple[str, ...]:
    """Bare addresses for the SMTP envelope, from 'Name <addr>' forms."""
    return tuple(a for _, a in getaddresses(list(values)) if a)


def compose_voicemail(
    settings: Settings,
    parsed: ParsedMail,
    ctx: Context,
    transcribed: Sequence[tuple[AudioPart, Transcript]],
    *,
    notes: tuple[str, ...],
    source: str,
) -> tuple[tuple[NewMessage, ...], NewOutgoing]:
    """A sealed record per recording plus one transcript mail holding them all, threaded as a reply to the voicemail.

    Recordings with no speech are named in the notes (and never get a mail of their own).
    """
    from mailvoice.mail.callerid import caller_label, extract_caller
    from mailvoice.mail.headers import clean_message_ids, make_message_id
    from mailvoice.render import VoicemailMail, build_voicemail_mail
    from mailvoice.store.records import Envelope, MessageContent, NewMessage, NewOutgoing

    info = extract_caller(parsed)
    from_name, from_addr = _from(parsed)
    caller = caller_label(info, from_name or from_addr)
    references = clean_message_ids(parsed.references)
    messages: list[NewMessage] = []
    for part, transcript in transcribed:
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
            references=references,
        )
        messages.append(
            NewMessage(
                kind="voicemail",
                account=ctx.account,
                content=content,
                duration=duration,
                language=transcript.language,
                audio=part.data,
            )
        )
    # The first recording with speech leads (subject, first words); every other one follows in its own section.
    main_part, main = next(((p, t) for p, t in transcribed if not t.no_speech), transcribed[0])
    rest = [(p, t) for p, t in transcribed if p is not main_part]
    silent = tuple(f"{p.filename}: no speech detected" for p, t in transcribed if t.no_speech and rest)
    more = tuple((f"{p.filename} ({p.content_type})", t) for p, t in rest)
    attach = settings.delivery.attach_audio
    sender = sender_address(settings, ctx)
    message_id = make_message_id(_domain(sender))
    mail = build_voicemail_mail(
        VoicemailMail(
            caller=caller,
            transcript=main,
            received=parsed.date.strftime("%a %d %b %Y %H:%M %Z").strip() if parsed.date else "unknown",
            original_subject=parsed.subject,
            original_message_id=_thread_id(parsed),
            original_references=" ".join(references),
            audio=Attachment(main_part.filename, main_part.content_type, main_part.data) if attach else None,
            notes=silent + notes,
            more=more,
            more_audio=tuple(Attachment(p.filename, p.content_type, p.data) for p, _ in rest if attach),
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
        message_id_header=message_id, raw=mail.as_bytes(policy=SMTP), envelope=envelope, message_id=messages[0].id
    )
    return tuple(messages), protect_outgoing(settings, out)


def compose_text_record(parsed: ParsedMail, ctx: Context, source: str) -> NewMessage:
    """A plain mail, kept sealed for the spoken inbox summary."""
    from mailvoice.mail.headers import clean_message_ids
    from mailvoice.store.records import MessageContent, NewMessage

    name, addr = _from(parsed)
    content = MessageContent(
        text=parsed.text,
        subject=parsed.subject,
        sender=f"{name} <{addr}>" if name else addr,
        recipients=ctx.recipients,
        source=source,
        message_id=_thread_id(parsed) or "",
        references=clean_message_ids(parsed.references),
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
        f"Reason: {clean_header_text(reason, max_len=2000)}\n"
        f"Where: {source}\n\n"
        "The original stays in your mailbox, untouched. A sealed copy is kept in quarantine: see it with\n"
        "`mailvoice quarantine list`, and after fixing the cause run `mailvoice quarantine retry ID`.\n"
    )
    envelope = Envelope(sender=envelope_addresses((sender,))[0], recipients=envelope_addresses(ctx.recipients))
    out = NewOutgoing(message_id_header=message_id, raw=msg.as_bytes(policy=SMTP), envelope=envelope)
    return protect_outgoing(settings, out)
