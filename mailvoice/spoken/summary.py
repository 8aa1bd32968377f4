"""The spoken inbox summary: ranked items from the store, a script from user-editable templates, audio, delivery.

Owner-only by construction: the recipients come from delivery.owners (else the account's own address) and no
caller can name another address; nothing in a received mail can ask for a summary.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr
from typing import TYPE_CHECKING, Literal

from mailvoice.errors import ConfigError
from mailvoice.render import auto_mail, format_duration, render
from mailvoice.speechtext import clean_body, first_sentences, speak_address, speak_subject
from mailvoice.spoken.lang import voice_language
from mailvoice.spoken.normalize import normalize
from mailvoice.spoken.numbers import cardinal

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.engines.base import TtsEngine
    from mailvoice.store import Message, Store
    from mailvoice.store.records import NewMessage, NewOutgoing
    from mailvoice.types import AudioClip

log = logging.getLogger(__name__)

CHARS_PER_SECOND = 16.0
"""Piper's joe voice at length_scale 1 speaks about 16 characters a second (pauses included): for the opening."""
_AGE = re.compile(r"^\s*(\d{1,4})\s*([mhdw])\s*$", re.IGNORECASE)
_AGE_UNITS = {"m": ("minute", 60), "h": ("hour", 3600), "d": ("day", 86400), "w": ("week", 604800)}


@dataclass(frozen=True)
class SummaryItem:
    """One message as the summary speaks it."""

    kind: Literal["voicemail", "text"]
    sender: str
    """Spoken form: display name, or "alice at example dot com"."""
    subject: str
    gist: str
    """The first sentences of the cleaned body or the voicemail transcript, as speech text."""
    received: datetime
    vip: bool
    message_id: str


@dataclass(frozen=True)
class SummaryScript:
    """What the summary says, and the facts its mail and feed entry show."""

    text: str
    subject: str
    account: str
    count: int
    voicemails: int
    items: tuple[SummaryItem, ...]


@dataclass(frozen=True)
class SpokenSummary:
    """A script with its audio, encoded."""

    script: SummaryScript
    audio: bytes
    format: str
    duration: float


def parse_age(text: str) -> timedelta:
    """ "24h", "3d", "90m", "1w" as a timedelta; ConfigError naming the form otherwise."""
    m = _AGE.match(text or "")
    if m is None:
        raise ConfigError(f"age {text!r} is invalid: expected a number and a unit m, h, d or w (e.g. 24h, 3d)")
    return timedelta(seconds=int(m.group(1)) * _AGE_UNITS[m.group(2).lower()][1])


def period_words(text: str) -> str:
    """ "24h" -> "in the last twenty-four hours"."""
    m = _AGE.match(text or "")
    if m is None:
        return "recently"
    n, (unit, _) = int(m.group(1)), _AGE_UNITS[m.group(2).lower()]
    return f"in the last {unit}" if n == 1 else f"in the last {cardinal(n)} {unit}s"


def is_vip(address: str, vip: tuple[str, ...]) -> bool:
    """True for a configured VIP address or a sender in a configured "@domain"."""
    addr = parseaddr(address)[1].lower()
    if not addr:
        return False
    for entry in (v.strip().lower() for v in vip):
        if entry and (addr == entry or (entry.startswith("@") and addr.endswith(entry))):
            return True
    return False


def _item(message: Message, settings: Settings) -> SummaryItem:
    c = message.content
    count = max(1, settings.summary.sentences)
    lang = voice_language(settings.tts)
    if message.kind == "voicemail":
        sender = normalize(c.caller, lang) if c.caller else "an unknown caller"
        gist = first_sentences(normalize(c.text, lang), count) if c.text else "No speech was detected."
        return SummaryItem(
            "voicemail", sender, "", gist, message.created_at, is_vip(c.sender, settings.summary.vip), message.id
        )
    name, addr = parseaddr(c.sender)
    return SummaryItem(
        "text",
        normalize(speak_address(name, addr), lang),
        normalize(speak_subject(c.subject), lang),
        first_sentences(clean_body(c.text, lang), count),
        message.created_at,
        is_vip(c.sender, settings.summary.vip),
        message.id,
    )


