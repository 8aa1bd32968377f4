"""Realistic voicemail notification mails of common phone systems, plus hostile mails, built at test time.

Every builder returns raw RFC 5322 bytes (CRLF line ends). Audio payloads are tiny valid WAV files made with the
stdlib `wave` module whatever type the mail declares, so a downstream decoder can always run on them; only the
explicitly mislabelled cases carry non-audio bytes. Nothing here is a committed audio file.
"""

from __future__ import annotations

import base64
import email
import io
import math
import quopri
import struct
import wave
from collections.abc import Callable
from dataclasses import dataclass

CRLF = "\r\n"


def tiny_wav(seconds: float = 0.25, rate: int = 8000, freq: float = 440.0) -> bytes:
    """A short mono 16-bit sine tone as a WAV file."""
    frames = int(seconds * rate)
    samples = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate))) for i in range(frames))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples)
    return buf.getvalue()


def b64lines(data: bytes) -> str:
    """Base64 in 76-character CRLF lines, as mailers write attachments."""
    text = base64.b64encode(data).decode("ascii")
    return CRLF.join(text[i : i + 76] for i in range(0, len(text), 76))


def entity(headers: list[tuple[str, str]], body: str | bytes) -> bytes:
    """One MIME entity (or a whole message): header lines, a blank line, the body."""
    head = "".join(f"{k}: {v}{CRLF}" for k, v in headers).encode("utf-8")
    data = body.encode("utf-8") if isinstance(body, str) else body
    return head + CRLF.encode() + data


def multipart(subtype: str, parts: list[bytes], boundary: str) -> tuple[str, bytes]:
    """(Content-Type value, body) of a multipart holding parts."""
    sep = f"--{boundary}{CRLF}".encode()
    body = b"This is a multi-part message in MIME format." + CRLF.encode() + CRLF.encode()
    for part in parts:
        body += sep + part + CRLF.encode()
    body += f"--{boundary}--{CRLF}".encode()
    return f'multipart/{subtype}; boundary="{boundary}"', body


def text_part(text: str, subtype: str = "plain", charset: str = "utf-8") -> bytes:
    """A quoted-printable text part."""
    encoded = quopri.encodestring(text.replace("\n", CRLF).encode(charset)).decode("ascii")
    return entity(
        [("Content-Type", f'text/{subtype}; charset="{charset}"'), ("Content-Transfer-Encoding", "quoted-printable")],
        encoded,
    )


def audio_part(
    data: bytes,
    content_type: str = "audio/x-wav",
    filename: str | None = "message.wav",
    disposition: str = "attachment",
    extra: list[tuple[str, str]] | None = None,
) -> bytes:
    """A base64 attachment part."""
    ctype = f'{content_type}; name="{filename}"' if filename else content_type
    disp = f'{disposition}; filename="{filename}"' if filename else disposition
    headers = [("Content-Type", ctype), ("Content-Transfer-Encoding", "base64"), ("Content-Disposition", disp)]
    return entity(headers + (extra or []), b64lines(data))


def message(
    headers: list[tuple[str, str]],
    parts: list[bytes] | None = None,
    body: bytes | None = None,
    boundary: str = "=_mailvoice_test_1",
    subtype: str = "mixed",
) -> bytes:
    """A whole mail: the common headers, then a multipart of parts or a given single body."""
    base = [("MIME-Version", "1.0")]
    if parts is not None:
        ctype, data = multipart(subtype, parts, boundary)
        return entity(headers + base + [("Content-Type", ctype)], data)
    return entity(headers + base, body or b"")


def _common(sender: str, subject: str, msgid: str, to: str = "Bob <bob@example.com>") -> list[tuple[str, str]]:
    return [
        ("Return-Path", "<" + sender.rsplit("<", 1)[-1].rstrip(">") + ">"),
        ("Date", "Fri, 01 Mar 2024 10:15:03 +0100"),
        ("From", sender),
        ("To", to),
        ("Subject", subject),
        ("Message-ID", msgid),
    ]


