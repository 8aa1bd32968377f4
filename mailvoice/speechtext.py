"""Text fit for speech: what a listener needs from a mail, without quoted history, signatures or raw URLs.

URLs are spoken as "a link to example dot com", addresses as the display name or "alice at example dot com";
numbers, dates, times, money and abbreviations become words (mailvoice.spoken.normalize); list items and headings
get a sentence end, and blank lines stay, so the TTS engine pauses after each sentence and longer between
paragraphs. HTML never reaches this module: mime.parse_message already reduced it to its visible text.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import TYPE_CHECKING

from mailvoice.spoken.normalize import normalize

if TYPE_CHECKING:
    from mailvoice.mail.mime import ParsedMail
    from mailvoice.store.records import Message

# Bare host names (no scheme) only with unambiguous, lower-case endings: "Thanks.It" is a typo, not a host.
_TLDS = "com|org|net|edu|gov|io|uk|de|fr|nl|ch|eu|ca|au|nz|jp|info|biz|app|dev|ai|ly|cloud|shop|online|xyz"
_URL = re.compile(r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>()\"'\[\]]+", re.IGNORECASE)
_BARE_HOST = re.compile(r"\b(?:[A-Za-z0-9-]+\.)+(?:" + _TLDS + r")\b(?:/[^\s<>()\"'\[\]]*)?")
_WRAPPED_URL = re.compile(
    r"\s*[<(\[]\s*(?:mailto:)?((?:https?|ftp)://[^\s<>()\[\]]+|www\.[^\s<>()\[\]]+)\s*[>)\]]", re.IGNORECASE
)
_MARKDOWN_LINK = re.compile(r"\[([^\]\n]{1,200})\]\((?:https?://|mailto:)[^)\s]+\)", re.IGNORECASE)
_EMAIL = re.compile(r"(?:mailto:)?\b([A-Za-z0-9._%+-]+)@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})\b", re.IGNORECASE)
_IMAGE = re.compile(r"\[(?:image|cid|inline image)[^\]]*\]", re.IGNORECASE)
_TWO_PART_SUFFIXES = frozenset({"co.uk", "org.uk", "ac.uk", "com.au", "co.nz", "co.jp", "com.br", "co.in"})

_QUOTE_INTRO = re.compile(
    r"^(On .{0,300}wrote:|Am .{0,300}schrieb .{0,120}:|Le .{0,300}a écrit ?:|El .{0,300}escribió:|"
    r"-{2,}\s*Original Message\s*-{2,}|-{2,}\s*Ursprüngliche Nachricht\s*-{2,}|_{10,}|"
    r"In reply to .{0,200}:)\s*$",
    re.IGNORECASE,
)
_FORWARD_INTRO = re.compile(
    r"^(-{2,}\s*Forwarded message\s*-{2,}|Begin forwarded message:|-{2,}\s*Weitergeleitete "
    r"Nachricht\s*-{2,})\s*$",
    re.IGNORECASE,
)
_HEADER_LINE = re.compile(
    r"^\*?(From|Von|De|Sent|Gesendet|Date|Datum|To|An|Cc|Subject|Betreff|Objet)\*?:\s*(.*)$", re.IGNORECASE
)
_SIGNATURE = re.compile(
    r"^(-- ?|--\s*$|Sent from my \w+.*|Sent from (Mail|Outlook|Yahoo).*|Get Outlook for \w+.*|"
    r"Von meinem \w+ gesendet.*)$",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"^(best|best regards|kind regards|warm regards|regards|many thanks|thanks|thank you|"
    r"thanks again|cheers|sincerely|yours sincerely|yours truly|all the best|best wishes|"
    r"talk soon|take care|viele grüße|mit freundlichen grüßen|liebe grüße)[,.!]?$",
    re.IGNORECASE,
)
_FOOTER = re.compile(
    r"^(This (e-?mail|message|communication)( and any (files|attachments)( transmitted with it)?)? "
    r"(is|are|may (be|contain))|The information (contained )?in this (e-?mail|message)|"
    r"If you are not the intended recipient|CONFIDENTIALITY|DISCLAIMER|LEGAL NOTICE|PRIVILEGED AND CONFIDENTIAL|"
    r"You are receiving this|You received this|You're receiving this|To unsubscribe|Unsubscribe|"
    r"Update your (email )?preferences|Manage (your )?(subscription|preferences)|Please consider the environment|"
    r"©|\(c\) \d{4}|Copyright \d{4}|Our mailing address is)",
    re.IGNORECASE,
)
_DROP_LINE = re.compile(
    r"^(View (this (e-?mail|message) )?(in|on) (your|a) (web )?browser.*|"
    r"Having trouble (viewing|reading) this.*|\[(image|cid)[^\]]*\])$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^(?:[-*•·–]|\d{1,2}[.)])\s+")
_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|tr|sv|vs)(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
SENTENCE_END = ".!?:;…"


def spoken_domain(host: str) -> str:
    """The part of a host a listener recognises, dots spoken: "news.mail.example.co.uk" -> "example dot co dot uk"."""
    labels = [x for x in host.lower().removeprefix("www.").strip(".,;:").split(".") if x]
    keep = 3 if len(labels) >= 3 and ".".join(labels[-2:]) in _TWO_PART_SUFFIXES else 2
    return " dot ".join(labels[-keep:])


def url_words(url: str) -> str:
    """ "a link to example dot com" for a URL; a bare host name without a path is just "example dot com"."""
    host = re.sub(r"^[a-z]+://", "", url, flags=re.IGNORECASE).split("/")[0].split("?")[0].split("@")[-1]
    host = host.split(":")[0]
    is_link = "/" in url or url.lower().startswith(("http", "www", "ftp"))
    spoken = "a numeric address" if re.fullmatch(r"[\d.]+|\[[0-9a-fA-F:.]+\]", host) else spoken_domain(host)
    return f"a link to {spoken}" if is_link else spoken


def speak_url(match: re.Match[str]) -> str:
    """Replacement for a URL match; punctuation that ended the sentence after it stays."""
    url = match.group(0)
    bare = url.rstrip(".,;:!?)")
    return url_words(bare) + url[len(bare) :]


def speak_email(match: re.Match[str]) -> str:
    """ "alice smith at example dot com": never the raw characters."""
    user = re.sub(r"[._%+-]+", " ", match.group(1)).strip() or "someone"
    return f"{user} at {' dot '.join(match.group(2).lower().split('.'))}"


def speak_address(name: str, address: str) -> str:
    """A sender as a listener wants to hear it: the display name ("Smith, Jo" -> "Jo Smith"), else the address."""
    name = name.strip().strip('"').strip()
    if name and "@" not in name:
        if name.count(",") == 1:
            last, first = (p.strip() for p in name.split(","))
            name = f"{first} {last}".strip()
        return name
    return _EMAIL.sub(speak_email, address) if address else "an unknown sender"


def speak_subject(subject: str) -> str:
    """The subject without Re:/Fwd: chains, links and addresses spoken safely."""
    return _inline(_PREFIX.sub("", subject)).strip() or "no subject"


def _inline(text: str) -> str:
    """URLs, addresses and image placeholders within running text."""
    text = _MARKDOWN_LINK.sub(r"\1", text)
    text = _IMAGE.sub("", text)
    text = _WRAPPED_URL.sub(lambda m: f" ({url_words(m.group(1))})", text)
    text = _URL.sub(speak_url, text)
    text = _EMAIL.sub(speak_email, text)
    return _BARE_HOST.sub(speak_url, text)


def _is_header_block(lines: list[str], start: int) -> bool:
    """An Outlook-style quoted header ("From: / Sent: / To: / Subject:") begins at lines[start]."""
    names = set()
    for line in lines[start : start + 6]:
        m = _HEADER_LINE.match(line.strip())
        if m is None:
            break
        names.add(m.group(1).lower())
    return len(names) >= 2 and bool(names & {"from", "von", "de"})


def _forward_head(lines: list[str], start: int) -> tuple[str, int]:
    """ "Forwarded message from NAME, about SUBJECT." and the index after the forwarded header block."""
    who = subject = ""
    i = start
    while i < len(lines) and (not lines[i].strip() or _HEADER_LINE.match(lines[i].strip())):
        m = _HEADER_LINE.match(lines[i].strip())
        if m is not None:
            key, value = m.group(1).lower(), m.group(2)
            if key in ("from", "von", "de"):
                name, addr = parseaddr(value)
                who = speak_address(name, addr)
            elif key in ("subject", "betreff", "objet"):
                subject = speak_subject(value)
        elif who and i > start + 1:
            break
        i += 1
    head = "Forwarded message" + (f" from {who}" if who else "") + (f", about {subject}" if subject else "")
    return head + ".", i


def _cut_sign_off(lines: list[str]) -> list[str]:
    """Keep "Best regards, Alice" but drop the title, company and phone lines of the signature below it."""
    for i in range(len(lines) - 1, max(len(lines) - 12, -1), -1):
        if _SIGN_OFF.match(lines[i].strip()):
            tail = [x for x in lines[i + 1 :] if x.strip()]
            if len(tail) <= 8 and all(len(x) < 80 for x in tail):
                return [*lines[: i + 1], *tail[:1]]
            break
    return lines


def strip_history(text: str) -> str:
    """The author's own words: quoted replies, signatures and legal footers removed; a forward keeps its body."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        stripped = line.strip()
        joined = f"{stripped} {lines[i + 1].strip()}" if i + 1 < len(lines) else stripped
        if stripped.startswith(">"):
            i += 1
            continue
        if _FORWARD_INTRO.match(stripped):
            head, i = _forward_head(lines, i + 1)
            kept.extend(["", head, ""])
            continue
        if (
            _QUOTE_INTRO.match(stripped)
            or (stripped.startswith("On ") and _QUOTE_INTRO.match(joined))
            or _is_header_block(lines, i)
            or _SIGNATURE.match(line)
            or _FOOTER.match(stripped)
        ):
            break
        if not _DROP_LINE.match(stripped):
            kept.append(stripped)
        i += 1
    return "\n".join(_cut_sign_off(kept))


