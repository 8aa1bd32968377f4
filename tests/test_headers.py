"""Header safety: untrusted text cannot add headers or recipients, or reach an IMAP command unchecked."""

from __future__ import annotations

import email.message
import email.policy
import email.utils
from email.parser import BytesParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailvoice.errors import ConfigError, MailError
from mailvoice.mail.headers import (
    check_interpreter_email_security,
    clean_header_text,
    decode_rfc2047,
    is_safe_for_imap,
    make_message_id,
    parse_addresses,
    safe_imap_atom,
)

HOSTILE = [
    "hello\r\nBcc: evil@example.net",
    "hello\nTo: evil@example.net",
    "nul\x00byte\rcr",
    "=?utf-8?q?a=0D=0ABcc:_evil@example.net?=",
    "=?utf-8?b?aGkNCkJjYzogZXZpbEBleGFtcGxlLm5ldA==?=",
    "=?utf-8?q?=3D=3Futf-8=3Fq=3Fx=3D0D=3D0ABcc:_evil@example.net=3F=3D?=",
    "line\u2028sep\u2029para\u0085nel",
    "bidi \u202egnp.exe zero\u200bwidth",
    "tab\tand   spaces",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_clean_header_text_is_one_plain_line(text: str) -> None:
    cleaned = clean_header_text(text)
    assert cleaned == cleaned.strip()
    assert not any(ord(ch) < 0x20 or ch in "\x7f\x85\u2028\u2029\u202e\u200b" for ch in cleaned)
    assert "  " not in cleaned
    assert "=?" not in cleaned


def test_clean_header_text_values() -> None:
    assert clean_header_text("=?utf-8?q?a=0D=0ABcc:_x?=") == "a Bcc: x"
    assert clean_header_text("Hi =?utf-8?b?w6Q=?= =?utf-8?b?w7Y=?= there") == "Hi äö there"
    assert clean_header_text(None) == "" and clean_header_text("") == ""
    assert clean_header_text("x" * 50, max_len=10) == "x" * 9 + "…"
    assert decode_rfc2047("=?x-unknown?q?caf=E9?=") == "caf\ufffd"


def _outgoing(subject_source: str, caller: str) -> bytes:
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "mailvoice <bot@example.org>"
    msg["To"] = "owner@example.org"
    msg["Subject"] = clean_header_text(f"Voicemail from {caller}: {subject_source}", max_len=120)
    msg["Message-ID"] = make_message_id("example.org", seed=subject_source)
    msg.set_content("transcript body")
    return msg.as_bytes()


def _assert_exact_headers(flat: bytes) -> None:
    back = BytesParser(policy=email.policy.default).parsebytes(flat)
    assert [k.lower() for k in back] == [
        "from",
        "to",
        "subject",
        "message-id",
        "content-type",
        "content-transfer-encoding",
        "mime-version",
    ]
    recipients = email.utils.getaddresses(back.get_all("To", []) + back.get_all("Cc", []) + back.get_all("Bcc", []))
    assert [addr for _, addr in recipients] == ["owner@example.org"]
    assert "\n" not in str(back["Subject"]) and "\r" not in str(back["Subject"])


@pytest.mark.parametrize("text", HOSTILE)
def test_transcript_in_subject_adds_no_header(text: str) -> None:
    _assert_exact_headers(_outgoing(text, caller=text))


_PIECES = st.sampled_from(
    [*"ab :=?_\r\n\x00\t\u2028\u00e4", "=0D", "=0A", "=?utf-8?q?", "=?utf-8?b?", "?=", "DQpCY2M6IHhAeS56", "Bcc: x@y.z"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join))
def test_fuzzed_transcript_adds_no_header(text: str) -> None:
    _assert_exact_headers(_outgoing(text, caller="Alice"))


def test_imap_safety() -> None:
    assert is_safe_for_imap("<abc.123@example.org>")
    assert is_safe_for_imap("Archive/Voicemail")
    assert is_safe_for_imap("Entwürfe", folder=True)
    for bad in ("a\r\nA1 DELETE INBOX", "a\nb", "nul\x00", 'quote"', "back\\slash", "", "x" * 1001, "Entwürfe"):
        assert not is_safe_for_imap(bad)
    assert not is_safe_for_imap("bidi\u202e", folder=True)
    assert safe_imap_atom("$MailvoiceDone") == "$MailvoiceDone"
    for bad in ("two words", "(paren", "a\r\nb", 'quo"te', "", "wild*", "pct%", "ü"):
        with pytest.raises(MailError, match="IMAP atom"):
            safe_imap_atom(bad)


def test_make_message_id() -> None:
    one = make_message_id("Example.ORG", seed="account/INBOX/1/42")
    assert one == make_message_id("example.org", seed=b"account/INBOX/1/42")
    assert one != make_message_id("example.org", seed="account/INBOX/1/43")
    assert make_message_id("example.org") != make_message_id("example.org")
    assert one.startswith("<mv.") and one.endswith("@example.org>")
    parsed = email.policy.default.header_factory("Message-ID", one)
    assert not parsed.defects
    for bad in ("", "exa mple.org", "example.org\r\nBcc: x", "-bad.org", "a" * 300):
        with pytest.raises(ConfigError):
            make_message_id(bad)


def test_parse_addresses_refuses_ambiguity() -> None:
    assert parse_addresses(["alice@example.org)<bob@example.org>"]) == []
    assert parse_addresses(['"Smith, A" <a@x.org>, b@y.org']) == [("Smith, A", "a@x.org"), ("", "b@y.org")]
    assert parse_addresses(["=?utf-8?q?J=C3=B6rg?= <j@x.de>"]) == [("Jörg", "j@x.de")]
    assert parse_addresses(["a@b@c", "<>", "x@[127.0.0.1]"]) == []
    assert parse_addresses(["Eve <eve@x.org>\r\nBcc: y@z.org"]) == []


def _generator_injects() -> bool:
    msg = email.message.EmailMessage(policy=email.policy.default)
    msg["To"] = "a@example.org"
    msg["Subject"] = "=?utf-8?q?x=0D=0ABcc:_y@example.org?="
    try:
        flat = msg.as_bytes()
    except Exception:
        return False
    return b"\nBcc:" in flat


def test_interpreter_check_matches_behaviour() -> None:
    problems = check_interpreter_email_security()
    assert all(isinstance(p, str) and p for p in problems)
    strict = bool(getattr(email.utils, "supports_strict_parsing", False))
    assert any("CVE-2023-27043" in p for p in problems) == (not strict)
    assert any("CVE-2024-6923" in p for p in problems) == _generator_injects()