# --- phone systems ------------------------------------------------------------------------------------------

ASTERISK_BODY = (
    "Dear Bob:\n\n\tjust wanted to let you know you were just left a 0:42 long message (number 5)\n"
    'in mailbox 100 from "Alice Smith" <5551234567>, on Friday, March 01, 2024 at 10:15:03 AM, so you might\n'
    "want to check it when you get a chance.  Thanks!\n\n\t\t\t\t--Asterisk\n"
)


def asterisk_mail(
    audio: bytes | None = None,
    msgid: str = "<Asterisk-5-1234567890-100-4242@pbx.example.com>",
    second_audio: bytes | None = None,
) -> bytes:
    """Asterisk app_voicemail with its default template."""
    parts = [
        text_part(ASTERISK_BODY, charset="ISO-8859-1"),
        audio_part(
            audio or tiny_wav(),
            "audio/x-wav",
            "msg0004.wav",
            extra=[("Content-Description", "Voicemail sound attachment.")],
        ),
    ]
    if second_audio is not None:
        parts.append(audio_part(second_audio, "audio/x-wav", "msg0005.wav"))
    return message(
        [
            *_common('"Asterisk PBX" <asterisk@pbx.example.com>', "[PBX]: New message 5 in mailbox 100", msgid),
            ("X-Asterisk-CallerID", "5551234567"),
            ("X-Asterisk-CallerIDName", "Alice Smith"),
        ],
        parts,
        boundary="----voicemail_51001234567890",
    )


def freepbx_mail(audio: bytes | None = None) -> bytes:
    """FreePBX: Asterisk underneath, its own body template."""
    body = (
        "Bob,\n\nThere is a new voicemail in mailbox 2001:\n\n"
        '\tFrom:\t"Alice Smith" <+15551234567>\n\tLength:\t0:23 seconds\n'
        "\tDate:\tFriday, March 01, 2024 at 10:15:03 AM\n\n"
        "Dial *98 to access your voicemail by phone.\n"
        "Visit http://pbx.example.com/ucp to check your voicemail with a web browser.\n"
    )
    return message(
        _common(
            '"FreePBX" <freepbx@pbx.example.com>',
            "[PBX]: New message 3 in mailbox 2001",
            "<Asterisk-3-987654321-2001-777@pbx.example.com>",
        ),
        [text_part(body), audio_part(audio or tiny_wav(), "audio/x-wav", "msg0002.wav")],
        boundary="----voicemail_32001987654321",
    )


def threecx_mail(audio: bytes | None = None) -> bytes:
    """3CX: HTML only, a table of caller details, the recording as audio/wav."""
    html = (
        "<html><head><title>3CX voicemail</title><style>td {font-family: Arial}</style></head><body>"
        '<div style="display:none;max-height:0">Preheader hidden text</div>'
        "<p>Hello Bob,</p><p>You have received a new voicemail from Alice Smith.</p>"
        "<table><tr><td>Caller ID:</td><td>+1 555 123 4567</td></tr>"
        "<tr><td>Caller Name:</td><td>Alice Smith</td></tr>"
        "<tr><td>Duration:</td><td>00:00:23</td></tr>"
        "<tr><td>Date:</td><td>01/03/2024 10:15:03</td></tr></table>"
        "<script>document.write('tracking')</script>"
        '<img src="https://tracker.example.net/pixel.gif" alt="">'
        "<p>3CX Phone System</p></body></html>"
    )
    return message(
        _common(
            '"3CX Phone System" <noreply@pbx.3cx.example.com>',
            "New Voicemail from Alice Smith (+1 555 123 4567)",
            "<3cx.vm.101.1709284503@3cx.example>",
        ),
        [text_part(html, "html"), audio_part(audio or tiny_wav(), "audio/wav", "vmail_101_20240301-101503.wav")],
        boundary="--boundary_3cx_0",
    )


