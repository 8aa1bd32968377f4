"""Safe MIME parsing: corpus mails, broken encodings, and bombs refused fast with the limit named."""

from __future__ import annotations

import contextlib
from datetime import datetime

import mailcorpus as mc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailvoice.errors import MailError, MimeLimitError
from mailvoice.mail.mime import MimeLimits, html_to_text, normalize_message_id, parse_message


@pytest.mark.parametrize("case", mc.CASES, ids=lambda c: c.name)
def test_corpus_mail_parses_with_headers(case: mc.Case) -> None:
    parsed = parse_message(case.build())
    assert parsed.message_id is not None and parsed.message_id.startswith("<")
    assert parsed.message_id_normalized is not None
    assert parsed.subject and "=?" not in parsed.subject
    assert parsed.from_ is not None and "@" in parsed.from_.address
    assert [a.address for a in parsed.to] == ["bob@example.com"]
    assert isinstance(parsed.date, datetime) and parsed.date.year == 2024
    assert not parsed.null_sender
    assert parsed.parts


def test_asterisk_fields_and_text_body() -> None:
    parsed = parse_message(mc.asterisk_mail())
    assert parsed.subject == "[PBX]: New message 5 in mailbox 100"
    assert parsed.from_ is not None
    assert (parsed.from_.name, parsed.from_.address) == ("Asterisk PBX", "asterisk@pbx.example.com")
    assert parsed.message_id_normalized == "<Asterisk-5-1234567890-100-4242@pbx.example.com>"
    assert "0:42 long message" in parsed.text
    assert [p.content_type for p in parsed.parts] == ["text/plain", "audio/x-wav"]
    assert [p.path for p in parsed.parts] == ["1", "2"]
    assert parsed.parts[1].data == mc.tiny_wav()


def test_encoded_subject_is_decoded() -> None:
    assert parse_message(mc.carrier_mail("de")).subject == "Neue Sprachnachricht von +49 30 1234567"
    assert "Durée : 0:15" in parse_message(mc.carrier_mail("fr")).text


def test_html_only_mail_gives_visible_text() -> None:
    parsed = parse_message(mc.threecx_mail())
    assert "You have received a new voicemail from Alice Smith." in parsed.text
    assert "Caller ID: +1 555 123 4567" in parsed.text
    for hidden in ("Preheader", "tracking", "font-family", "3CX voicemail"):
        assert hidden not in parsed.text


def test_html_to_text_drops_scripts_styles_hidden() -> None:
    text = parse_message(mc.html_hidden_mail()).text
    assert text == "Visible one.\n\nVisible & two\nthree\n\nVisible four."


def test_html_unclosed_head_keeps_body() -> None:
    assert html_to_text("<html><head><title>x</title><body><p>kept</p>") == "kept"
    assert html_to_text("<p style='opacity:0'>gone</p><p style='opacity:0.5'>seen</p>") == "seen"


def test_forwarded_message_is_walked() -> None:
    for raw in (mc.forwarded_mail(), mc.forwarded_mail(encode_inner=True)):
        parsed = parse_message(raw)
        assert parsed.subject.startswith("Fwd:")
        assert parsed.text.startswith("FYI")
        assert len(parsed.forwarded) == 1
        inner = parsed.forwarded[0]
        assert inner.subject == "[PBX]: New message 5 in mailbox 100"
        assert inner.from_ is not None and inner.from_.address == "asterisk@pbx.example.com"
        assert "long message" in inner.text
        audio = [p for p in parsed.parts if p.content_type == "audio/x-wav"]
        assert len(audio) == 1 and audio[0].in_forward and audio[0].path.startswith("2")


def test_broken_charsets_and_encodings_never_crash() -> None:
    parsed = parse_message(mc.broken_charset_mail())
    assert "Voicemail f" in parsed.subject and "ä" in parsed.subject
    assert "\ufffd" in parsed.subject
    assert parsed.from_ is not None and parsed.from_.address == "joerg@example.de"
    assert parsed.date is None
    assert "Anrufer: 0170 1234567" in parsed.text and "Dauer: 0:07" in parsed.text
    audio = [p for p in parsed.parts if p.content_type == "audio/x-wav"]
    assert len(audio) == 1 and audio[0].data.startswith(b"RIFF")
    assert any("Base64" in d for d in audio[0].defects)
    # a charset naming a bytes transform (base64_codec) must not be used to decode text
    assert parsed.parts[-1].text.startswith("not base64 at all")


def test_null_sender_and_automated_flags() -> None:
    raw = mc.entity(
        [
            ("Return-Path", "<>"),
            ("From", "MAILER-DAEMON@example.org"),
            ("To", "bob@example.com"),
            ("Subject", "Undelivered"),
            ("Auto-Submitted", "auto-replied"),
        ],
        "bounce\r\n",
    )
    parsed = parse_message(raw)
    assert parsed.null_sender and parsed.is_automated
    bulk = parse_message(mc.entity([("From", "n@example.org"), ("Precedence", "bulk")], "x\r\n"))
    assert bulk.is_automated and not bulk.null_sender
    assert not parse_message(mc.vonage_mail()).is_automated


