"""Render user-editable templates (string.Template: no code runs) into outgoing mails."""

from __future__ import annotations

import datetime
import html
import re
import string
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from importlib import resources
from pathlib import Path

from mailvoice.errors import ConfigError
from mailvoice.types import Attachment, Transcript

SUBJECT_WORDS = 8
SUBJECT_STYLES = ("thread", "reply", "informative")
"""thread: "Re: <original subject>" (Gmail and Thunderbird both thread it); reply: the same plus "— caller (0:42)"
(Thunderbird threads on References, Gmail starts a new conversation because the subject changed); informative:
the voicemail.subject template ("Voicemail from caller (0:42): first words")."""
_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|antw)\s*:\s*", re.IGNORECASE)


def _template_text(name: str, templates_dir: Path | None) -> str:
    if templates_dir is not None:
        path = templates_dir / name
        if path.exists():
            try:
                return path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"template {path} cannot be read: {exc}") from exc
    return resources.files("mailvoice").joinpath("data", "templates", name).read_text(encoding="utf-8")


def render(name: str, values: dict[str, str], templates_dir: Path | None = None) -> str:
    """Fill a template; an unknown $placeholder is a ConfigError naming the template and the placeholder."""
    text = _template_text(name, templates_dir)
    try:
        return string.Template(text).substitute(values)
    except (KeyError, ValueError) as exc:
        known = ", ".join(f"${k}" for k in sorted(values))
        raise ConfigError(f"template {name}: unknown or malformed placeholder {exc}; known: {known}") from exc