def teams_mail(audio: bytes | None = None) -> bytes:
    """Microsoft Teams / Exchange: duration in the subject, caller in an HTML body with a transcript preview."""
    html = (
        '<html><body><div dir="ltr"><p>You received a voice mail from Alice Smith (+1 555 123 4567).</p>'
        "<p><b>Transcription preview</b></p><p>Hi Bob, please call me back about the contract.</p>"
        '<p style="font-size:0px">hidden tracking words</p>'
        '<a href="https://teams.microsoft.com/l/voicemail">Play in Microsoft Teams</a></div></body></html>'
    )
    return message(
        [
            *_common(
                '"Alice Smith" <alice.smith@contoso.example>',
                "Voice Mail (23 seconds)",
                "<DM6PR11MB4000.namprd11.prod.outlook.com@contoso.example>",
            ),
            ("X-MS-Exchange-Organization-SCL", "-1"),
        ],
        [text_part(html, "html"), audio_part(audio or tiny_wav(), "audio/mpeg", "audio.mp3")],
        boundary="_004_DM6PR11MB4000namprd11prod_",
    )


def google_voice_mail() -> bytes:
    """Google Voice: transcript in the body, a link instead of an attachment."""
    text = (
        "Hi Bob, this is Alice, just calling about tomorrow's meeting, give me a ring.\n\n"
        "Play message: https://voice.google.com/u/0/voicemail/message/abc\n\n"
        "YOUR ACCOUNT | HELP CENTER | HELP FORUM\nGoogle LLC 1600 Amphitheatre Parkway\n"
    )
    html = "<html><body><p>" + text.replace("\n", "<br>") + "</p></body></html>"
    alt_ctype, alt_body = multipart("alternative", [text_part(text), text_part(html, "html")], "000alt")
    headers = _common(
        '"Google Voice" <voice-noreply@google.com>',
        "New voicemail from (555) 123-4567 at 3:14 PM",
        "<0000000000001234abcd@google.com>",
    )
    return entity([*headers, ("MIME-Version", "1.0"), ("Content-Type", alt_ctype)], alt_body)


def cisco_unity_mail(audio: bytes | None = None) -> bytes:
    """Cisco Unity Connection (single inbox off): caller in the subject, VoiceMessage.wav attached."""
    return message(
        _common(
            '"Cisco Unity Connection Messaging System" <unityconnection@cuc.example.com>',
            "Message from Alice Smith (5551234567)",
            "<cuc-a1b2c3@cuc.example.com>",
        ),
        [
            text_part("Cisco Unity Connection: you have a new voice message.\n"),
            audio_part(audio or tiny_wav(), "audio/wav", "VoiceMessage.wav"),
        ],
    )


def ringcentral_mail(audio: bytes | None = None) -> bytes:
    """RingCentral: caller and duration in labelled lines."""
    text = (
        "You have a new voice message from ALICE SMITH (650) 555-1234 on Friday, March 1, 2024 at 10:15 AM.\n\n"
        "From: ALICE SMITH (650) 555-1234\nTo: Bob (101)\nReceived: Friday, March 1, 2024 10:15 AM\n"
        "Duration: 00:00:38\n\nThank you for using RingCentral!\n"
    )
    return message(
        _common(
            '"RingCentral" <service@ringcentral.com>',
            "New Voice Message from ALICE SMITH (650) 555-1234",
            "<rc.123456.vm@ringcentral.com>",
        ),
        [text_part(text), audio_part(audio or tiny_wav(), "audio/mpeg", "message.mp3")],
    )


def vonage_mail(audio: bytes | None = None) -> bytes:
    """Vonage: caller number only, m:ss duration."""
    text = (
        "You have a new voicemail message.\n\nFrom: 15551234567\nDuration: 0:17\n"
        "Received: 03/01/2024 10:15 AM\n\nVonage\n"
    )
    return message(
        _common('"Vonage" <voicemail@vonage.net>', "New Voicemail from 15551234567", "<vm.987654@vonage.net>"),
        [text_part(text), audio_part(audio or tiny_wav(), "audio/x-wav", "voicemail.wav")],
    )


