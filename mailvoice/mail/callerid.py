"""Best-effort caller name, number and duration from the notification mails of common phone systems."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from mailvoice.logref import where
from mailvoice.mail.headers import clean_header_text
from mailvoice.mail.mime import ParsedMail

log = logging.getLogger(__name__)

_MAX_TEXT = 20_000
_MAX_LINES = 400
_MAX_DURATION = 24 * 3600.0

# A line "Label: value". Labels that are also ordinary words (from, von, de) need the colon.
_LABEL = re.compile(
    r"^[\s*•>-]*(?P<label>caller[\s-]*id|caller\s+name|caller\s+number|calling\s+(?:party|number)|caller|from|"
    r"anrufer(?:nummer)?|rufnummer|von|appelant|de|llamante|n[úu]mero|number|phone|telefon|name|nom|nombre|"
    r"duration|length|dauer|l[äa]nge|dur[ée]e|duraci[óo]n|durata|dura[çc][ãa]o)"
    r"\s*(?P<colon>[:：])?\s*(?P<value>\S[^\n]{0,150}?)\s*$",
    re.IGNORECASE,
)
_NUMBER_LABELS = (
    "caller id",
    "callerid",
    "caller-id",
    "caller number",
    "calling number",
    "calling party",
    "rufnummer",
    "anrufernummer",
    "número",
    "numero",
    "number",
    "phone",
    "telefon",
)
_NAME_LABELS = ("caller name", "name", "nom", "nombre")
_DURATION_LABELS = (
    "duration",
    "length",
    "dauer",
    "länge",
    "lange",
    "durée",
    "duree",
    "duración",
    "duracion",
    "durata",
    "duração",
    "duracao",
)
# "... voicemail from WHO ..." in a subject or a sentence.
_FROM_PHRASE = re.compile(
    r"(?:voice\s*-?\s*mail|voice\s+message|message|sprachnachricht|nachricht|message\s+vocal|"
    r"mensaje\s+de\s+voz|mensaje(?!\s+de\s+voz\b)|messaggio\s+vocale|messaggio(?!\s+vocale\b))(?:\s+\d+)?\s+(?:from|von|de|da)\s+(?P<who>[^\n]{1,120})",
    re.IGNORECASE,
)
_ASTERISK_FROM = re.compile(r"\bin\s+mailbox\s+\S+\s+from\s+(?P<who>[^\n]{1,120}?),\s+on\b", re.IGNORECASE)
_ASTERISK_DURATION = re.compile(r"\b(?P<dur>\d{1,3}:\d{2}(?::\d{2})?)\s+long\s+message\b", re.IGNORECASE)
_PAREN_DURATION = re.compile(
    r"\((?P<dur>\d{1,5}\s*(?:seconds?|secs?|s|sekunden|sek|secondes|segundos)|\d{1,3}:\d{2}(?::\d{2})?)\)",
    re.IGNORECASE,
)
_WHO_END = re.compile(
    r",\s+on\b|\s+on\s|\s+at\s+\d|\s+um\s+\d|\s+am\s+\d|\s+le\s+\d|\s+el\s+\d|\s+f[üu]r\s|\s+for\s|"
    r"\s+auf\s|\s+in\s+mailbox\b|\s+-\s|\s+received\b|[.!;,](?:\s|$)|\s{3,}|\t",
    re.IGNORECASE,
)
_PHONE = re.compile(r"(?:tel:)?\+?\(?\d[\d\s().\-/]{1,30}\d|\d{3,}")
_UNKNOWN = re.compile(
    r"^(?:an?\s+)?(?:unknown(?:\s+caller)?|anonymous|private(?:\s+(?:caller|number))?|restricted|unavailable|"
    r"withheld|no\s+caller\s*id|unbekannt|anonym|inconnu|masqu[ée]|desconocido|privado|oculto|sconosciuto)$",
    re.IGNORECASE,
)
# A plausible person or extension name: starts with a letter, then letters, digits and name punctuation.
_NAME = re.compile(r"[^\W\d_](?:[^\W_]|[ .'’&,()/-]){0,79}")
_ANGLE_ID = re.compile(r'"?(?P<name>[^"<]*?)"?\s*<(?P<num>[^<>]*)>')
_PAREN_ID = re.compile(r"(?P<name>.*?)\s*\((?P<num>\+?[\d\s.\-/]+)\)")
_HMS = re.compile(r"^(?:(?P<h>\d{1,2}):)?(?P<m>\d{1,3}):(?P<s>\d{2})(?:\.\d+)?\b")
_UNITS = re.compile(
    r"^(?:(?P<min>\d{1,4})\s*(?:min|mins|minutes?|minuten|minutos|minuti)\.?\s*(?:and\s+|und\s+|et\s+|y\s+)?)?"
    r"(?:(?P<sec>\d{1,6}(?:[.,]\d+)?)\s*(?:s|sec|secs|seconds?|sekunden|sek|secondes|segundos|secondi)\b)?",
    re.IGNORECASE,
)
_SYSTEMS = (
    ("3cx", re.compile(r"\b3cx\b", re.IGNORECASE)),
    ("freepbx", re.compile(r"freepbx|dial \*98|/ucp\b", re.IGNORECASE)),
    ("asterisk", re.compile(r"--\s*asterisk|\basterisk\b|new message \d+ in mailbox", re.IGNORECASE)),
    ("microsoft", re.compile(r"microsoft teams|unified messaging|^voice ?mail (?:from .+ )?\(", re.IGNORECASE)),
    ("google-voice", re.compile(r"voice\.google\.com|google voice", re.IGNORECASE)),
    ("cisco-unity", re.compile(r"cisco unity|unity connection", re.IGNORECASE)),
    ("ringcentral", re.compile(r"ringcentral", re.IGNORECASE)),
    ("vonage", re.compile(r"vonage", re.IGNORECASE)),
    ("fritzbox", re.compile(r"fritz!?box", re.IGNORECASE)),
)


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """Who left a voicemail and for how long, as far as the notification mail tells."""

    name: str | None = None
    number: str | None = None
    """Lightly normalized: digits, a leading +, spaces and common separators kept."""
    duration: float | None = None
    """Seconds."""
    system: str | None = None
    """Phone system that sent the mail (asterisk, freepbx, 3cx, microsoft, google-voice, ...), when known."""


def normalize_number(value: str) -> str | None:
    """Keep +, digits and common separators; None when fewer than three digits remain."""
    text = value.strip().removeprefix("tel:")
    kept = "".join(ch for ch in text if ch.isascii() and (ch.isdigit() or ch in "+ -().,/"))
    kept = kept.replace(",", " ")
    plus = kept.lstrip().startswith("+")
    kept = " ".join(kept.replace("+", " ").split()).strip(" -./")
    if kept.startswith(")"):
        kept = kept.lstrip(") ")
    if kept.endswith("(") or (kept.count("(") != kept.count(")")):
        kept = kept.replace("(", "").replace(")", "").strip()
    digits = sum(ch.isdigit() for ch in kept)
    if digits < 3 or digits > 20:
        return None
    return ("+" if plus else "") + kept


def parse_duration(value: str) -> float | None:
    """Seconds from "0:42", "00:01:05", "23 seconds", "1 min 5 s" or a bare number; None otherwise."""
    text = value.strip()
    seconds: float | None = None
    if match := _HMS.match(text):
        hours, minutes, secs = int(match["h"] or 0), int(match["m"]), int(match["s"])
        if secs >= 60 or (match["h"] and minutes >= 60):
            return None
        seconds = hours * 3600 + minutes * 60 + secs
    elif (match := _UNITS.match(text)) and (match["min"] or match["sec"]):
        seconds = int(match["min"] or 0) * 60 + float((match["sec"] or "0").replace(",", "."))
    elif re.fullmatch(r"\d{1,6}(?:[.,]\d+)?", text):
        seconds = float(text.replace(",", "."))
    if seconds is None or not 0 <= seconds <= _MAX_DURATION:
        return None
    return float(seconds)


def _cut_who(who: str) -> str:
    match = _WHO_END.search(who)
    return who[: match.start()] if match else who


def split_caller_id(value: str) -> tuple[str | None, str | None]:
    """(name, number) from '"Alice" <5551234567>', 'Alice (555) 123-4567', '+1555...' or a bare name."""
    text = " ".join(value.replace("\u00a0", " ").split()).strip(" ,;:")
    if not text or "@" in text or _UNKNOWN.match(text.strip("\"'<>() ")):
        return None, None
    if match := _ANGLE_ID.fullmatch(text) or _PAREN_ID.fullmatch(text):
        name, number = match["name"], normalize_number(match["num"])
    elif match := _PHONE.search(text):
        number = normalize_number(match.group(0))
        name = (text[: match.start()] + " " + text[match.end() :]) if number else text
    else:
        name, number = text, None
    name = clean_header_text(name.strip(" \"'<>()[],;:-"), 80)
    if not _NAME.fullmatch(name) or _UNKNOWN.match(name):
        name = None
    return name, number


def detect_system(subject: str, body: str, sender: str = "", mailer: str = "") -> str | None:
    """Name of the phone system whose template this mail follows, from its sender, mailer and wording."""
    haystack = "\n".join((sender, mailer, subject, body[:_MAX_TEXT]))
    for name, pattern in _SYSTEMS:
        if pattern.search(haystack) or (name == "microsoft" and pattern.search(subject)):
            return name
    return None


class _Collector:
    """First name, number and duration found, in the order sources are offered (most reliable first)."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.number: str | None = None
        self.duration: float | None = None

    def who(self, value: str) -> None:
        name, number = split_caller_id(value)
        self.name = self.name or name
        self.number = self.number or number

    def dur(self, value: str) -> None:
        self.duration = self.duration if self.duration is not None else parse_duration(value)

    def labels(self, body: str) -> None:
        for line in body.splitlines()[:_MAX_LINES]:
            match = _LABEL.match(line[:200])
            if match is None:
                continue
            label = " ".join(match["label"].lower().split())
            value = match["value"]
            if label in _DURATION_LABELS:
                self.dur(value)
            elif label in _NUMBER_LABELS:
                self.who(value)
            elif label in _NAME_LABELS and match["colon"]:
                name, _ = split_caller_id(value)
                self.name = self.name or name
            elif match["colon"]:
                self.who(value)

    def phrases(self, text: str) -> None:
        for match in _PAREN_DURATION.finditer(text):
            self.dur(match["dur"])
        for match in _ASTERISK_DURATION.finditer(text):
            self.dur(match["dur"])
        for match in _ASTERISK_FROM.finditer(text):
            self.who(match["who"])
        for match in _FROM_PHRASE.finditer(_PAREN_DURATION.sub(" ", text)):
            self.who(_cut_who(match["who"]))


