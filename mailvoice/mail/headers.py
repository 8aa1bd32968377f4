"""Header safety: untrusted text that reaches mail headers or IMAP commands is flattened and checked here."""

from __future__ import annotations

import base64
import binascii
import codecs
import email.errors
import email.message
import email.parser
import email.policy
import email.utils
import hashlib
import re
import secrets
import time
import unicodedata
from collections.abc import Iterable

from mailvoice.errors import ConfigError, MailError

# Cc: controls (CR, LF, NUL, NEL...), Cf: format (bidi overrides, zero-width), Zl/Zp: line and paragraph
# separators, Cs: lone surrogates from surrogateescape decoding. All of them break a header or hide text.
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?\s]*)\?=")
_SPACE_RUN = re.compile(r"\s+")
_MAX_DECODE_ROUNDS = 3
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
# RFC 3501 ATOM-CHAR: any CHAR except atom-specials ( ) { SP CTL % * " \ ]
_IMAP_ATOM = re.compile(r"^[!#$&\'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]{1,200}$")
_IMAP_MAX_LEN = 1000


def decode_codec(data: bytes, charset: str | None) -> str:
    """Decode bytes with a declared charset that may be unknown, wrong or hostile; never raises."""
    name = (charset or "utf-8").strip().strip('"').lower() or "utf-8"
    try:
        info = codecs.lookup(name)
        # codecs such as base64_codec or rot13 are transforms, not charsets.
        if not getattr(info, "_is_text_encoding", True):
            raise LookupError(name)
        return data.decode(info.name, errors="replace")
    except (LookupError, ValueError, TypeError, UnicodeError, MemoryError):
        return data.decode("utf-8", errors="replace")


def lenient_b64decode(data: bytes) -> bytes:
    """Base64 as broken mailers write it: stray characters skipped, a dangling last character dropped."""
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    if len(data) % 4 == 1:
        data = data[:-1]
    return base64.b64decode(data + b"=" * (-len(data) % 4))


def _decode_word(charset: str, encoding: str, text: str) -> str:
    """Decode one encoded word's payload leniently."""
    data = text.encode("ascii", "replace")
    try:
        raw = lenient_b64decode(data) if encoding in "bB" else binascii.a2b_qp(data.replace(b"_", b" "))
    except (binascii.Error, ValueError):
        return "\ufffd"
    return decode_codec(raw, charset.split("*", 1)[0])


def decode_rfc2047(value: str) -> str:
    """Decode RFC 2047 encoded words leniently (unknown charsets, bad base64) with replacement characters."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pos = 0
    after_word = False
    for match in _ENCODED_WORD.finditer(value):
        between = value[pos : match.start()]
        # Whitespace between two adjacent encoded words is not part of the text (RFC 2047 section 6.2).
        if not (after_word and not between.strip()):
            out.append(between)
        out.append(_decode_word(match.group(1), match.group(2), match.group(3)))
        pos = match.end()
        after_word = True
    out.append(value[pos:])
    return "".join(out)


def strip_controls(value: str) -> str:
    """Replace control, format and separator characters with spaces (they break headers or hide text)."""
    return "".join(" " if unicodedata.category(ch) in _DROP_CATEGORIES else ch for ch in value)


def clean_header_text(value: str | None, max_len: int = 200) -> str:
    """Flatten untrusted text for a header: decoded, no CR/LF/NUL or other controls, one capped line."""
    if not value:
        return ""
    text = unicodedata.normalize("NFC", str(value))
    # Decode until stable: a once-decoded value may hold another encoded word, which the header
    # registry would decode again when the value is set on a message.
    for _ in range(_MAX_DECODE_ROUNDS):
        if not _ENCODED_WORD.search(text):
            break
        text = strip_controls(decode_rfc2047(text))
    text = strip_controls(text)
    # Break any encoded word that is still there so it cannot be decoded later into a newline.
    text = text.replace("=?", "= ?")
    text = _SPACE_RUN.sub(" ", text).strip()
    if max_len > 0 and len(text) > max_len:
        text = text[: max(max_len - 1, 0)].rstrip() + "…"
    return text


# RFC 5322 msg-id, as we are willing to write it back: printable ASCII, no spaces, brackets or backslash.
_MSG_ID_TOKEN = re.compile(r"<[!-;=?-\[\]-~]{1,248}>")
_MSG_ID_MAX_LEN = 250
MAX_REFERENCES = 20
"""Message-IDs kept in a References header we write (the newest ones: RFC 5322 allows trimming the middle)."""


def clean_message_id(value: str | None) -> str | None:
    """One Message-ID token fit for In-Reply-To/References, or None: ASCII only, no controls, length-bounded.

    A token copied from a received mail may hold UTF-8 or undecodable 8-bit bytes (surrogate escapes), which make
    the stdlib encoder raise at as_bytes(); such a token is dropped, never repaired into a different identity.
    """
    if not value:
        return None
    token = value.strip()
    if len(token) > _MSG_ID_MAX_LEN or not _MSG_ID_TOKEN.fullmatch(token):
        return None
    return token


def clean_message_ids(values: Iterable[str], *, limit: int = MAX_REFERENCES) -> tuple[str, ...]:
    """The valid Message-ID tokens among values (each may hold several), in order, deduplicated, the last `limit`."""
    out: dict[str, None] = {}
    for value in values:
        for candidate in re.findall(r"<[^<>]*>", value or ""):
            token = clean_message_id(candidate)
            if token is not None:
                out.pop(token, None)
                out[token] = None
    tokens = tuple(out)
    return tokens[-limit:] if limit > 0 else ()


def is_safe_for_imap(value: str, *, folder: bool = False) -> bool:
    """True when an untrusted string may be sent inside an IMAP command (quoted) without injecting one."""
    if not isinstance(value, str) or not value or len(value) > _IMAP_MAX_LEN:
        return False
    for ch in value:
        code = ord(ch)
        if code < 0x20 or code == 0x7F or ch in '"\\':
            return False
        # Folder names travel as modified UTF-7 (the IMAP client encodes them); anything else must be ASCII.
        if code > 0x7E and (not folder or unicodedata.category(ch) in _DROP_CATEGORIES):
            return False
    return True


def safe_imap_atom(value: str) -> str:
    """Return value if it is a plain IMAP atom (keyword, flag); raise MailError naming it otherwise."""
    if isinstance(value, str) and _IMAP_ATOM.match(value):
        return value
    raise MailError(
        f"refusing {value!r} in an IMAP command: only an IMAP atom (ASCII letters, digits and "
        "!#$&'+,-./:;<=>?@[^_`|}~, no spaces, quotes or controls) is allowed there"
    )


def make_message_id(domain: str, *, seed: str | bytes | None = None) -> str:
    """A Message-ID under domain; the same seed gives the same id, so a resent message keeps its identity."""
    if not isinstance(domain, str) or not _HOSTNAME.match(domain):
        raise ConfigError(f"message id domain {domain!r} is not a host name: use letters, digits, '-' and '.'")
    if seed is None:
        token = f"{int(time.time())}.{secrets.token_hex(12)}"
    else:
        raw = seed.encode("utf-8", "surrogatepass") if isinstance(seed, str) else seed
        token = hashlib.sha256(b"mailvoice-message-id\0" + raw).hexdigest()[:40]
    return f"<mv.{token}@{domain.lower()}>"


_PROBE_SUBJECT = "=?utf-8?q?probe=0D=0ABcc:_injected@example.invalid?="


def _generator_refuses_newlines() -> bool:
    """Flatten a header whose decoded value holds CRLF; safe if refused or written without a new header."""
    msg = email.message.EmailMessage(policy=email.policy.default)
    msg["To"] = "owner@example.invalid"
    try:
        msg["Subject"] = _PROBE_SUBJECT
    except ValueError:
        return True
    try:
        flat = msg.as_bytes()
    except (email.errors.MessageError, ValueError):
        return True
    back = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(flat, headersonly=True)
    return [k.lower() for k in back] == ["to", "subject"]


def check_interpreter_email_security() -> list[str]:
    """Probe the running interpreter's email module for known CVEs; the problems, for `mailvoice doctor`."""
    problems: list[str] = []
    if not getattr(email.utils, "supports_strict_parsing", False):
        problems.append(
            "email.utils has no strict address parsing (CVE-2023-27043): mailvoice falls back to its own "
            "hardened address check; upgrade Python to a release with the fix (3.11.10+, 3.12.6+, 3.13+)"
        )
    try:
        safe = _generator_refuses_newlines()
    except Exception as exc:  # a probe must report, never stop start-up
        problems.append(
            f"could not verify generated mail headers ({type(exc).__name__}): "
            "check the Python installation's email package"
        )
    else:
        if not safe:
            problems.append(
                "the email generator writes header values containing newlines (CVE-2024-6923): mailvoice "
                "cleans every header it writes with clean_header_text; "
                "upgrade Python (3.11.10+, 3.12.5+, 3.13+)"
            )
    return problems