def carrier_mail(language: str = "de", audio: bytes | None = None) -> bytes:
    """A carrier's voicemail-to-mail gateway in German, French or Spanish."""
    subject, body, charset = {
        "de": (
            "Neue Sprachnachricht von +49 30 1234567",
            "Sie haben eine neue Sprachnachricht.\n\nAnrufer: +49 30 1234567\nDauer: 0:42\nDatum: 01.03.2024 10:15\n",
            "utf-8",
        ),
        "fr": (
            "Nouveau message vocal de +33 1 23 45 67 89",
            "Vous avez un nouveau message vocal.\n\nAppelant : +33 1 23 45 67 89\nDurée : 0:15\n",
            "iso-8859-1",
        ),
        "es": (
            "Nuevo mensaje de voz de +34 912 345 678",
            "Tiene un nuevo mensaje de voz.\n\nLlamante: +34 912 345 678\nDuración: 1:05\n",
            "utf-8",
        ),
    }[language]
    encoded_subject = "=?utf-8?B?" + base64.b64encode(subject.encode()).decode() + "?="
    return message(
        _common(
            '"Mailbox" <mailbox@voicemail.carrier.example>',
            encoded_subject,
            f"<vm-{language}-1@voicemail.carrier.example>",
        ),
        [text_part(body, charset=charset), audio_part(audio or tiny_wav(), "audio/x-wav", "Sprachnachricht.wav")],
    )


def fritzbox_mail(audio: bytes | None = None) -> bytes:
    """AVM FRITZ!Box answering machine."""
    text = (
        "FRITZ!Box Anrufbeantworter\n\nSie haben eine neue Nachricht.\n\n"
        "Anrufer: 0170 1234567\nLänge: 0:09\nEmpfangen: 01.03.24 10:15\n"
    )
    return message(
        _common(
            '"FRITZ!Box" <fritzbox@example.de>',
            "Sprachnachricht von 0170 1234567 für 030 9876543",
            "<fritzbox.1709284503@example.de>",
        ),
        [text_part(text), audio_part(audio or tiny_wav(), "audio/x-wav", "Sprachnachricht_01.wav")],
    )


# --- shapes that trip parsers -------------------------------------------------------------------------------


def forwarded_mail(inner: bytes | None = None, encode_inner: bool = False) -> bytes:
    """A person forwarding a voicemail notification as an attached message/rfc822."""
    inner = inner if inner is not None else asterisk_mail()
    headers = [("Content-Type", "message/rfc822"), ("Content-Disposition", 'attachment; filename="vm.eml"')]
    if encode_inner:  # forbidden by RFC 2046, sent anyway by some clients
        headers.append(("Content-Transfer-Encoding", "base64"))
        attached = entity(headers, b64lines(inner))
    else:
        attached = entity(headers, inner)
    subject = "Fwd: " + str(email.message_from_bytes(inner).get("Subject", ""))
    return message(
        _common("Carol <carol@example.org>", subject, "<fwd-1@example.org>"),
        [text_part("FYI, see the attached voicemail.\n\nCarol\n"), attached],
        boundary="fwd-outer",
    )


def two_voicemails_mail() -> bytes:
    """Two recordings in one notification."""
    return asterisk_mail(
        tiny_wav(0.2, freq=300.0), msgid="<two@pbx.example.com>", second_audio=tiny_wav(0.3, freq=500.0)
    )


def octet_stream_mail() -> bytes:
    """Gateways that send application/octet-stream: by extension, by content, and a PDF that is neither."""
    return message(
        _common("Gateway <gw@example.net>", "Voicemail from +15551234567", "<octet@example.net>"),
        [
            text_part("Voicemail from +15551234567, duration 12 seconds.\nDuration: 12 s\n"),
            audio_part(tiny_wav(0.2), "application/octet-stream", "voicemail.wav"),
            audio_part(tiny_wav(0.1), "application/octet-stream", None),
            audio_part(b"%PDF-1.4\n%fake\n", "application/octet-stream", "invoice.pdf"),
        ],
    )


