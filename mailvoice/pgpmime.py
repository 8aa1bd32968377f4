"""PGP/MIME (RFC 3156) for the mail mailvoice sends, with protected headers (RFC 9788, Thunderbird's convention).

The whole generated mail (headers, text, HTML, audio) becomes the encrypted payload; its root Content-Type carries
protected-headers="v1" and hp="cipher", so a client shows the real subject from inside. Outside only what routing and
threading need: From, To, Cc, Date, Message-ID, In-Reply-To, References, Auto-Submitted, X-Mailvoice and a neutral
Subject. With [delivery] pgp_sign_key the payload is first wrapped in multipart/signed. Plaintext stays in memory:
pysequoia encrypts buffers, no GnuPG home, no temp file.

Policy ([delivery] pgp): "off" sends what it is given; "when-key" encrypts when every recipient has a usable key and
sends plaintext otherwise; "required" encrypts or raises PgpRequiredError (the outbox holds the mail and retries).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import secrets
import stat
from collections.abc import Sequence
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailvoice.errors import ConfigError, MailvoiceError, PgpKeyError, PgpRequiredError
from mailvoice.pgpkeys import NO_KEY, PgpKey, any_keys, load_keys, lookup

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.store.records import NewOutgoing

log = logging.getLogger(__name__)

OUTER_HEADERS = (
    "From",
    "To",
    "Cc",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "X-Mailvoice",
)
NEUTRAL_SUBJECTS = {"transcript": "Voicemail"}
NEUTRAL_SUBJECT = "..."
NOTICE_HEADER = "X-Mailvoice-Notice"
"""Marks the one content-free notice that a key is missing: the only mail "required" lets out unencrypted."""


def is_encrypted(raw: bytes) -> bool:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].lower()
    return b"multipart/encrypted" in head and b"application/pgp-encrypted" in head


def _signer(path: Path) -> Any:
    import pysequoia

    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"delivery.pgp_sign_key {path} cannot be read ({exc.strerror})") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"delivery.pgp_sign_key {path} is readable by others: run `chmod 600 {path}`")
    try:
        return pysequoia.Tsk.from_bytes(data).signer()
    except Exception as exc:  # pysequoia raises bare exceptions from Rust
        first = (str(exc).strip().splitlines() or ["unreadable"])[0][:200]
        raise ConfigError(f"delivery.pgp_sign_key {path} is not an unprotected OpenPGP secret key ({first})") from exc


def _signed(payload: bytes, signer: Any) -> bytes:
    """RFC 3156 §5: multipart/signed over the exact payload bytes (canonical CRLF), detached signature."""
    import pysequoia

    try:
        sig = pysequoia.sign(signer, payload, mode=pysequoia.SignatureMode.DETACHED)
    except Exception as exc:  # pysequoia raises bare exceptions from Rust
        first = (str(exc).strip().splitlines() or ["unknown error"])[0][:200]
        raise PgpKeyError(f"signing with delivery.pgp_sign_key failed: {first}") from exc
    algo = str(pysequoia.Sig.from_bytes(sig).hash_algorithm).rpartition(".")[2].lower()
    boundary = f"=-sig-{secrets.token_hex(12)}"
    head = (
        f'Content-Type: multipart/signed; micalg="pgp-{algo}"; protocol="application/pgp-signature";\r\n'
        f' boundary="{boundary}"\r\n\r\n'
        "This is an OpenPGP/MIME signed message (RFC 3156).\r\n"
    )
    sig_part = (
        'Content-Type: application/pgp-signature; name="signature.asc"\r\n'
        "Content-Description: OpenPGP digital signature\r\n"
        'Content-Disposition: attachment; filename="signature.asc"\r\n\r\n'
    )
    sig_text = sig.decode("ascii").replace("\r\n", "\n").replace("\n", "\r\n")
    return (
        head.encode()
        + f"--{boundary}\r\n".encode()
        + payload
        + f"\r\n--{boundary}\r\n{sig_part}".encode()
        + sig_text.encode("ascii")
        + f"\r\n--{boundary}--\r\n".encode()
    )


def _header_bytes(msg: EmailMessage) -> bytes:
    """The header section alone, folded for SMTP, with its closing blank line (the body is written by hand)."""
    return b"".join(SMTP.fold_binary(name, value) for name, value in msg.items()) + b"\r\n"


def _inner(raw: bytes) -> tuple[EmailMessage, bytes, str]:
    """(the mail's headers, the payload to encrypt, the neutral outer subject); the body is copied as it is, so
    the audio is never decoded and re-encoded."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    inner = BytesHeaderParser(policy=SMTP).parsebytes(head + b"\r\n\r\n")
    neutral = NEUTRAL_SUBJECTS.get(str(inner.get("X-Mailvoice", "")).strip(), NEUTRAL_SUBJECT)
    if "Content-Type" not in inner:
        inner["Content-Type"] = "text/plain; charset=utf-8"
    inner.set_param("protected-headers", "v1")
    inner.set_param("hp", "cipher")
    for name in (*OUTER_HEADERS, "Subject"):
        if name == "Subject":
            inner["HP-Outer"] = f"Subject: {neutral}"
        elif (value := inner.get(name)) is not None:
            inner["HP-Outer"] = f"{name}: {value}"
    return inner, _header_bytes(inner) + body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), neutral


