"""Voicemail detection: which parts are recordings, safe names, mislabelled audio flagged, stable hashes."""

from __future__ import annotations

import hashlib

import mailcorpus as mc
import pytest

from mailvoice.mail.mime import parse_message
from mailvoice.mail.voicemail import (
    content_hash,
    find_audio_parts,
    message_id_hash,
    safe_filename,
    sniff_audio,
)


@pytest.mark.parametrize("case", mc.CASES, ids=lambda c: c.name)
def test_corpus_recordings_found(case: mc.Case) -> None:
    parts = find_audio_parts(parse_message(case.build()))
    assert len(parts) == case.audio_parts
    for part in parts:
        assert part.sniffed == "wav" and part.sniffed_ok
        assert part.data.startswith(b"RIFF")
        assert part.sha256 == hashlib.sha256(part.data).hexdigest()
        assert part.filename and "/" not in part.filename


def test_asterisk_part_details() -> None:
    (part,) = find_audio_parts(parse_message(mc.asterisk_mail()))
    assert (part.filename, part.content_type, part.path, part.in_forward) == ("msg0004.wav", "audio/x-wav", "2", False)
    assert part.data == mc.tiny_wav()


def test_forwarded_recording_is_found_inside_message_rfc822() -> None:
    (part,) = find_audio_parts(parse_message(mc.forwarded_mail()))
    assert part.in_forward and part.filename == "msg0004.wav" and part.data == mc.tiny_wav()


def test_two_recordings_and_order_free_content_hash() -> None:
    parts = find_audio_parts(parse_message(mc.two_voicemails_mail()))
    assert [p.filename for p in parts] == ["msg0004.wav", "msg0005.wav"]
    assert parts[0].sha256 != parts[1].sha256
    assert content_hash(parts) == content_hash(list(reversed(parts)))
    assert content_hash(parts) != content_hash(parts[:1])
    assert content_hash([]) != content_hash(parts[:1])


def test_octet_stream_by_extension_and_by_content_but_not_pdf() -> None:
    parts = find_audio_parts(parse_message(mc.octet_stream_mail()))
    assert [p.filename for p in parts] == ["voicemail.wav", "voicemail-2.wav"]
    assert all(p.content_type == "application/octet-stream" for p in parts)


def test_traversal_and_control_filenames_are_neutralised() -> None:
    parts = find_audio_parts(parse_message(mc.traversal_filename_mail()))
    names = [p.filename for p in parts]
    assert names == ["passwd", "evil.wav", "voicemail-3.wav", "a b vaw.exe"]
    for name in names:
        assert "/" not in name and "\\" not in name and ".." not in name and not name.startswith(".")
        assert all(ch.isprintable() for ch in name) and "\u202e" not in name


def test_mislabelled_audio_is_returned_flagged() -> None:
    parts = find_audio_parts(parse_message(mc.mislabelled_audio_mail()))
    assert [p.filename for p in parts] == ["voicemail.mp3", "message.wav", "empty.wav"]
    assert [p.sniffed_ok for p in parts] == [False, False, False]
    assert parts[0].data.startswith(b"#EXTM3U")


@pytest.mark.parametrize(
    "build",
    [mc.text_only_mail, mc.html_hidden_mail, mc.google_voice_mail],
    ids=["text", "html", "google-voice-link-only"],
)
def test_mail_without_recordings(build: object) -> None:
    assert find_audio_parts(parse_message(build())) == []  # type: ignore[operator]


def test_video_container_only_with_audio_bytes() -> None:
    webm = b"\x1a\x45\xdf\xa3" + b"\x00" * 40
    raw = mc.message(
        [("From", "gw@example.net")],
        [
            mc.text_part("x"),
            mc.audio_part(webm, "video/webm", "clip"),
            mc.audio_part(b"\x00" * 64, "video/mp4", "holiday"),
        ],
    )
    parts = find_audio_parts(parse_message(raw))
    assert [(p.filename, p.sniffed) for p in parts] == [("clip", "webm")]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (mc.tiny_wav(), "wav"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", None),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "mp3"),
        (b"\xff\xfb\x90\x64" + b"\x00" * 8, "mp3"),
        (b"\xff\xf1\x50\x80" + b"\x00" * 8, "aac"),
        (b"OggS\x00\x02" + b"\x00" * 8, "ogg"),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"#!AMR\n\x3c", "amr"),
        (b"#!AMR-WB\n", "amr"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", "m4a"),
        (b"\x00\x00\x00\x18ftyp3gp4\x00\x00", "3gp"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00", "mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "webm"),
        (b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n", None),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", None),
        (b"%PDF-1.4", None),
        (b"", None),
        (b"RIF", None),
    ],
)
def test_sniff_audio(data: bytes, expected: str | None) -> None:
    assert sniff_audio(data) == expected


def test_safe_filename_rules() -> None:
    assert safe_filename("../../etc/passwd", 1) == "passwd"
    assert safe_filename("C:\\Users\\x\\msg.wav", 1) == "msg.wav"
    assert safe_filename("..", 2, "mp3") == "voicemail-2.mp3"
    assert safe_filename(None, 3) == "voicemail-3.wav"
    assert safe_filename("NUL.wav", 4) == "voicemail-4.wav"
    assert safe_filename(".hidden.wav", 5) == "hidden.wav"
    assert safe_filename('a<b>:"c|?*.wav', 6) == "a_b___c___.wav"
    long = safe_filename("x" * 500 + ".wav", 7)
    assert len(long) == 100 and long.endswith(".wav")
    assert safe_filename("Anruf von Jörg.wav", 8) == "Anruf von Jörg.wav"
    assert safe_filename(".wav", 9) == "voicemail-9.wav"


def test_message_id_hash_normalises_and_falls_back_to_raw() -> None:
    a = mc.entity([("From", "a@example.org"), ("Message-ID", "<X1@Example.org>")], "one\r\n")
    b = mc.entity([("From", "b@example.org"), ("Message-ID", "<X1@EXAMPLE.ORG>")], "two\r\n")
    c = mc.entity([("From", "a@example.org"), ("Message-ID", "<X2@example.org>")], "one\r\n")
    hash_a, hash_b = message_id_hash(parse_message(a), a), message_id_hash(parse_message(b), b)
    assert hash_a == hash_b != message_id_hash(parse_message(c), c)
    n1, n2 = mc.entity([("From", "a@example.org")], "one\r\n"), mc.entity([("From", "a@example.org")], "two\r\n")
    assert message_id_hash(parse_message(n1), n1) != message_id_hash(parse_message(n2), n2)
    assert message_id_hash(parse_message(n1), n1) == message_id_hash(parse_message(n1), n1)
    assert len(hash_a) == 64 and "X1" not in hash_a


def test_raw_utf8_and_rfc2047_filenames_are_decoded() -> None:
    wav = mc.b64lines(mc.tiny_wav(0.05)).encode()
    raw = (
        b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b'--b\r\nContent-Type: audio/wav; name="Anruf J\xc3\xb6rg.wav"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + wav
        + b"\r\n--b\r\nContent-Type: audio/wav\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="=?utf-8?q?Nachricht_f=C3=BCr_dich.wav?="\r\n\r\n'
        + wav
        + b"\r\n--b--\r\n"
    )
    parts = find_audio_parts(parse_message(raw))
    assert [p.filename for p in parts] == ["Anruf Jörg.wav", "Nachricht für dich.wav"]