def traversal_filename_mail() -> bytes:
    """RFC 2231 and RFC 2047 filenames that decode to paths outside the work directory."""
    evil_2231 = entity(
        [
            ("Content-Type", "audio/wav"),
            ("Content-Transfer-Encoding", "base64"),
            ("Content-Disposition", "attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd"),
        ],
        b64lines(tiny_wav(0.1)),
    )
    evil_2047 = entity(
        [
            ("Content-Type", 'audio/wav; name="=?utf-8?q?..=5C..=5Cwindows=5Cevil.wav?="'),
            ("Content-Transfer-Encoding", "base64"),
        ],
        b64lines(tiny_wav(0.1)),
    )
    dots = audio_part(tiny_wav(0.1), "audio/wav", "..")
    controls = entity(
        [
            ("Content-Type", "audio/wav"),
            ("Content-Transfer-Encoding", "base64"),
            ("Content-Disposition", "attachment; filename*=UTF-8''a%0D%0Ab%00%E2%80%AEvaw.exe"),
        ],
        b64lines(tiny_wav(0.1)),
    )
    return message(
        _common("Gateway <gw@example.net>", "Voicemail", "<traversal@example.net>"),
        [text_part("see attachments\n"), evil_2231, evil_2047, dots, controls],
    )


def broken_charset_mail() -> bytes:
    """Unknown charsets, invalid bytes, 8-bit headers, broken base64 and quoted-printable."""
    head = (
        b"From: =?x-unknown-42?Q?J=F6rg?= <joerg@example.de>\r\n"
        b"To: bob@example.com\r\n"
        b"Subject: =?utf-99?Q?Voicemail_f=FCr_dich?= \xff\xfe raw 8bit \xc3\xa4\r\n"
        b"Message-ID: <broken@example.de>\r\n"
        b"Date: not a date at all\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    )
    body = (
        b"--b1\r\n"
        b'Content-Type: text/plain; charset="utf-99"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Anrufer: 0170 1234567 =ZZ broken qp \xff\xfe\r\nDauer: 0:07\r\n"
        b"--b1\r\n"
        b'Content-Type: audio/x-wav; name="=?bogus?B?!!!?=.wav"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64lines(tiny_wav(0.1)).encode()[:-3] + b"!!*\r\n"
        b"--b1\r\n"
        b"Content-Type: text/plain; charset=base64_codec\r\n\r\n"
        b"not base64 at all\r\n"
    )  # and no closing boundary
    return head + body


def mislabelled_audio_mail() -> bytes:
    """Parts that claim audio but are not: an HLS playlist, text, and an empty part."""
    playlist = b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    return message(
        _common("Gateway <gw@example.net>", "Voicemail from +15551234567", "<mislabelled@example.net>"),
        [
            text_part("Voicemail attached.\n"),
            audio_part(playlist, "audio/mpeg", "voicemail.mp3"),
            audio_part(b"this is not audio", "audio/wav", "message.wav"),
            audio_part(b"", "audio/x-wav", "empty.wav"),
        ],
    )


def text_only_mail() -> bytes:
    """A normal text mail: no recordings."""
    return entity(
        [
            *_common("Dave <dave@example.org>", "Lunch?", "<lunch@example.org>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ],
        "Lunch at noon? The audio.wav is a joke.\r\n",
    )


def html_hidden_mail() -> bytes:
    """HTML with scripts, styles, hidden elements and remote images: only visible text counts."""
    html = (
        "<!DOCTYPE html><html><head><title>T</title><style>.x{color:red}</style>"
        "<script>alert('s')</script></head><body>"
        "<p>Visible one.</p><div hidden>hidden attr</div><span style='display: none'>hidden css</span>"
        '<div aria-hidden="true">aria hidden</div><img src="http://remote.example/img.png" alt="image">'
        "<p>Visible &amp; two<br>three</p><noscript>noscript text</noscript>"
        "<div style='display:none'><div>nested hidden</div></div><p>Visible four.</p></body></html>"
    )
    return message(
        _common("News <news@example.org>", "HTML", "<html@example.org>"),
        [text_part(html, "html")],
        subtype="alternative",
    )


# --- bombs (generated at test time; never stored) -----------------------------------------------------------


def part_bomb(count: int = 50_000) -> bytes:
    """A flat multipart with count tiny parts (~1.8 MB for 50,000)."""
    head = (
        b"From: a@example.com\r\nSubject: bomb\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    )
    return head + b"--b\r\n\r\nx\r\n" * count + b"--b--\r\n"


def depth_bomb(depth: int = 2_000) -> bytes:
    """Multiparts nested depth deep, each with its own boundary."""
    out = [b"From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"]
    for i in range(depth):
        out.append(f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode())
    out.append(b"Content-Type: text/plain\r\n\r\nx\r\n")
    for i in reversed(range(depth)):
        out.append(f"--b{i}--\r\n".encode())
    return b"".join(out)


def message_depth_bomb(depth: int = 2_000) -> bytes:
    """message/rfc822 nested depth deep without a single boundary."""
    layer = b"From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n"
    return layer * depth + b"Subject: core\r\n\r\nx\r\n"


def header_bomb(length: int = 1_000_000) -> bytes:
    """One folded header of length bytes."""
    folded = "\r\n ".join(["(((((" * 10] * (length // 52))
    return f"From: a@example.com\r\nTo: {folded}\r\nSubject: h\r\n\r\nx\r\n".encode()


@dataclass(frozen=True)
class Case:
    """A corpus mail with what a reader should find in it."""

    name: str
    build: Callable[[], bytes]
    audio_parts: int
    caller_name: str | None
    number: str | None
    duration: float | None
    system: str | None


CASES: tuple[Case, ...] = (
    Case("asterisk", asterisk_mail, 1, "Alice Smith", "5551234567", 42.0, "asterisk"),
    Case("freepbx", freepbx_mail, 1, "Alice Smith", "+15551234567", 23.0, "freepbx"),
    Case("3cx", threecx_mail, 1, "Alice Smith", "+1 555 123 4567", 23.0, "3cx"),
    Case("teams", teams_mail, 1, "Alice Smith", "+1 555 123 4567", 23.0, "microsoft"),
    Case("google-voice", google_voice_mail, 0, None, "(555) 123-4567", None, "google-voice"),
    Case("cisco-unity", cisco_unity_mail, 1, "Alice Smith", "5551234567", None, "cisco-unity"),
    Case("ringcentral", ringcentral_mail, 1, "ALICE SMITH", "(650) 555-1234", 38.0, "ringcentral"),
    Case("vonage", vonage_mail, 1, None, "15551234567", 17.0, "vonage"),
    Case("carrier-de", lambda: carrier_mail("de"), 1, None, "+49 30 1234567", 42.0, None),
    Case("carrier-fr", lambda: carrier_mail("fr"), 1, None, "+33 1 23 45 67 89", 15.0, None),
    Case("carrier-es", lambda: carrier_mail("es"), 1, None, "+34 912 345 678", 65.0, None),
    Case("fritzbox", fritzbox_mail, 1, None, "0170 1234567", 9.0, "fritzbox"),
    Case("forwarded", forwarded_mail, 1, "Alice Smith", "5551234567", 42.0, "asterisk"),
    Case(
        "forwarded-base64", lambda: forwarded_mail(encode_inner=True), 1, "Alice Smith", "5551234567", 42.0, "asterisk"
    ),
    Case("two-voicemails", two_voicemails_mail, 2, "Alice Smith", "5551234567", 42.0, "asterisk"),
    Case("octet-stream", octet_stream_mail, 2, None, "+15551234567", 12.0, None),
)
"""The voicemail shapes, with expected findings; other test modules parametrize over these."""
