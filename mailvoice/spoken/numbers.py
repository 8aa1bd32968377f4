"""Numbers as English words: Piper's phonemizer reads plain digits, but not years, ordinals or digit strings well."""

from __future__ import annotations

_ONES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _under_hundred(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def _under_thousand(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    if not hundreds:
        return _under_hundred(rest)
    head = f"{_ONES[hundreds]} hundred"
    return f"{head} {_under_hundred(rest)}" if rest else head


def cardinal(n: int) -> str:
    """12345 -> "twelve thousand three hundred forty-five"."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n >= 10**15:
        return digits(str(n))
    if n < 1000:
        return _under_thousand(n)
    words: list[str] = []
    for value, name in _SCALES:
        if n >= value:
            count, n = divmod(n, value)
            words.append(f"{_under_thousand(count)} {name}")
    if n:
        words.append(_under_thousand(n))
    return " ".join(words)


def ordinal(n: int) -> str:
    """21 -> "twenty-first"."""
    words = cardinal(n)
    head, sep, last = words.rpartition("-") if "-" in words.rsplit(" ", 1)[-1] else words.rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head}{sep}{last}"


def year(n: int) -> str:
    """2026 -> "twenty twenty-six", 2005 -> "two thousand five", 1984 -> "nineteen eighty-four"."""
    if 2000 <= n <= 2009 or not 1100 <= n <= 2099:
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{cardinal(high)} hundred"
    return f"{cardinal(high)} {'oh ' if low < 10 else ''}{_under_hundred(low)}"


def digits(text: str) -> str:
    """Digit by digit ("4071" -> "four zero seven one"), for codes and phone numbers."""
    return " ".join(_ONES[int(ch)] for ch in text if ch.isdigit())


def decimal(text: str) -> str:
    """ "12.5" -> "twelve point five"; commas as thousands separators are accepted."""
    whole, _, frac = text.replace(",", "").partition(".")
    spoken = cardinal(int(whole or "0"))
    return f"{spoken} point {digits(frac)}" if frac else spoken


def number(text: str) -> str:
    """A written number as a listener expects it: codes digit by digit, years as years, the rest as amounts."""
    bare = text.replace(",", "")
    if "." in bare:
        return decimal(bare)
    if "," not in text and ((len(bare) > 1 and bare.startswith("0")) or len(bare) >= 7):
        return digits(bare)
    value = int(bare)
    if "," not in text and len(bare) == 4 and 1900 <= value <= 2099:
        return year(value)
    return cardinal(value)
