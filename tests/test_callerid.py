"""Caller name, number and duration from phone-system mails; best effort that never raises."""

from __future__ import annotations

import mailcorpus as mc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailvoice.mail.callerid import (
    CallerInfo,
    caller_from_text,
    caller_label,
    extract_caller,
    normalize_number,
    parse_duration,
    split_caller_id,
)
from mailvoice.mail.mime import Address, ParsedMail, parse_message


@pytest.mark.parametrize("case", mc.CASES, ids=lambda c: c.name)
def test_corpus_caller(case: mc.Case) -> None:
    info = extract_caller(parse_message(case.build()))
    assert info == CallerInfo(case.caller_name, case.number, case.duration, case.system)


def test_broken_mail_still_gives_number_and_duration() -> None:
    info = extract_caller(parse_message(mc.broken_charset_mail()))
    assert (info.name, info.number, info.duration) == (None, "0170 1234567", 7.0)


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        (
            "[PBX]: New message 1 in mailbox 100",
            "left a 1:05 long message (number 1)\nin mailbox 100 from an unknown caller, on Monday",
            (None, None, 65.0),
        ),
        (
            "[PBX]: New message 1 in mailbox 100",
            'left a 0:03 long message (number 1)\nin mailbox 100 from "Smith, Bob" <+44 20 7946 0000>, on Monday',
            ("Smith, Bob", "+44 20 7946 0000", 3.0),
        ),
        ("Voice Mail from 5551234567 (45 seconds)", "", (None, "5551234567", 45.0)),
        ("Voice Mail from Carol Jones (00:45)", "", ("Carol Jones", None, 45.0)),
        ("Voicemail from +15551234567", "Dauer: 1 min 5 s", (None, "+15551234567", 65.0)),
        ("Message", "Caller ID: Anonymous\nDuration: 12 seconds", (None, None, 12.0)),
        (
            "Message",
            "Caller Name: Dana\nCaller Number: 0049 (0)30 12345\nLength: 0:30",
            ("Dana", "0049 (0)30 12345", 30.0),
        ),
        ("Re: lunch", "From: Bob <bob@example.com>\nthe number 42 is not a caller", (None, None, None)),
    ],
)
def test_templates(subject: str, body: str, expected: tuple[str | None, str | None, float | None]) -> None:
    info = caller_from_text(subject, body)
    assert (info.name, info.number, info.duration) == expected


def test_forwarded_mail_uses_the_inner_notification() -> None:
    parsed = parse_message(mc.forwarded_mail(mc.threecx_mail()))
    info = extract_caller(parsed)
    assert (info.name, info.number, info.duration, info.system) == ("Alice Smith", "+1 555 123 4567", 23.0, "3cx")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0:42", 42.0),
        ("00:01:05", 65.0),
        ("23 seconds", 23.0),
        ("1 min 5 s", 65.0),
        ("12", 12.0),
        ("7,5 s", 7.5),
        ("0:23 seconds", 23.0),
        ("soon", None),
        ("", None),
        ("999:99:99", None),
    ],
)
def test_parse_duration(value: str, expected: float | None) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+1 (555) 123-4567", "+1 (555) 123-4567"),
        ("tel:+15551234567", "+15551234567"),
        ("12", None),
        ("555.123.4567", "555.123.4567"),
        ("+49 30 1234567 ext", "+49 30 1234567"),
        ("abc", None),
    ],
)
def test_normalize_number(value: str, expected: str | None) -> None:
    assert normalize_number(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"Alice Smith" <5551234567>', ("Alice Smith", "5551234567")),
        ("Alice Smith <5551234567>", ("Alice Smith", "5551234567")),
        ("Bob (101)", ("Bob", "101")),
        ("(555) 123-4567", (None, "(555) 123-4567")),
        ("Alice", ("Alice", None)),
        ("Unknown", (None, None)),
        ('"Anonymous" <anonymous>', (None, None)),
        ("alice@example.com", (None, None)),
        ("=?utf-8?q?Eve=0D=0ABcc:_x?= <555 0000>", (None, "555 0000")),
    ],
)
def test_split_caller_id(value: str, expected: tuple[str | None, str | None]) -> None:
    assert split_caller_id(value) == expected


def test_caller_label() -> None:
    assert caller_label(CallerInfo("Alice Smith", "+1 555 123 4567")) == "Alice Smith (+1 555 123 4567)"
    assert caller_label(CallerInfo(None, "+1 555 123 4567"), "PBX") == "+1 555 123 4567"
    assert caller_label(CallerInfo("Alice", None)) == "Alice"
    assert caller_label(CallerInfo(), "Asterisk PBX") == "Asterisk PBX"
    assert caller_label(CallerInfo(), "  ") == "unknown caller"
    assert caller_label(CallerInfo(), None) == "unknown caller"
    assert "\n" not in caller_label(CallerInfo("Eve\r\nBcc: x", None))


def _parsed(subject: str, text: str) -> ParsedMail:
    return ParsedMail(
        message_id=None,
        message_id_normalized=None,
        subject=subject,
        from_=Address("x", "x@example.com"),
        to=(),
        cc=(),
        date=None,
        return_path=None,
        auto_submitted=None,
        precedence=None,
        list_id=None,
        mailer=None,
        in_reply_to=None,
        references=(),
        text=text,
        parts=(),
    )


_LABELS = st.sampled_from(
    [
        "Caller ID: ",
        "From: ",
        "Duration: ",
        "voicemail from ",
        "Anrufer: ",
        "(",
        ")",
        "<",
        ">",
        '"',
        ":",
        " long message",
        " in mailbox 1 from ",
        ", on ",
        "\n",
        "+",
        "0:",
    ]
)
_TEXT = st.lists(st.one_of(st.text(max_size=30), _LABELS, st.integers(0, 10**12).map(str)), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(subject=_TEXT, body=_TEXT)
def test_fuzz_never_raises(subject: str, body: str) -> None:
    for info in (caller_from_text(subject, body), extract_caller(_parsed(subject, body))):
        assert isinstance(info, CallerInfo)
        assert info.duration is None or 0 <= info.duration <= 86400
        assert info.name is None or ("\n" not in info.name and "\r" not in info.name)
        assert isinstance(caller_label(info, subject), str)


def test_pathological_input_is_handled() -> None:
    body = ("voicemail from " * 20000) + ("Caller ID: " + "1 " * 5000 + "\n") * 300
    info = caller_from_text("(" * 5000, body)  # a catastrophic regex would hit pytest's timeout
    assert isinstance(info, CallerInfo)
    assert info.number is None or len(info.number) <= 32


def test_broken_object_gives_empty_info() -> None:
    assert extract_caller(None) == CallerInfo()  # type: ignore[arg-type]