_ADDR_SPEC = re.compile(r'^[^\s@<>()\[\]\\,;:"]{1,64}@[^\s@<>()\[\]\\,;:"]{1,255}$')
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _scan_structure(value: str) -> int | None:
    """Count top-level address items; None when quotes, comments or angle brackets are unbalanced."""
    quoted = False
    comment = 0
    angle = 0
    escaped = False
    items = 0
    current = False
    for ch in value:
        if escaped:
            escaped = False
            current = True
            continue
        if ch == "\\" and (quoted or comment):
            escaped = True
        elif ch == '"' and not comment:
            quoted = not quoted
        elif quoted:
            pass
        elif ch == "(":
            comment += 1
        elif ch == ")":
            comment -= 1
            if comment < 0:
                return None
        elif comment:
            pass
        elif ch == "<":
            angle += 1
            if angle > 1:
                return None
        elif ch == ">":
            angle -= 1
            if angle < 0:
                return None
        elif ch == "," and not angle:
            items += current
            current = False
            continue
        if not ch.isspace():
            current = True
    if quoted or comment or angle or escaped:
        return None
    return items + current


def _hardened_getaddresses(values: list[str]) -> list[tuple[str, str]]:
    """getaddresses for interpreters without strict mode: a field whose parse is ambiguous yields nothing."""
    out: list[tuple[str, str]] = []
    for value in values:
        expected = _scan_structure(value)
        if expected is None:
            continue
        pairs = [(n, a) for n, a in email.utils.getaddresses([value]) if n or a]
        if len(pairs) != expected or any(a.count("@") != 1 or "[" in a for _, a in pairs):
            continue
        out.extend(pairs)
    return out


def parse_addresses(values: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs from raw header values, refusing ambiguous input (CVE-2023-27043)."""
    fields: list[str] = []
    for value in values:
        # 8-bit header bytes arrive as surrogate escapes; folded lines are joined first.
        text = _FOLD.sub("", value.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        if any(ord(ch) < 0x20 and ch != "\t" for ch in text):
            continue
        fields.append(text)
    if getattr(email.utils, "supports_strict_parsing", False):
        pairs = email.utils.getaddresses(fields, strict=True)
    else:
        pairs = _hardened_getaddresses(fields)
    result: list[tuple[str, str]] = []
    for name, addr in pairs:
        if _ADDR_SPEC.match(addr):
            result.append((clean_header_text(name, 120), addr))
    return result