def collect(store: Store, account: str, since: datetime, settings: Settings) -> list[SummaryItem]:
    """Received mails and voicemails of one account since a time, ranked: voicemails, VIPs, then newest first."""
    items: list[SummaryItem] = []
    for kind in ("voicemail", "text"):
        for message in store.list_messages(kind, account=account, limit=500):
            if message.created_at >= since:
                items.append(_item(message, settings))
    return rank(items)


def rank(items: list[SummaryItem]) -> list[SummaryItem]:
    """Voicemails first, then VIP senders, then everything else; newest first within each group."""
    return sorted(items, key=lambda i: (0 if i.kind == "voicemail" else 1 if i.vip else 2, -i.received.timestamp()))


def _plural(n: int, word: str) -> str:
    return f"{'no' if n == 0 else 'one' if n == 1 else cardinal(n)} {word}{'' if n == 1 else 's'}"


def _length_words(seconds: float) -> str:
    minutes = round(seconds / 60.0)
    return "Under a minute" if minutes < 1 else f"About {_plural(minutes, 'minute')}"


def build_script(
    items: list[SummaryItem], settings: Settings, *, account: str, since: str, now: datetime
) -> SummaryScript:
    """Fill the summary templates (templates/summary.*); the opening estimates its own length."""
    tdir = settings.delivery.templates_dir
    shown = items[: max(1, settings.summary.max_items)]
    voicemails = sum(1 for i in items if i.kind == "voicemail")
    period = period_words(since)
    if not items:
        text = render("summary.empty", {"period": period, "account": account}, tdir)
    else:
        spoken_items = [
            render(
                "summary.item",
                {
                    "kind": "Voicemail" if i.kind == "voicemail" else "Message",
                    "sender": i.sender,
                    "about": f", about {i.subject}" if i.subject else "",
                    "gist": i.gist,
                    "account": account,
                },
                tdir,
            ).strip()
            for i in shown
        ]
        hidden = len(items) - len(shown)
        values = {
            "messages": _plural(len(items), "new message").capitalize(),
            "period": period,
            "voicemails": _plural(voicemails, "voicemail"),
            "items": "\n\n".join(spoken_items),
            "more": f"And {_plural(hidden, 'more message')}." if hidden else "",
            "account": account,
            "length": "$length",
        }
        draft = render("summary.script", values, tdir)
        length = _length_words(len(draft) / CHARS_PER_SECOND)
        text = draft.replace("$length", length)
    subject = render(
        "summary.subject",
        {
            "count": str(len(items)),
            "voicemail_count": str(voicemails),
            "date": now.strftime("%a %d %b %H:%M"),
            "account": account,
        },
        tdir,
    )
    return SummaryScript(
        text=normalize(text, voice_language(settings.tts)).strip(),
        subject=" ".join(subject.split()),
        account=account,
        count=len(items),
        voicemails=voicemails,
        items=tuple(items),
    )


def synthesize(tts: TtsEngine, text: str) -> AudioClip:
    """The whole script as one clip, sentence by sentence with the engine's pauses."""
    from mailvoice.audio import assemble

    return assemble(tts.synthesize(text))


def speak_summary(
    settings: Settings,
    store: Store,
    tts: TtsEngine,
    *,
    account: str,
    since: str = "",
    fmt: str | None = None,
    now: datetime | None = None,
) -> SpokenSummary:
    """Collect, script, synthesize and encode one account's summary (blocking: run it off the event loop)."""
    from mailvoice.audio import encode_audio
    from mailvoice.store.records import utcnow

    now = now or utcnow()
    since = since or settings.summary.since
    items = collect(store, account, now - parse_age(since), settings)
    script = build_script(items, settings, account=account, since=since, now=now)
    clip = synthesize(tts, script.text)
    kind = fmt or settings.summary.format
    log.info("summary for %s: %d item(s), %.1f s of audio", account, script.count, clip.duration)
    return SpokenSummary(script, encode_audio(clip, kind), kind, clip.duration)


