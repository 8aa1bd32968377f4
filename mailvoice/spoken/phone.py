"""Phone numbers read in the groups people say them in, from the phonenumbers library's formatting rules.

"5551234567" from a caller ID is "five five five, one two three, four five six seven" for a US voice, and
"+49 30 1234567" is "plus vier neun, drei null, eins zwei drei vier fünf sechs sieben" for a German one.
"""

from __future__ import annotations

import re

from mailvoice.spoken.lang import Profile
from mailvoice.spoken.numbers import digits, number

PATTERN = re.compile(
    # written with separators (555-123-4567, +49 30 1234567), a trunk prefix and one group (030 1234567,
    # (030) 123456), or a bare run of 8 to 15 digits (a caller ID)
    r"(?<![\w.,])(?:\+?\(?\d{1,4}\)?(?:[ .\-/]\(?\d{2,8}\)?){2,5}|\(?0\d{1,5}\)?[ /-]\d{3,8}|\+\d{8,15}|\d{8,15})"
    r"(?![\w]|[.,]\d)"
)


def _groups(written: str, region: str) -> list[str] | None:
    """Digit groups from phonenumbers' own format of the number; None when it is not a possible number."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(written, region)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number_with_reason(parsed) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    style = phonenumbers.PhoneNumberFormat
    formatted = phonenumbers.format_number(
        parsed, style.INTERNATIONAL if written.lstrip().startswith("+") else style.NATIONAL
    )
    groups = re.findall(r"\d+", formatted)
    return groups if len(groups) > 1 else None  # one block: no grouping rule for it in this region


def speak_phone(written: str, prof: Profile) -> str:
    """One phone number as words, grouped; the written grouping when phonenumbers cannot place it."""
    bare = not re.search(r"[^\d+]", written)
    groups = _groups(written, prof.region)
    if groups is None:
        if bare:  # a long code, not a phone number: digit by digit
            return digits(written, prof.lang)
        if not re.search(r"[^\d ]", written) and not written.startswith("0"):
            return " ".join(number(g, prof.lang) for g in written.split())  # "100 12 15": numbers, not a phone
        groups = re.findall(r"\d+", written)
    lead = f"{prof.plus} " if written.lstrip().startswith("+") else ""
    return lead + ", ".join(digits(g, prof.lang) for g in groups)