def _sentence_lines(paragraph: list[str]) -> str:
    """Join a paragraph's lines; list items, headings and sign-offs end as sentences so they are not run together."""
    out: list[str] = []
    for index, line in enumerate(paragraph):
        bullet = _BULLET.match(line) is not None
        line = _BULLET.sub("", line).strip()
        if not line:
            continue
        if bullet:
            line = line[0].upper() + line[1:]  # a lower-case start would glue it to the item before
        nxt = paragraph[index + 1].strip() if index + 1 < len(paragraph) else ""
        own_line = bullet or (nxt and _BULLET.match(nxt)) or (len(line) < 45 and nxt[:1].isupper())
        if (own_line or index == len(paragraph) - 1) and line[-1] not in SENTENCE_END + ",":
            line += "."
        out.append(line)
    return " ".join(out)


def clean_body(text: str, language: str = "en") -> str:
    """A mail body as speech text: history, signature and footer dropped; links, numbers and lists made speakable."""
    body = _inline(strip_history(text))
    paragraphs: list[list[str]] = [[]]
    for line in body.split("\n"):
        line = re.sub(r"[ \t]+", " ", line).strip()
        if not line or set(line) <= set("-=_*~#"):
            if paragraphs[-1]:
                paragraphs.append([])
            continue
        paragraphs[-1].append(line)
    spoken = "\n\n".join(_sentence_lines(p) for p in paragraphs if p)
    return normalize(spoken, language).strip()


