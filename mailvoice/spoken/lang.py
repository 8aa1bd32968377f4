"""The language a voice speaks, and the written conventions that go with it (decimal comma, date order, words).

The rules in mailvoice.spoken.normalize read "12,50 €" as a German reader would when the voice speaks German, and
"3/4/2026" month first only for a US voice.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailvoice.config import TtsSettings

log = logging.getLogger(__name__)

_TAG = re.compile(r"^([a-z]{2,3})(?:[_-]([a-z]{2}))?(?=$|[_-])", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Profile:
    """How one language writes and says numbers."""

    lang: str
    """num2words language code."""
    region: str
    """phonenumbers default region for numbers written without a country code."""
    decimal_comma: bool
    months: tuple[str, ...]
    percent: str
    to: str
    """The word of a range: "3-5 days"."""
    plus: str
    and_word: str = "and"
    hour: str = ""
    """The clock's noun ("fünfzehn Uhr dreißig"); empty in English (AM/PM) and where none is said."""
    minute_joiner: str = ""
    """Said between hours and minutes ("quince y treinta")."""
    and_cents: str = "and"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_EN_MONTHS = _words("January February March April May June July August September October November December")
_PROFILES = {
    "en": Profile("en", "US", False, _EN_MONTHS, "percent", "to", "plus"),
    "de": Profile(
        "de",
        "DE",
        True,
        _words("Januar Februar März April Mai Juni Juli August September Oktober November Dezember"),
        "Prozent",
        "bis",
        "plus",
        and_word="und",
        hour="Uhr",
        and_cents="und",
    ),
    "fr": Profile(
        "fr",
        "FR",
        True,
        _words("janvier février mars avril mai juin juillet août septembre octobre novembre décembre"),
        "pour cent",
        "à",
        "plus",
        and_word="et",
        hour="heures",
        and_cents="et",
    ),
    "es": Profile(
        "es",
        "ES",
        True,
        _words("enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre"),
        "por ciento",
        "a",
        "más",
        and_word="y",
        minute_joiner="y",
        and_cents="con",
    ),
    "it": Profile(
        "it",
        "IT",
        True,
        _words("gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre"),
        "per cento",
        "a",
        "più",
        and_word="e",
        minute_joiner="e",
        and_cents="e",
    ),
    "nl": Profile(
        "nl",
        "NL",
        True,
        _words("januari februari maart april mei juni juli augustus september oktober november december"),
        "procent",
        "tot",
        "plus",
        and_word="en",
        hour="uur",
        and_cents="en",
    ),
}


@cache
def profile(tag: str) -> Profile:
    """The profile for a language tag ("de", "de_DE", "en-gb"); English for a language without one."""
    m = _TAG.match(tag.strip())
    if m is None:
        return _PROFILES["en"]
    lang, region = m.group(1).lower(), (m.group(2) or "").upper()
    base = _PROFILES.get(lang)
    if base is None:
        log.warning("no number-reading rules for language %s: reading numbers as English", lang)
        return _PROFILES["en"]
    if region and region != base.region:
        from dataclasses import replace

        return replace(base, region=region)
    return base


def _piper_config_language(path: Path) -> str:
    """A Piper voice's language from its .onnx.json ("language": {"code": "de_DE"}, or the espeak voice)."""
    config = path.with_name(path.name + ".json") if path.suffix == ".onnx" else path
    try:
        doc = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    code = (doc.get("language") or {}).get("code") or (doc.get("espeak") or {}).get("voice") or ""
    return str(code)


@cache
def _voice_language(engine: str, voice: str) -> str:
    from mailvoice.models import manifest_entry

    entry = manifest_entry("tts", voice)
    if entry is not None and entry.language:
        return entry.language
    if voice.endswith(".onnx"):
        found = _piper_config_language(Path(voice).expanduser())
        if found:
            return found
    name = Path(voice).name
    return name if _TAG.match(name) and ("_" in name[:6] or "-" in name[:6]) else "en"


def voice_language(tts: TtsSettings) -> str:
    """The voice's language tag: tts.language when set, else what the manifest or the voice's own config says."""
    return tts.language or _voice_language(tts.engine, tts.voice)


def voice_profile(tts: TtsSettings) -> Profile:
    """The reading rules for the configured voice."""
    return profile(voice_language(tts))