def test_threading_headers() -> None:
    raw = mc.entity(
        [
            ("From", "a@example.org"),
            ("Message-ID", " <Abc@Example.ORG> "),
            ("In-Reply-To", "<p1@x.org>"),
            ("References", "<p0@x.org>\r\n <p1@x.org>"),
        ],
        "x\r\n",
    )
    parsed = parse_message(raw)
    assert parsed.message_id == "<Abc@Example.ORG>"
    assert parsed.message_id_normalized == "<Abc@example.org>"
    assert parsed.in_reply_to == "<p1@x.org>"
    assert parsed.references == ("<p0@x.org>", "<p1@x.org>")


def test_normalize_message_id() -> None:
    assert normalize_message_id("<a@B.com>") == "<a@b.com>"
    assert normalize_message_id("a@B.com") == "<a@b.com>"
    assert normalize_message_id("junk <x@Y> more") == "<x@y>"
    assert normalize_message_id("") is None
    assert normalize_message_id("two words") is None


def test_ambiguous_from_is_refused_cve_2023_27043() -> None:
    raw = mc.entity([("From", "alice@example.org)<bob@example.org>"), ("To", "bob@example.com")], "x\r\n")
    assert parse_message(raw).from_ is None


@pytest.mark.parametrize(
    ("build", "limit"),
    [
        (lambda: mc.part_bomb(50_000), "max_parts"),
        (lambda: mc.part_bomb(600), "max_parts"),
        (lambda: mc.depth_bomb(2_000), "max_"),
        (lambda: mc.depth_bomb(30), "max_depth"),
        (lambda: mc.message_depth_bomb(2_000), "max_depth"),
        (lambda: mc.header_bomb(1_000_000), "max_header_bytes"),
        (lambda: b"".join(f"X-H{i}: v\r\n".encode() for i in range(5000)) + b"\r\nx", "max_headers"),
    ],
    ids=["parts-50000", "parts-600", "depth-2000", "depth-30", "rfc822-depth-2000", "header-1MB", "headers-5000"],
)
def test_bombs_refused(build: object, limit: str) -> None:
    raw = build()  # type: ignore[operator]
    with pytest.raises(MimeLimitError, match=limit):
        parse_message(raw)


def test_bomb_with_comment_or_bare_cr_is_still_counted() -> None:
    head = b"From: a@example.com\r\nContent-Type: multipart/mixed (c); boundary=b\r\n\r\n"
    with pytest.raises(MimeLimitError):
        parse_message(head + b"--b\r\n\r\nx\r\n" * 1500 + b"--b--\r\n")
    cr = b"From: a@example.com\rContent-Type: multipart/mixed; boundary=b\r\r" + b"--b\r\rx\r" * 1500 + b"--b--\r"
    with pytest.raises(MimeLimitError, match="max_parts"):
        parse_message(cr)


def test_size_and_time_limits() -> None:
    raw = mc.asterisk_mail()
    with pytest.raises(MimeLimitError, match="max_bytes"):
        parse_message(raw, limits=MimeLimits(max_bytes=len(raw) - 1))
    with pytest.raises(MimeLimitError, match="max_seconds"):
        parse_message(raw, limits=MimeLimits(max_seconds=-1.0))
    assert parse_message(raw, limits=MimeLimits(max_bytes=len(raw))).parts


def test_legitimate_nesting_within_limits() -> None:
    parsed = parse_message(mc.depth_bomb(15))
    assert len(parsed.parts) == 1 and parsed.parts[0].data.strip() == b"x"
    assert len(parse_message(mc.part_bomb(400)).parts) == 400


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(min_value=0, max_value=4000),
    flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=12),
)
def test_fuzzed_mail_never_crashes(cut: int, flips: list[tuple[int, int]]) -> None:
    raw = bytearray(mc.forwarded_mail()[: cut or None])
    for pos, value in flips:
        if pos < len(raw):
            raw[pos] = value
    try:
        parsed = parse_message(bytes(raw))
    except MailError:
        return
    assert isinstance(parsed.subject, str) and "\n" not in parsed.subject


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(MailError):
        parse_message(data)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Content-Type", "text/plain; " + "(" * 30_000 + "a=b"),
        ("Message-ID", "<" + "a." * 30_000 + "@b>"),
        ("Subject", "=?utf-8?q?a?= " * 4000),
        ("From", "a@example.org, " * 4000),
        ("Content-Type", 'text/plain; name="' + ";" * 39 + "x" * 60_000 + '"'),
    ],
    ids=["nested-comments", "long-msgid", "many-encoded-words", "many-addresses", "quoted-semicolons"],
)
def test_hostile_header_values_parse(name: str, value: str) -> None:
    raw = f"{name}: {value}\r\nTo: b@example.com\r\n\r\nbody\r\n".encode()
    parsed = parse_message(raw)  # a quadratic parse would hit pytest's timeout; speed is for benchmarks
    assert parsed.parts[0].data.strip() == b"body"


def test_too_many_parameters_refused() -> None:
    raw = ("Content-Type: text/plain; " + "a=b; " * 500 + "\r\n\r\nx\r\n").encode()
    with pytest.raises(MimeLimitError, match="max_params"):
        parse_message(raw)
