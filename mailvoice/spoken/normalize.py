"""Written forms a voice gets wrong, rewritten as words in the voice's language: dates, times, money, percentages,
phone numbers, ordinals, abbreviations.

Piper's phonemizer (espeak-ng) reads plain digits, but says "2026-11-25" as a subtraction, "3.30" as "three point
three zero", "12,50 €" as twelve hundred and fifty and a caller number as ten loose digits. The words come from
num2words and the phone groups from phonenumbers; the rules here only find the written forms and follow the
language's conventions (mailvoice.spoken.lang). Each rule is one regular expression, most specific first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from mailvoice.spoken.lang import Profile, profile
from mailvoice.spoken.numbers import cardinal, currency_unit, digits, number, ordinal, year
from mailvoice.spoken.phone import PATTERN as PHONE
from mailvoice.spoken.phone import speak_phone

_EN_MONTH = (
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
_SYMBOL_CODE = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
_EN_CURRENCY = {
    "USD": ("dollar", "dollars", "cent", "cents"),
    "EUR": ("euro", "euros", "cent", "cents"),
    "GBP": ("pound", "pounds", "penny", "pence"),
    "JPY": ("yen", "yen", "", ""),
    "CHF": ("franc", "francs", "centime", "centimes"),
}
_SCALES = {
    "en": {"k": "thousand", "m": "million", "mn": "million", "bn": "billion", "b": "billion"}
    | {w: w for w in ("thousand", "million", "billion")},
    "de": {"tsd": "tausend", "mio": "Millionen", "mrd": "Milliarden"},
}
_BARE_SCALES = {"en": r"(k)\b", "de": r"\s?(Tsd|Mio|Mrd)\b(?:\.(?=\s[a-zäöü]))?"}
"""Scales after a number without a currency: "1.5k" (a bare "5m" may be metres)."""
_ABBREVIATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (
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
        (r"(?<=\s)@(?=\s)", "at"),
        (r"(?<=\s)~\s?(?=\d)", "about "),
    ),
    "de": (
        (r"\bz\.\s?B\.", "zum Beispiel"),
        (r"\bd\.\s?h\.", "das heißt"),
        (r"\busw\.", "und so weiter"),
        (r"\bca\.(?=\s)", "circa"),
        (r"\bNr\.\s?(?=\d)", "Nummer "),
        (r"\bDr\.(?=\s+[A-ZÄÖÜ])", "Doktor"),
    ),
}

Rule = tuple["re.Pattern[str]", Callable[["re.Match[str]"], str]]


def _split_amount(text: str, prof: Profile) -> tuple[str, str]:
    """(whole digits, fraction digits) of a written amount: "1,200.50" or, in German, "1.200,50".

    In English "12,50" (a comma before fewer than three digits) can only be a decimal comma, as a euro price is written.
    """
    group, point = (".", ",") if prof.decimal_comma else (",", ".")
    if point not in text and group in text and not re.search(rf"\{group}\d{{3}}$", text):
        group, point = point, group  # "12,50 €" in an English text, "€12.50" in a German one
    whole, _, frac = text.rpartition(point) if point in text else (text, "", "")
    return whole.replace(group, "").replace(point, ""), frac


def _amount_words(text: str, prof: Profile) -> str:
    whole, frac = _split_amount(text, prof)
    return number(f"{whole},{frac}" if frac else whole, prof.lang, decimal_comma=True)


def _money(prof: Profile, code: str, amount: str, scale: str | None) -> str:
    whole_text, frac = _split_amount(amount, prof)
    whole = int(whole_text or "0")
    en_forms = _EN_CURRENCY.get(code, (code, code, "", ""))
    native = prof.lang != "en" and code in ("USD", "EUR", "GBP")

    def unit(n: int) -> str:
        return currency_unit(code, n, prof.lang) if native else en_forms[0 if n == 1 else 1]

    def sub(n: int) -> str:
        return currency_unit(code, n, prof.lang, sub=True) if native else en_forms[2 if n == 1 else 3]

    if scale:
        spoken = _amount_words(amount, prof)
        return f"{spoken} {_SCALES[prof.lang][scale.lower().rstrip('.')]} {unit(2)}"
    cents = int((frac + "0")[:2]) if frac else 0
    parts = []
    if whole or not cents:
        parts.append(f"{_count(whole, prof)} {unit(whole)}")
    if cents and sub(cents):
        parts.append(f"{_count(cents, prof)} {sub(cents)}")
    return f" {prof.and_cents} ".join(parts)


def _count(n: int, prof: Profile) -> str:
    """A cardinal before a noun: German says "ein Euro", not "eins Euro"."""
    words = cardinal(n, prof.lang)
    return "ein" if prof.lang == "de" and words == "eins" else words


def _en_date(month: int, day: int, year_: int | None, prof: Profile) -> str:
    spoken = f"{prof.months[month - 1]} {ordinal(day)}"
    return f"{spoken}, {year(year_)}" if year_ is not None else spoken


def _date(prof: Profile, day: int, month: int, year_: int | None, before: str = "") -> str:
    """A date in the language's spoken order; "" when it is no date."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return ""
    if prof.lang == "en":
        return _en_date(month, day, year_, prof)
    month_name = prof.months[month - 1]
    if prof.lang == "de":
        # "am fünfundzwanzigsten November", "der fünfundzwanzigste November", else "fünfundzwanzigster November"
        article = before.strip().lower().split()[-1:] if before.strip() else []
        ending = "n" if article and article[0] in ("am", "vom", "zum", "den", "dem", "im", "seit") else "r"
        ending = "" if article and article[0] in ("der", "die", "das") else ending
        spoken = f"{ordinal(day, 'de')}{ending} {month_name}"
    else:
        first = {"fr": "premier", "it": "primo"}.get(prof.lang) if day == 1 else None
        spoken = f"{first or cardinal(day, prof.lang)} {'de ' if prof.lang == 'es' else ''}{month_name}"
    if year_ is not None:
        spoken += f" {'de ' if prof.lang == 'es' else ''}{year(year_, prof.lang)}"
    return spoken


