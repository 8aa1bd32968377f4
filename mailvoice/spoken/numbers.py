"""Numbers as words in the voice's language, through num2words: cardinals, ordinals, years, decimals, digit strings.

English comes out in the American form a US voice reads ("one hundred twelve", no "and", no commas), which is also
what the English voices here were trained to say.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

_DIGITS_EN = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_EN_CLEAN = re.compile(r",| and(?= )")


@cache
def _converter(lang: str) -> Any:
    """num2words' converter for a language (its own fallback is English for a code it does not know)."""
    from num2words import CONVERTER_CLASSES

    return CONVERTER_CLASSES.get(lang) or CONVERTER_CLASSES["en"]


def supported(lang: str) -> bool:
    """True when num2words speaks this language."""
    from num2words import CONVERTER_CLASSES

    return lang in CONVERTER_CLASSES


def _say(value: int | float, lang: str, to: str = "cardinal") -> str:
    from num2words import num2words

    words = str(num2words(value, lang=lang if supported(lang) else "en", to=to))
    if lang == "en" or not supported(lang):
        words = _EN_CLEAN.sub("", words)
    return words


def cardinal(n: int, lang: str = "en") -> str:
    """12345 -> "twelve thousand three hundred forty-five"; huge numbers digit by digit."""
    if abs(n) >= 10**15:
        return ("minus " if n < 0 else "") + digits(str(abs(n)), lang)
    return _say(n, lang)


def ordinal(n: int, lang: str = "en") -> str:
    """21 -> "twenty-first" ("einundzwanzigste" in German)."""
    return _say(n, lang, "ordinal")


def year(n: int, lang: str = "en") -> str:
    """2026 -> "twenty twenty-six", 2005 -> "two thousand five", 1905 -> "nineteen oh five"."""
    if not 1000 <= n <= 2999:
        return cardinal(n, lang)
    return _say(n, lang, "year").replace("oh-", "oh ")


def digits(text: str, lang: str = "en") -> str:
    """Digit by digit ("4071" -> "four zero seven one"), for codes and phone numbers."""
    if lang == "en" or not supported(lang):
        return " ".join(_DIGITS_EN[int(ch)] for ch in text if ch.isdigit())
    return " ".join(_say(int(ch), lang) for ch in text if ch.isdigit())


def decimal(whole: str, frac: str, lang: str = "en") -> str:
    """("12", "05") -> "twelve point zero five": the fraction digit by digit, as people read it."""
    from num2words import CONVERTER_CLASSES

    spoken = cardinal(int(whole or "0"), lang)
    if not frac:
        return spoken
    point = getattr(CONVERTER_CLASSES.get(lang), "pointword", None) or {"it": "virgola"}.get(lang, "point")
    return f"{spoken} {point} {digits(frac, lang)}"


def number(text: str, lang: str = "en", *, decimal_comma: bool = False) -> str:
    """A written number as a listener expects it: codes digit by digit, years as years, the rest as amounts.

    decimal_comma: "1.234,5" (German, French...) rather than "1,234.5".
    """
    group, point = (".", ",") if decimal_comma else (",", ".")
    whole, _, frac = text.partition(point)
    bare = whole.replace(group, "")
    if frac:
        return decimal(bare, frac, lang)
    if group not in whole and ((len(bare) > 1 and bare.startswith("0")) or len(bare) >= 7):
        return digits(bare, lang)
    value = int(bare)
    if group not in whole and len(bare) == 4 and 1900 <= value <= 2099:
        return year(value, lang)
    return cardinal(value, lang)


def currency_unit(code: str, amount: int, lang: str, *, sub: bool = False) -> str:
    """The unit word num2words knows for a currency code ("Euro", "dollars", "cents"); "" when it knows none."""
    forms = getattr(_converter(lang), "CURRENCY_FORMS", {}).get(code)
    if not forms:
        return ""
    pair = forms[1 if sub else 0]
    try:
        return str(_converter(lang).pluralize(amount, pair))
    except (AttributeError, IndexError, TypeError):
        return str(pair[0] if amount == 1 else pair[-1])
