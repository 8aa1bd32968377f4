"""Text fit for speech: what a listener needs from a mail, without quoted history, signatures or raw URLs.

URLs are spoken as "a link to example.com", addresses as the display name or "alice at example dot com";
paragraph breaks stay (the TTS engine pauses longer there).
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailvoice.mail.mime import ParsedMail
    from mailvoice.store.records import Message

_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()\"']+", re.IGNORECASE)
_EMAIL = re.compile(r"\b([A-Za-z0-9._%+-]+)@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
_QUOTE_INTRO = re.compile(
    r"^(On .{0,200}wrote:|Am .{0,200}schrieb .{0,100}:|Le .{0,200}a écrit ?:|-----\s*Original Message\s*-----|"
    r"_{5,}|From: .+|-{2,}\s*Forwarded message\s*-{2,}|Begin forwarded message:)\s*$",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^(-- ?|__+|Sent from my \w+.*|Get Outlook for \w+.*)$", re.IGNORECASE)
_FOOTER = re.compile(
    r"^(This (e-?mail|message) (and any attachments )?(is|may be) confidential.*|To unsubscribe.*|"
    r"You are receiving this (e-?mail|message).*|CONFIDENTIALITY NOTICE.*)$",
    re.IGNORECASE,
)


def _speak_domain(domain: str) -> str:
    return domain.lower().removeprefix("www.").rstrip(".,;:")


def speak_url(match: re.Match[str]) -> str:
    url = match.group(0).rstrip(".,;:!?)")
    host = re.sub(r"^(https?://)?", "", url, flags=re.IGNORECASE).split("/")[0].split("?")[0]
    return f"a link to {_speak_domain(host)}"


def speak_email(match: re.Match[str]) -> str:
    user, domain = match.group(1), match.group(2)
    spoken_domain = " dot ".join(domain.lower().split("."))
    return f"{user} at {spoken_domain}"


def clean_body(text: str) -> str:
    """Drop quoted history, signatures and footers; speak URLs and addresses; keep paragraphs."""
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if stripped.startswith(">"):
            continue
        if _QUOTE_INTRO.match(stripped) or _SIGNATURE.match(line.rstrip()) or _FOOTER.match(stripped):
            break
        kept.append(stripped)
    body = "\n".join(kept)
    body = _URL.sub(speak_url, body)
    body = _EMAIL.sub(speak_email, body)
    body = re.sub(r"[ \t]+", " ", body)
    body = re.sub(r"\n{3,}", "\n\n", body)
    return body.strip()


def mail_for_speech(parsed: ParsedMail) -> str:
    """A mail as a listener wants it: who, about what, then the cleaned body."""
    sender = ""
    if parsed.from_ is not None:
        sender = parsed.from_.name or _EMAIL.sub(speak_email, parsed.from_.address)
    head = f"Message from {sender or 'an unknown sender'}."
    if parsed.subject:
        head += f"\nSubject: {clean_body(parsed.subject)}."
    body = clean_body(parsed.text)
    return f"{head}\n\n{body}" if body else head


def message_for_speech(message: Message) -> str:
    """A stored message (voicemail transcript, mail text, summary) as speech text."""
    c = message.content
    if message.kind == "voicemail":
        who = c.caller or "an unknown caller"
        return f"Voicemail from {who}.\n\n{c.text or 'No speech was detected.'}"
    if message.kind == "text":
        name, addr = parseaddr(c.sender)
        head = f"Message from {name or _EMAIL.sub(speak_email, addr) or 'an unknown sender'}."
        if c.subject:
            head += f"\nSubject: {clean_body(c.subject)}."
        return f"{head}\n\n{clean_body(c.text)}"
    return clean_body(c.text)