def _clock(prof: Profile, hour: int, minute: int, suffix: str = "") -> str:
    if prof.lang == "en":
        if minute == 0:
            return f"{cardinal(hour)} {suffix}".strip()
        mins = f"oh {cardinal(minute)}" if minute < 10 else cardinal(minute)
        return f"{cardinal(hour)} {mins} {suffix}".strip()
    parts = [_count(hour, prof) if prof.hour else cardinal(hour, prof.lang), prof.hour]
    if minute:
        parts += [prof.minute_joiner, cardinal(minute, prof.lang)]
    return " ".join(p for p in parts if p)


def _rules(prof: Profile) -> list[tuple[str, int, Callable[[re.Match[str]], str]]]:
    en = prof.lang == "en"
    month_names = "|".join(sorted({*prof.months, *(m[:3] for m in prof.months)}, key=len, reverse=True))
    local_month = rf"({month_names})\b\.?"
    group, point = (r"\.", ",") if prof.decimal_comma else (",", r"\.")
    amount = r"\d{1,3}(?:[.,]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d+)?"
    scales = "|".join(sorted(_SCALES.get(prof.lang, {}), key=len, reverse=True))
    # "Mio." keeps its dot only before the currency: a dot after "1.5k." ends the sentence
    scale = rf"(?:\s?({scales})\b(?:\.(?=\s?(?:€|EUR|USD|\$)))?)?" if scales else "()"

    def iso(m: re.Match[str]) -> str:
        return _date(prof, int(m.group(3)), int(m.group(2)), int(m.group(1))) or m.group(0)

    def slashed(m: re.Match[str]) -> str:
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        y = y + 2000 if y < 100 else y
        month_first = prof.region == "US" and a <= 12 and "/" in m.group(0)  # a US voice: month first
        day, month = (b, a) if month_first else (a, b)
        return _date(prof, day, month, y, m.string[max(0, m.start() - 8) : m.start()]) or m.group(0)

    def month_day(m: re.Match[str]) -> str:
        y = int(m.group(4)) if m.group(4) else None
        return _date(prof, int(m.group(2)), _month_index(m.group(1)), y) or m.group(0)

    def day_month(m: re.Match[str]) -> str:
        day, y = int(m.group(1)), (int(m.group(4)) if m.group(4) else None)
        if en:
            if not 1 <= day <= 31:
                return m.group(0)
            month = prof.months[_month_index(m.group(3)) - 1]
            return f"{ordinal(day)} of {month}" + (f", {year(y)}" if y is not None else "")
        before = m.string[max(0, m.start() - 8) : m.start()]
        return _date(prof, day, _month_index(m.group(3)), y, before) or m.group(0)

    def _month_index(name: str) -> int:
        key = name.rstrip(".").lower()[:3]
        return next(i + 1 for i, mo in enumerate(prof.months) if mo.lower()[:3] == key)

    def time_12(m: re.Match[str]) -> str:
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        if not (1 <= hour <= 12 and minute < 60):
            return m.group(0)
        spoken = _clock(prof, hour, minute, "AM" if m.group(3).lower() == "a" else "PM")
        rest = m.string[m.end() : m.end() + 3]
        # "at 2 a.m. Then": the period of "a.m." also ended the sentence
        ends = m.group(0).endswith(".") and (not rest.strip() or rest.lstrip()[:1].isupper())
        return spoken + ("." if ends else "")

    def time_said(m: re.Match[str]) -> str:
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        return _clock(prof, hour, minute) if hour <= 23 else m.group(0)

    def time_after(m: re.Match[str]) -> str:
        return f"{m.group(1)} {_clock(prof, int(m.group(2)), int(m.group(3)))}"

    def time_24(m: re.Match[str]) -> str:
        hour, minute = int(m.group(1)), int(m.group(2))
        if not en:
            return _clock(prof, hour, minute)
        if hour == 0 and minute == 0:
            return "midnight"
        if hour == 12 and minute == 0:
            return "noon"
        if hour <= 12 and not m.group(1).startswith("0"):
            return _clock(prof, hour, minute)  # "3:30" may be morning or afternoon: say only what is written
        return _clock(prof, hour % 12 or 12, minute, "AM" if hour < 12 else "PM")

    def money_before(m: re.Match[str]) -> str:
        return _money(prof, _SYMBOL_CODE.get(m.group(1), m.group(1).upper()), m.group(2), m.group(3))

    def money_after(m: re.Match[str]) -> str:
        return _money(prof, _SYMBOL_CODE.get(m.group(3), m.group(3).upper()), m.group(1), m.group(2))

    def scaled(m: re.Match[str]) -> str:
        return f"{_amount_words(m.group(1), prof)} {_SCALES[prof.lang][m.group(2).lower()]}"

    rules: list[tuple[str, int, Callable[[re.Match[str]], str]]] = [
        (r"\b(\d{4})-(\d{2})-(\d{2})(?:[T ](?=\d))?", 0, iso),
        (r"(?<![\d.])\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b", 0, slashed),
        (r"(?<![\d.])\b(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})\b(?!\.\d)", 0, slashed),
    ]
    if en:
        rules += [
            (r"\b(Mon|Tues?|Wed|Thu(?:rs?)?|Fri|Sat|Sun)\b\.?(,|\s(?=\d|" + _EN_MONTH + r"))", 0, _weekday),
            (r"\b" + _EN_MONTH + r"\s(\d{1,2})(?:st|nd|rd|th)?\b(?!:)(,?\s(\d{4})\b)?", 0, month_day),
            (r"\b(\d{1,2})(st|nd|rd|th)?\s(?:of\s)?" + _EN_MONTH + r"(?:,?\s(\d{4})\b)?", 0, day_month),
            (r"\b(\d{1,2})(?:[:.]([0-5]\d))?\s?([ap])\.?\s?m\b\.?", re.IGNORECASE, time_12),
            (
                r"(?<![\d:.,])\b(\d{1,2})[.:]([0-5]\d)(?=\s(?:in the (?:morning|afternoon|evening)|at night)\b)",
                0,
                time_said,
            ),
            (r"\b(at|by|from|until|till|before|after) (\d{1,2})\.([0-5]\d)\b(?![.,]\d|\s?%)", 0, time_after),
        ]
    else:
        rules += [
            (r"\b(\d{1,2})(\.)?\s(?:de\s)?" + local_month + r"(?:\s(?:de\s)?(\d{4})\b)?", re.IGNORECASE, day_month),
            (r"(?<![\d:.,])\b([01]?\d|2[0-3])[.:h]([0-5]\d)\s?(?:Uhr|h|uur)\b", 0, time_said),
            (r"\b(um|ab|bis|gegen|à|vers|las|alle|om) ([01]?\d|2[0-3])[.]([0-5]\d)\b(?![.,]\d)", 0, time_after),
        ]
        if prof.lang == "fr":  # "15h30", "15 h"
            rules.append((r"(?<![\d:.,])\b([01]?\d|2[0-3])\s?h\s?([0-5]\d)?\b", 0, time_said))
    rules += [
        (r"(?<![\d:.])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])(?:\s?h\b)?", 0, time_24),
        (PHONE.pattern, 0, lambda m: speak_phone(m.group(0), prof)),
        (rf"([$€£¥])\s?({amount}){scale}", re.IGNORECASE, money_before),
        (rf"\b({amount})\s?{scale}\s?(USD|EUR|GBP|CHF|€|£|\$)(?!\w)", re.IGNORECASE, money_after),
        (rf"\b(USD|EUR|GBP|CHF)\s?({amount})\b{scale}", 0, money_before),
        (rf"\b(\d+(?:[.,]\d+)?){_BARE_SCALES.get(prof.lang, '(?!x)x')}", 0, scaled),
        (r"\b(\d+(?:[.,]\d+)?)\s?%", 0, lambda m: f"{_amount_words(m.group(1), prof)} {prof.percent}"),
    ]
    if en:
        rules.append((r"\b(\d+)(?:st|nd|rd|th)\b", 0, lambda m: ordinal(int(m.group(1)))))
    elif prof.lang == "fr":
        rules.append((r"\b(\d+)(?:er|re|e|ème)\b", 0, lambda m: ordinal(int(m.group(1)), "fr")))
    rules += [
        (r"\b(\d{1,4})\s?[–-]\s?(\d{1,4})\b", 0, lambda m: f"{_num(m.group(1))} {prof.to} {_num(m.group(2))}"),
        (r"\b(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{12,}\b", 0, lambda m: _code_words(prof)),
        (r"\b([A-Z]{1,3})(\d{1,6})\b", 0, lambda m: _letters_number(m, prof)),
        (
            rf"(?<![\w.,])\d{{1,3}}(?:{group}\d{{3}})+(?:{point}\d+)?(?![\w])|(?<![\w.,])\d+(?:{point}\d+)?(?![\w])",
            0,
            lambda m: number(m.group(0), prof.lang, decimal_comma=prof.decimal_comma),
        ),
    ]

    def _num(text: str) -> str:
        return number(text, prof.lang)

    return rules


