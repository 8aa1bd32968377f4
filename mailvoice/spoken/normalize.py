"""Written forms a voice gets wrong, rewritten as words: dates, times, money, percentages, phone numbers, abbreviations.

Piper's phonemizer (espeak-ng) reads plain digits, but says "2026-11-25" as a subtraction, "3:30" as "three
thirty" only sometimes, "$12.50" as "dollar twelve point five zero" and spells "e.g." letter by letter. Each rule
here is one regular expression applied to the whole text, most specific first.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mailvoice.spoken.numbers import cardinal, digits, number, ordinal, year

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH_BY_KEY = {m[:3].lower(): i + 1 for i, m in enumerate(MONTHS)} | {"sept": 9}
_MONTH = (
    r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sept?(?:ember)?|"
    r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DAYS = {
    "mon": "Monday",
    "tue": "Tuesday",
    "tues": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "thur": "Thursday",
    "thurs": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "", ""),
    "usd": ("dollar", "dollars", "cent", "cents"),
    "eur": ("euro", "euros", "cent", "cents"),
    "gbp": ("pound", "pounds", "penny", "pence"),
    "chf": ("franc", "francs", "centime", "centimes"),
}
_MULTIPLIER = {
    "k": "thousand",
    "m": "million",
    "mn": "million",
    "bn": "billion",
    "b": "billion",
    "million": "million",
    "billion": "billion",
    "thousand": "thousand",
}
_ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    (r"\be\.\s?g\.(?=[\s,:;)]|$),?", "for example,"),
    (r"\bi\.\s?e\.(?=[\s,:;)]|$),?", "that is,"),
    (r"\betc\.(?=\s+[a-z])", "et cetera"),
    (r"\betc\.", "et cetera."),
    (r"\betc\b", "et cetera"),
    (r"\bvs\.?(?=\s)", "versus"),
    (r"\bapprox\.?(?=\s)", "approximately"),
    (r"\bDr\.(?=\s+[A-Z])", "Doctor"),
    (r"\bMr\.(?=\s)", "Mister"),
    (r"\bMrs\.(?=\s)", "Missus"),
    (r"\bMs\.(?=\s)", "Miz"),
    (r"\bProf\.(?=\s)", "Professor"),
    (r"\bSt\.(?=\s+[A-Z])", "Saint"),
    (r"\bJr\.", "Junior"),
    (r"\bSr\.", "Senior"),
    (r"\bDept\.", "Department"),
    (r"\bLtd\.", "Limited"),
    (r"\bInc\.", "Incorporated"),
    (r"\b(?:No|Nr)\.\s?(?=\d)", "number "),
    (r"(?<![\w&])#\s?(?=\d)", "number "),
    (r"\bw/o\b", "without"),
    (r"(?<!\w)w/(?=\s)", "with"),
    (r"\bFYI\b", "F Y I"),
    (r"\bASAP\b", "as soon as possible"),
    (r"\bEOD\b", "end of day"),
    (r"\bETA\b", "E T A"),
    (r"\bAFAIK\b", "as far as I know"),
    (r"\bIMHO\b", "in my humble opinion"),
    (r"\bRSVP\b", "R S V P"),
    (r"\s&\s", " and "),
    (r"(?<=\s)@(?=\s)", "at"),
    (r"(?<=\s)~\s?(?=\d)", "about "),
)

Rule = tuple["re.Pattern[str]", Callable[["re.Match[str]"], str]]


def _month_number(name: str) -> int:
    return _MONTH_BY_KEY[name.rstrip(".").lower()[:3]]


def _date_words(month: int, day: int, year_: int | None) -> str:
    spoken = f"{MONTHS[month - 1]} {ordinal(day)}"
    return f"{spoken}, {year(year_)}" if year_ is not None else spoken


def _iso_date(m: re.Match[str]) -> str:
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    return _date_words(mo, d, y)


def _slash_date(m: re.Match[str]) -> str:
    a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
    y = y + 2000 if y < 100 else y
    month, day = (b, a) if a > 12 else (a, b)  # en_US voice: month first unless the first can only be a day
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return _date_words(month, day, y)


def _month_day(m: re.Match[str]) -> str:
    day = int(m.group(2))
    y = int(m.group(4)) if m.group(4) else None
    return _date_words(_month_number(m.group(1)), day, y) if 1 <= day <= 31 else m.group(0)


def _day_month(m: re.Match[str]) -> str:
    day = int(m.group(1))
    y = int(m.group(4)) if m.group(4) else None
    if not 1 <= day <= 31:
        return m.group(0)
    month = MONTHS[_month_number(m.group(3)) - 1]
    return f"{ordinal(day)} of {month}" + (f", {year(y)}" if y is not None else "")


def _clock(hour: int, minute: int, suffix: str) -> str:
    if minute == 0:
        return f"{cardinal(hour)} {suffix}".strip()
    mins = f"oh {cardinal(minute)}" if minute < 10 else cardinal(minute)
    return f"{cardinal(hour)} {mins} {suffix}".strip()


def _time_12(m: re.Match[str]) -> str:
    hour, minute = int(m.group(1)), int(m.group(2) or 0)
    if not (1 <= hour <= 12 and minute < 60):
        return m.group(0)
    spoken = _clock(hour, minute, "AM" if m.group(3).lower() == "a" else "PM")
    rest = m.string[m.end() : m.end() + 3]
    # "at 2 a.m. Then": the period of "a.m." also ended the sentence
    ends = m.group(0).endswith(".") and (not rest.strip() or rest.lstrip()[:1].isupper())
    return spoken + ("." if ends else "")


def _time_24(m: re.Match[str]) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour == 0 and minute == 0:
        return "midnight"
    if hour == 12 and minute == 0:
        return "noon"
    if hour <= 12 and not m.group(1).startswith("0"):
        return _clock(hour, minute, "")  # "3:30" may be morning or afternoon: say only what is written
    suffix = "AM" if hour < 12 else "PM"
    return _clock(hour % 12 or 12, minute, suffix)


def _money(symbol: str, amount: str, scale: str | None) -> str:
    one, many, sub_one, sub_many = _CURRENCY[symbol.lower()]
    whole_text, _, frac = amount.replace(",", "").partition(".")
    whole = int(whole_text or "0")
    if scale:
        spoken = number(amount.replace(",", "")) if frac else cardinal(whole)
        return f"{spoken} {_MULTIPLIER[scale.lower()]} {many}"
    cents = int((frac + "0")[:2]) if frac else 0
    parts = []
    if whole or not cents:
        parts.append(f"{cardinal(whole)} {one if whole == 1 else many}")
    if cents and sub_one:
        parts.append(f"{cardinal(cents)} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def _money_before(m: re.Match[str]) -> str:
    return _money(m.group(1), m.group(2), m.group(3))


def _money_after(m: re.Match[str]) -> str:
    return _money(m.group(3), m.group(1), None)


def _money_code_first(m: re.Match[str]) -> str:
    return _money(m.group(1), m.group(2), None)


def _phone(m: re.Match[str]) -> str:
    groups = re.findall(r"\d+", m.group(0))
    lead = "plus " if m.group(0).lstrip().startswith("+") else ""
    return lead + ", ".join(digits(g) for g in groups)


def _ordinal(m: re.Match[str]) -> str:
    return ordinal(int(m.group(1)))


def _percent(m: re.Match[str]) -> str:
    return f"{number(m.group(1))} percent"


def _range(m: re.Match[str]) -> str:
    return f"{number(m.group(1))} to {number(m.group(2))}"


def _weekday(m: re.Match[str]) -> str:
    return _DAYS[m.group(1).lower()] + m.group(2)


def _number(m: re.Match[str]) -> str:
    return number(m.group(0))


def _letters_number(m: re.Match[str]) -> str:
    """ "B22" -> "B twenty-two", "LH1234" -> "L H one two three four" (gates, flights, quarters)."""
    num = m.group(2)
    return " ".join(m.group(1)) + " " + (cardinal(int(num)) if len(num) <= 2 else digits(num))


def _code(m: re.Match[str]) -> str:
    return "a reference code"


_RULES: tuple[Rule, ...] = tuple(
    (re.compile(p, flags), f)
    for p, flags, f in (
        (r"\b(\d{4})-(\d{2})-(\d{2})(?:[T ](?=\d))?", 0, _iso_date),
        (r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b", 0, _slash_date),
        (r"\b(Mon|Tues?|Wed|Thu(?:rs?)?|Fri|Sat|Sun)\b\.?(,|\s(?=\d|" + _MONTH + r"))", 0, _weekday),
        (r"\b" + _MONTH + r"\s(\d{1,2})(?:st|nd|rd|th)?\b(?!:)(,?\s(\d{4})\b)?", 0, _month_day),
        (r"\b(\d{1,2})(st|nd|rd|th)?\s(?:of\s)?" + _MONTH + r"(?:,?\s(\d{4})\b)?", 0, _day_month),
        (r"\b(\d{1,2})(?::([0-5]\d))?\s?([ap])\.?\s?m\b\.?", re.IGNORECASE, _time_12),
        (r"(?<![\d:.])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])(?:\s?h\b)?", 0, _time_24),
        (r"(?<![\w.])\+?\(?\d{1,4}\)?(?:[ .-]\(?\d{2,4}\)?){2,5}(?!\w|\.\d)", 0, _phone),
        (
            r"([$€£¥])\s?(\d[\d,]*(?:\.\d+)?)(?:\s?(k|m|mn|bn|b|million|billion|thousand)\b)?",
            re.IGNORECASE,
            _money_before,
        ),
        (r"\b(\d[\d,]*(\.\d+)?)\s?(USD|EUR|GBP|CHF|€|£)(?!\w)", 0, _money_after),
        (r"\b(USD|EUR|GBP|CHF)\s?(\d[\d,]*(?:\.\d+)?)\b", 0, _money_code_first),
        (r"\b(\d+(?:\.\d+)?)\s?%", 0, _percent),
        (r"\b(\d+)(?:st|nd|rd|th)\b", 0, _ordinal),
        (r"\b(\d{1,4})\s?[–-]\s?(\d{1,4})\b", 0, _range),
        (r"\b(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{12,}\b", 0, _code),
        (r"\b([A-Z]{1,3})(\d{1,6})\b", 0, _letters_number),
        (r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])\d+(?:\.\d+)?(?![\w])", 0, _number),
    )
)
_ABBREVIATION_RULES = tuple((re.compile(p), r) for p, r in _ABBREVIATIONS)
_SYMBOLS = re.compile(r"[\u2600-\u27bf\U0001f000-\U0001faff\ufe0f\u200d•→←↑↓▶►✓✔★☆|]+")


def normalize(text: str) -> str:
    """Rewrite written forms as words, keeping sentence and paragraph structure (newlines) intact."""
    for pattern, replacement in _ABBREVIATION_RULES:
        text = pattern.sub(replacement, text)
    for rule, fn in _RULES:
        text = rule.sub(fn, text)
    text = _SYMBOLS.sub(" ", text)
    return re.sub(r"[ \t]{2,}", " ", text)