def encrypt_mail(raw: bytes, keys: Sequence[PgpKey], signer: Any = None) -> bytes:
    """The PGP/MIME form of a complete RFC 5322 mail, encrypted to every key (and signed when a signer is given)."""
    import pysequoia

    if not keys:
        raise ValueError("encrypt_mail needs at least one key")
    inner, payload, neutral = _inner(raw)
    if signer is not None:
        payload = _signed(payload, signer)
    try:
        armored = pysequoia.encrypt(payload, recipients=[k.cert for k in keys], armor=True)
    except Exception as exc:  # pysequoia raises bare exceptions from Rust
        first = (str(exc).strip().splitlines() or ["unknown error"])[0][:200]
        fprs = ", ".join(k.fingerprint.upper() for k in keys)
        raise PgpKeyError(f"OpenPGP encryption to {fprs} failed: {first}") from exc

    outer = EmailMessage(policy=SMTP)
    for name in OUTER_HEADERS:
        if (value := inner.get(name)) is not None:
            outer[name] = value
    outer["Subject"] = neutral
    outer["MIME-Version"] = "1.0"
    boundary = f"=-enc-{secrets.token_hex(12)}"
    outer["Content-Type"] = f'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="{boundary}"'
    # Assembled by hand: the armored block is ASCII lines already, and the generator would only copy it slowly.
    text = armored.decode("ascii").replace("\r\n", "\n").replace("\n", "\r\n")
    body = (
        "This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n"
        f"--{boundary}\r\n"
        "Content-Type: application/pgp-encrypted\r\n"
        "Content-Description: PGP/MIME version identification\r\n\r\n"
        "Version: 1\r\n\r\n"
        f"--{boundary}\r\n"
        'Content-Type: application/octet-stream; name="encrypted.asc"\r\n'
        "Content-Description: OpenPGP encrypted message\r\n"
        'Content-Disposition: inline; filename="encrypted.asc"\r\n\r\n'
        f"{text.rstrip()}\r\n\r\n"
        f"--{boundary}--\r\n"
    )
    return _header_bytes(outer) + body.encode("ascii")


def protect(settings: Settings, raw: bytes, recipients: Sequence[str], now: datetime.datetime | None = None) -> bytes:
    """Apply the [delivery] pgp policy to one outgoing mail: its bytes to send, or PgpRequiredError."""
    policy = settings.delivery.pgp
    if policy == "off" or is_encrypted(raw):
        return raw
    if policy == "when-key" and not any_keys(settings):
        return raw
    found = lookup(load_keys(settings), recipients, now)
    if found.missing:
        if policy == "required" and not _is_key_notice(raw):
            raise PgpRequiredError(found.missing)
        for _, why in found.missing:
            if why != NO_KEY:  # a key is there but unusable: say which and why (the reason names no address)
                log.warning("pgp: %s; mail sent unencrypted (pgp = %s)", why, policy)
        log.info("pgp: %d recipient(s) without a usable key; sent unencrypted (pgp = %s)", len(found.missing), policy)
        return raw
    sign_key = settings.delivery.pgp_sign_key
    out = encrypt_mail(raw, found.keys, _signer(sign_key) if sign_key is not None else None)
    log.info("pgp: encrypted to %d key(s)%s", len(found.keys), " and signed" if sign_key else "")
    return out


def protect_outgoing(settings: Settings, out: NewOutgoing) -> NewOutgoing:
    """Encrypt a mail before it enters the sealed outbox; one that cannot be encrypted yet is left for the
    outbox, which applies the policy again at send time (a key imported meanwhile is used then)."""
    try:
        raw = protect(settings, out.raw, out.envelope.recipients)
    except PgpRequiredError:
        return out
    except MailvoiceError as exc:  # a bad signing key, say: never lose the transcript over it
        log.warning("pgp: not encrypted yet (%s); the outbox tries again when sending", exc)
        return out
    return out if raw is out.raw else dataclasses.replace(out, raw=raw)


def _is_key_notice(raw: bytes) -> bool:
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    return f"\r\n{NOTICE_HEADER.lower()}: pgp-key".encode() in head


def key_notice_text(missing: Sequence[tuple[str, str]]) -> str:
    """The content-free notice: which address has no usable key and how to give mailvoice one."""
    lines = "".join(f"  {address}: {why}\n" for address, why in missing)
    return (
        'mailvoice holds mail for you that it may only send encrypted ([delivery] pgp = "required"), and has no\n'
        f"usable OpenPGP key for:\n\n{lines}\n"
        "Give mailvoice your public key:\n\n"
        "  gpg --export --armor you@example.org > mykey.asc\n"
        "  mailvoice keys pgp import mykey.asc\n\n"
        "The held mail then goes out encrypted at its next retry (within the hour, for up to 3 days). Meanwhile the\n"
        "transcripts stay readable in the encrypted store: `mailvoice messages`. This notice holds no message\n"
        "content and is sent once per address.\n"
    )


def not_yet_told(settings: Settings, missing: Sequence[tuple[str, str]]) -> set[str]:
    """Hashes of the addresses the owner was not told about yet (<data_dir>/pgp-notified holds only hashes)."""
    import hashlib

    marker = settings.general.data_dir / "pgp-notified"
    try:
        seen = set(marker.read_text(encoding="ascii").split())
    except FileNotFoundError:
        seen = set()
    return {hashlib.sha256(a.encode()).hexdigest() for a, _ in missing} - seen


def mark_told(settings: Settings, hashes: set[str]) -> None:
    """Called after the notice is queued: a crash in between tells twice, never not at all."""
    marker = settings.general.data_dir / "pgp-notified"
    marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="ascii") as fh:
        fh.write("".join(f"{h}\n" for h in sorted(hashes)))


def forget_notices(settings: Settings, addresses: Sequence[str]) -> None:
    """A key for these addresses arrived: a later problem with them is told again."""
    import hashlib

    marker = settings.general.data_dir / "pgp-notified"
    try:
        seen = marker.read_text(encoding="ascii").split()
    except FileNotFoundError:
        return
    drop = {hashlib.sha256(a.lower().encode()).hexdigest() for a in addresses}
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write("".join(f"{h}\n" for h in seen if h not in drop))