def owner_recipients(settings: Settings, account: str) -> tuple[str, ...]:
    """Where summaries may go: delivery.owners, else the account's own address. Never anything else."""
    from mailvoice.compose import envelope_addresses
    from mailvoice.runner import contexts

    if settings.delivery.owners:
        return envelope_addresses(settings.delivery.owners)
    ctx = contexts(settings).get(account)
    if ctx is None or not ctx.address:
        raise ConfigError(f"no owner address for account {account!r}: set delivery.owners or the account's address")
    return envelope_addresses((ctx.address,))


def _script_html(text: str) -> str:
    return "\n".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p.strip())


def build_summary_mail(
    settings: Settings, spoken: SpokenSummary, *, sender: str, recipients: tuple[str, ...], message_id: str
) -> EmailMessage:
    """The summary as a mail: the script as text and HTML, the audio attached."""
    from mailvoice.audio import content_type_for, extension_for

    s, tdir = spoken.script, settings.delivery.templates_dir
    values = {
        "account": s.account,
        "duration": format_duration(spoken.duration),
        "count": str(s.count),
        "voicemail_count": str(s.voicemails),
    }
    msg = auto_mail("summary", subject=s.subject, sender=sender, recipients=recipients, message_id=message_id)
    msg.set_content(render("summary.txt", {**values, "script": s.text}, tdir))
    esc = {k: html.escape(v) for k, v in values.items()}
    msg.add_alternative(render("summary.html", {**esc, "script": _script_html(s.text)}, tdir), subtype="html")
    maintype, _, subtype = content_type_for(spoken.format).partition("/")
    msg.add_attachment(
        spoken.audio, maintype=maintype, subtype=subtype, filename=f"inbox-summary{extension_for(spoken.format)}"
    )
    return msg


def summary_records(settings: Settings, spoken: SpokenSummary, *, send: bool) -> tuple[NewMessage, NewOutgoing | None]:
    """The sealed summary row, and its mail to the owners when send is true (record both in one transaction)."""
    from mailvoice.audio import content_type_for, extension_for
    from mailvoice.compose import envelope_addresses
    from mailvoice.mail.headers import make_message_id
    from mailvoice.pgpmime import protect_outgoing
    from mailvoice.runner import contexts
    from mailvoice.store.records import Envelope, MessageContent, NewMessage, NewOutgoing

    s = spoken.script
    recipients = owner_recipients(settings, s.account)
    content = MessageContent(
        text=s.text,
        subject=s.subject,
        recipients=recipients,
        source=f"summary of {s.count} message(s)",
        audio_filename=f"inbox-summary{extension_for(spoken.format)}",
        audio_type=content_type_for(spoken.format),
    )
    message = NewMessage(
        kind="summary", account=s.account, content=content, duration=spoken.duration, language="en", audio=spoken.audio
    )
    if not send:
        return message, None
    ctx = contexts(settings).get(s.account)
    sender = settings.smtp.sender or (f"mailvoice <{ctx.address}>" if ctx is not None else recipients[0])
    bare_sender = envelope_addresses((sender,))[0]
    mid = make_message_id(bare_sender.rpartition("@")[2] or "mailvoice.invalid")
    mail = build_summary_mail(settings, spoken, sender=sender, recipients=recipients, message_id=mid)
    out = NewOutgoing(
        message_id_header=mid,
        raw=mail.as_bytes(policy=SMTP),
        envelope=Envelope(sender=bare_sender, recipients=recipients),
        message_id=message.id,
    )
    return message, protect_outgoing(settings, out)