def first_sentences(text: str, count: int) -> str:
    """The opening sentences of a cleaned text (for summaries)."""
    from mailvoice.textsplit import iter_sentences

    picked: list[str] = []
    for sentence in iter_sentences(text, max_chars=220):
        picked.append(sentence.text)
        if len(picked) >= count:
            break
    return " ".join(picked)


def mail_for_speech(parsed: ParsedMail, language: str = "en") -> str:
    """A mail as a listener wants it: who, about what, then the cleaned body (numbers read in `language`)."""
    sender = speak_address(parsed.from_.name, parsed.from_.address) if parsed.from_ is not None else ""
    head = f"Message from {normalize(sender, language) or 'an unknown sender'}."
    if parsed.subject:
        head += f"\nSubject: {normalize(speak_subject(parsed.subject), language)}."
    body = clean_body(parsed.text, language)
    return f"{head}\n\n{body}" if body else head


def message_for_speech(message: Message, language: str = "en") -> str:
    """A stored message (voicemail transcript, mail text, summary) as speech text (numbers read in `language`)."""
    c = message.content
    if message.kind == "voicemail":
        who = normalize(c.caller, language) if c.caller else "an unknown caller"
        return f"Voicemail from {who}.\n\n{normalize(c.text, language) if c.text else 'No speech was detected.'}"
    if message.kind == "text":
        name, addr = parseaddr(c.sender)
        head = f"Message from {normalize(speak_address(name, addr), language)}."
        if c.subject:
            head += f"\nSubject: {normalize(speak_subject(c.subject), language)}."
        body = clean_body(c.text, language)
        return f"{head}\n\n{body}" if body else head
    return clean_body(c.text, language)