def caller_from_text(subject: str, body: str, *, sender: str = "", mailer: str = "") -> CallerInfo:
    """Caller info from a subject and a plain-text body; never raises."""
    try:
        subject, body = subject[:1000], body[:_MAX_TEXT]
        found = _Collector()
        found.labels(body)
        found.phrases(body)
        found.phrases(subject)
        return CallerInfo(found.name, found.number, found.duration, detect_system(subject, body, sender, mailer))
    except Exception as exc:  # best effort by contract: a template we cannot read is no reason to lose the mail
        log.debug("caller extraction failed: %s at %s", type(exc).__name__, where(exc))  # the message may quote text
        return CallerInfo()


def extract_caller(parsed: ParsedMail) -> CallerInfo:
    """Caller info from the mail, or from a forwarded voicemail inside it; never raises."""
    try:
        sender = f"{parsed.from_.name} <{parsed.from_.address}>" if parsed.from_ else ""
        info = caller_from_text(parsed.subject, parsed.text, sender=sender, mailer=parsed.mailer or "")
        for inner in parsed.forwarded:
            if info.name and info.number and info.duration is not None and info.system:
                break
            inner_sender = f"{inner.from_.name} <{inner.from_.address}>" if inner.from_ else ""
            more = caller_from_text(inner.subject, inner.text, sender=inner_sender)
            info = CallerInfo(
                info.name or more.name,
                info.number or more.number,
                info.duration if info.duration is not None else more.duration,
                info.system or more.system,
            )
        return info
    except Exception as exc:
        log.debug("caller extraction failed: %s at %s", type(exc).__name__, where(exc))
        return CallerInfo()


def caller_label(info: CallerInfo, from_display: str | None = None) -> str:
    """'Alice Smith (+1 555 123 4567)', the number, the name, the From display name, or 'unknown caller'."""
    name = clean_header_text(info.name, 80) if info.name else ""
    number = clean_header_text(info.number, 40) if info.number else ""
    if name and number:
        return f"{name} ({number})"
    if name or number:
        return name or number
    fallback = clean_header_text(from_display, 80) if from_display else ""
    return fallback or "unknown caller"