def format_duration(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def first_words(text: str, n: int = SUBJECT_WORDS) -> str:
    words = text.split()
    return " ".join(words[:n]) + ("…" if len(words) > n else "")


def marked_text(transcript: Transcript, threshold: float, *, as_html: bool) -> str:
    """The transcript with words below the probability threshold marked as uncertain."""
    if transcript.no_speech:
        return "<em>(no speech detected)</em>" if as_html else "(no speech detected)"
    words = transcript.words
    if not words:
        return html.escape(transcript.text) if as_html else transcript.text
    out: list[str] = []
    for w in words:
        token = w.word.strip()
        if not token:
            continue
        # Whisper words carry their own leading space; punctuation-led pieces (".30", ",") attach directly.
        space = " " if out and w.word[:1].isspace() else ""
        if w.probability < threshold:
            token = f'<span style="background: #fff3b0">{html.escape(token)}</span>' if as_html else f"[{token}?]"
        elif as_html:
            token = html.escape(token)
        out.append(space + token)
    return "".join(out)


def auto_mail(
    kind: str,
    *,
    subject: str,
    sender: str,
    recipients: tuple[str, ...],
    message_id: str,
    in_reply_to: str | None = None,
    references: str = "",
) -> EmailMessage:
    """Headers of a mail mailvoice generates on its own (RFC 3834 Auto-Submitted, X-Mailvoice names the kind, so
    a copy landing in a watched folder is never processed again); the subject is cleaned for header use."""
    from mailvoice.mail.headers import clean_header_text

    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = clean_header_text(subject, max_len=200)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(_now())
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Mailvoice"] = kind
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = " ".join(f"{references} {in_reply_to}".split()[-20:])
    return msg


@dataclass(frozen=True, slots=True)
class VoicemailMail:
    """What a transcript mail says; rendered into an RFC 5322 message by build_voicemail_mail."""

    caller: str
    transcript: Transcript
    received: str
    original_subject: str
    original_message_id: str | None
    original_references: str
    audio: Attachment | None
    notes: tuple[str, ...] = ()
    more: tuple[tuple[str, Transcript], ...] = ()
    """Further recordings of the same voicemail (label, transcript): one incoming mail gives one transcript mail."""
    more_audio: tuple[Attachment, ...] = ()


def voicemail_subject(vm: VoicemailMail, values: dict[str, str], style: str, templates_dir: Path | None = None) -> str:
    """The transcript mail's subject in the configured style; a reply style needs the original's Message-ID and
    subject (without them nothing can thread, and the informative subject says more)."""
    from mailvoice.mail.headers import clean_header_text

    if style not in SUBJECT_STYLES:
        raise ConfigError(f"setting delivery.subject_style = {style!r} is invalid: expected one of {SUBJECT_STYLES}")
    original = clean_header_text(vm.original_subject, max_len=0)
    if style == "informative" or not original or not vm.original_message_id:
        return render("voicemail.subject", values, templates_dir)
    # one "Re: " only: Gmail compares subjects with the reply prefix removed, so "Re: Re: x" is still x
    reply = "Re: " + _REPLY_PREFIX.sub("", original, count=1)
    if style == "thread":
        return reply
    return render("voicemail.reply.subject", {**values, "reply_subject": reply}, templates_dir)


def build_voicemail_mail(
    vm: VoicemailMail,
    *,
    sender: str,
    recipients: tuple[str, ...],
    message_id: str,
    uncertain_below: float,
    templates_dir: Path | None = None,
    subject_style: str = "thread",
) -> EmailMessage:
    """The transcript mail, threaded as a reply to the voicemail; every untrusted string is cleaned for headers."""
    from mailvoice.engines.language import language_name, other_language_notice

    t = vm.transcript
    words = "(no speech)" if t.no_speech else first_words(t.text)
    notes = vm.notes
    other = ""
    if t.other_language:
        other = other_language_notice(t.other_language, whole=not t.text, audio_attached=vm.audio is not None)
        words = words or f"({other.partition(' (')[0]})"
        notes = notes if not t.text else (other, *notes)
    common = {
        "caller": vm.caller,
        "duration": format_duration(t.duration + sum(more.duration for _, more in vm.more)),
        "received": vm.received,
        "language": language_name(t.language),
        "original_subject": vm.original_subject,
        "first_words": words,
    }
    subject = voicemail_subject(vm, common, subject_style, templates_dir)
    text_notes = "".join(f"Note: {n}\n\n" for n in notes)
    plain_text = f"({other})" if other and not t.text else marked_text(t, uncertain_below, as_html=False)
    rich_text = (
        f"<em>({html.escape(other)})</em>" if other and not t.text else marked_text(t, uncertain_below, as_html=True)
    )
    if t.translation:
        plain_text += f"\n\nEnglish translation:\n{t.translation}"
        rich_text += f"<p><strong>English translation:</strong><br>{html.escape(t.translation)}</p>"
    plain_text += "".join(
        f"\n\n--- {label} ---\n{marked_text(more, uncertain_below, as_html=False)}" for label, more in vm.more
    )
    rich_text += "".join(
        f"<h3>{html.escape(label)}</h3>\n<p>{marked_text(more, uncertain_below, as_html=True)}</p>"
        for label, more in vm.more
    )
    plain = render("voicemail.txt", {**common, "transcript": plain_text, "notes": text_notes}, templates_dir)
    esc = {k: html.escape(v) for k, v in common.items()}
    html_notes = "".join(f"<p><em>Note: {html.escape(n)}</em></p>\n" for n in notes)
    rich = render("voicemail.html", {**esc, "transcript": rich_text, "notes": html_notes}, templates_dir)

    msg = auto_mail(
        "transcript",
        subject=subject,
        sender=sender,
        recipients=recipients,
        message_id=message_id,
        in_reply_to=vm.original_message_id,
        references=vm.original_references,
    )
    msg.set_content(plain)
    msg.add_alternative(rich, subtype="html")
    audio = ((vm.audio,) if vm.audio is not None else ()) + vm.more_audio
    if audio:
        msg.make_mixed()
    for att in audio:
        maintype, _, subtype = att.content_type.partition("/")
        msg.add_attachment(
            att.data, maintype=maintype or "application", subtype=subtype or "octet-stream", filename=att.filename
        )
    return msg


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