def _weekday(m: re.Match[str]) -> str:
    return _DAYS[m.group(1).lower()] + m.group(2)


def _letters_number(m: re.Match[str], prof: Profile) -> str:
    """ "B22" -> "B twenty-two", "LH1234" -> "L H one two three four" (gates, flights, quarters)."""
    num = m.group(2)
    return " ".join(m.group(1)) + " " + (cardinal(int(num), prof.lang) if len(num) <= 2 else digits(num, prof.lang))


def _code_words(prof: Profile) -> str:
    return {"de": "ein Referenzcode", "fr": "un code de référence"}.get(prof.lang, "a reference code")


@cache
def _compiled(prof: Profile) -> tuple[tuple[tuple[re.Pattern[str], str], ...], tuple[Rule, ...]]:
    abbreviations = tuple((re.compile(p), r) for p, r in _ABBREVIATIONS.get(prof.lang, ()))
    and_rule = ((re.compile(r"\s&\s"), f" {prof.and_word} "),)
    return abbreviations + and_rule, tuple((re.compile(p, flags), fn) for p, flags, fn in _rules(prof))


_SYMBOLS = re.compile(r"[\u2600-\u27bf\U0001f000-\U0001faff\ufe0f\u200d•→←↑↓▶►✓✔★☆|]+")


def normalize(text: str, language: str = "en") -> str:
    """Rewrite written forms as words in a language ("en", "de_DE", a voice's tag), keeping sentence and
    paragraph structure (newlines) intact."""
    abbreviations, rules = _compiled(profile(language))
    for pattern, replacement in abbreviations:
        text = pattern.sub(replacement, text)
    for rule, fn in rules:
        text = rule.sub(fn, text)
    text = _SYMBOLS.sub(" ", text)
    return re.sub(r"[ \t]{2,}", " ", text)
