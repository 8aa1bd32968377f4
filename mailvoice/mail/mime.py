"""Parse untrusted mail within limits (size, depth, parts, headers, time), never crashing on bad encodings."""

from __future__ import annotations

import email.policy
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value, parsedate_to_datetime
from typing import TypeVar

from mailvoice.errors import MailError
from mailvoice.mail.headers import (
    clean_header_text,
    decode_codec,
    lenient_b64decode,
    parse_addresses,
    strip_controls,
)
from mailvoice.mail.htmltext import html_to_text
from mailvoice.mail.mimescan import Clock, MimeLimits, limit_error, prescan

log = logging.getLogger(__name__)
_T = TypeVar("_T")
__all__ = [
    "Address",
    "ForwardedMail",
    "MimeLimits",
    "MimePart",
    "ParsedMail",
    "html_to_text",
    "normalize_message_id",
    "parse_message",
]


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox from an address header."""

    name: str
    """Display name, decoded and cleaned (may be empty)."""
    address: str
    """addr-spec, as given."""


@dataclass(frozen=True, slots=True)
class MimePart:
    """One leaf of the MIME tree with its transfer encoding removed."""

    path: str
    """Position in the tree: "" for a single-part mail, "2.1" for the first child of the second part."""
    content_type: str
    """Lower-case maintype/subtype (text/plain when missing or malformed)."""
    filename: str | None
    """Declared filename, decoded but NOT sanitised: never use it as a path."""
    disposition: str | None
    """"attachment", "inline" or None."""
    charset: str | None
    data: bytes = field(repr=False)
    """Payload bytes after base64 / quoted-printable decoding."""
    in_forward: bool = False
    """Inside an attached message/rfc822."""
    defects: tuple[str, ...] = ()
    """Names of the parser defects seen on this part (bad base64, missing boundary...)."""

    @property
    def text(self) -> str:
        """The payload decoded with its declared charset, replacement characters where that fails."""
        return decode_codec(self.data, self.charset)


@dataclass(frozen=True, slots=True)
class ForwardedMail:
    """Headline of a message attached inside another one (a forwarded voicemail)."""

    path: str
    subject: str
    from_: Address | None
    text: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ParsedMail:
    """What the pipeline needs from one received mail."""

    message_id: str | None
    """Message-ID as given (control characters removed), for threading replies."""
    message_id_normalized: str | None
    """"<local@domain>" with the domain lower-cased, for identity and deduplication."""
    subject: str
    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    date: datetime | None
    return_path: str | None
    auto_submitted: str | None
    precedence: str | None
    list_id: str | None
    mailer: str | None
    """X-Mailer or User-Agent, a hint at the phone system that sent it."""
    in_reply_to: str | None
    references: tuple[str, ...]
    text: str = field(repr=False)
    """Best text body: the first inline text/plain part, else the visible text of the HTML part."""
    parts: tuple[MimePart, ...] = field(repr=False)
    forwarded: tuple[ForwardedMail, ...] = ()
    size: int = 0

    @property
    def null_sender(self) -> bool:
        """Return-Path <> (bounces, auto-replies): never send mail to such a sender."""
        return self.return_path is not None and self.return_path.strip(" <>") == ""

    @property
    def is_automated(self) -> bool:
        """Auto-submitted, bulk or list mail: never answered automatically (RFC 3834)."""
        auto = (self.auto_submitted or "no").split(";", 1)[0].strip().lower() != "no"
        bulk = (self.precedence or "").strip().lower() in {"bulk", "junk", "list"}
        return auto or bulk or self.list_id is not None or self.null_sender


def _safe(call: Callable[[], _T], default: _T) -> _T:
    """Run a stdlib accessor that may raise on malformed input; a default instead of a crash."""
    try:
        return call()
    except Exception:  # the email package raises many types on junk; all mean "unusable value"
        return default


def _raw_header(msg: Message, name: str) -> list[str]:
    """All raw values of a header (undecoded, surrogate-escaped 8-bit)."""
    low = name.lower()
    return [str(v) for k, v in msg.raw_items() if k.lower() == low]


def _unescape(value: str) -> str:
    """Raw 8-bit header bytes (surrogate-escaped by the parser) read as UTF-8, replacement characters if not."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        return value.encode("utf-8", "replace").decode("utf-8", "replace")


def _header(msg: Message, name: str, max_len: int = 998, *, decode: bool = True) -> str | None:
    """One header value on a single line, from the raw bytes (the stdlib's header parsers can be made slow)."""
    raws = _raw_header(msg, name)
    if not raws:
        return None
    text = _unescape(raws[0])
    if decode:
        return clean_header_text(text, max_len)
    return " ".join(strip_controls(text).split())[:max_len]


def _addresses(msg: Message, name: str) -> tuple[Address, ...]:
    return tuple(Address(n, a) for n, a in parse_addresses(_raw_header(msg, name)))


_MSGID = re.compile(r"<([^<>\s]{1,900})>")


def normalize_message_id(value: str | None) -> str | None:
    """<local@domain> with the domain lower-cased; None when absent or unusable."""
    if not value:
        return None
    match = _MSGID.search(value)
    token = match.group(1) if match else value.strip()
    if not token or any(ch.isspace() or ord(ch) < 0x21 or ch in "<>" for ch in token) or len(token) > 900:
        return None
    local, at, domain = token.rpartition("@")
    return f"<{local}@{domain.lower()}>" if at else f"<{token}>"


@dataclass(slots=True)
class _Node:
    msg: Message
    path: str
    depth: int
    owner: str
    """Path of the message this node belongs to ("" for the outer mail)."""


_CTYPE = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")
"""type/subtype as RFC 2045 tokens: what stays of a Content-Type value (a bare CR, a quote...) ends there."""


def _content_type(msg: Message) -> str:
    value = _safe(lambda: msg.get_content_type().lower(), "text/plain")
    token = _CTYPE.match(value)
    return token.group(0) if token else "text/plain"


def _payload(msg: Message) -> tuple[bytes, tuple[str, ...]]:
    """Transfer-decoded payload and the defects decoding found; base64 the stdlib gave up on is decoded here."""
    data: object = _safe(lambda: msg.get_payload(decode=True), None)
    # Decoding appends its defects to the part, so read them afterwards.
    defects = tuple(sorted({type(d).__name__ for d in getattr(msg, "defects", ())}))
    if "InvalidBase64LengthDefect" in defects:
        text = _safe(lambda: msg.get_payload(decode=False), None)
        if isinstance(text, str):
            data = _safe(lambda: lenient_b64decode(text.encode("ascii", "ignore")), data)
    return (data if isinstance(data, bytes) else b""), defects


def _param_view(msg: Message) -> Message:
    """The part's parameter headers with 8-bit bytes read as UTF-8 (compat32 would turn them into U+FFFD)."""
    view = Message()
    for key in ("Content-Type", "Content-Disposition"):
        for value in _raw_header(msg, key)[:1]:
            view[key] = _unescape(value)
    return view


def _leaf(node: _Node) -> MimePart:
    msg = node.msg
    data, defects = _payload(msg)
    view = _param_view(msg)
    raw_name = _safe(view.get_filename, None) or _safe(
        lambda: collapse_rfc2231_value(view.get_param("name") or ""), None
    )
    filename = clean_header_text(raw_name, 255) if isinstance(raw_name, str) else None
    disposition = _safe(view.get_content_disposition, None)
    charset = _safe(view.get_content_charset, None)
    return MimePart(
        path=node.path,
        content_type=_content_type(msg),
        filename=filename or None,
        disposition=disposition,
        charset=charset,
        data=data,
        in_forward=bool(node.owner),
        defects=defects,
    )


def _encoded_inner(msg: Message) -> bytes | None:
    """The bytes of a base64/QP-encoded message/rfc822 (not allowed by RFC 2046, but clients send it)."""
    cte = (_header(msg, "Content-Transfer-Encoding") or "").lower()
    payload = _safe(msg.get_payload, None)
    if cte not in ("base64", "quoted-printable") or not isinstance(payload, list) or len(payload) != 1:
        return None
    inner = payload[0]
    if not isinstance(inner, Message) or list(inner.keys()):
        return None
    body = _safe(inner.get_payload, None)
    if not isinstance(body, str):
        return None
    carrier = Message()
    carrier["Content-Transfer-Encoding"] = cte
    carrier.set_payload(body)
    data = _safe(lambda: carrier.get_payload(decode=True), None)
    return data if isinstance(data, bytes) else None


def _parse_bytes(raw: bytes, limits: MimeLimits, clock: Clock, base_depth: int) -> Message:
    prescan(raw, limits, clock, base_depth)
    try:
        # compat32: the default policy's header registry recurses on nested comments and is slow on many
        # parameters; with compat32 every header stays raw and we decode the few we need ourselves.
        return BytesParser(policy=email.policy.compat32).parsebytes(raw)
    except RecursionError as exc:
        raise limit_error(limits, "max_depth", "(recursion)", limits.max_depth) from exc
    except Exception as exc:
        raise MailError(f"message could not be parsed ({type(exc).__name__}); it is quarantined") from exc


def _walk(
    root: Message, limits: MimeLimits, clock: Clock
) -> tuple[list[tuple[str, MimePart]], list[tuple[str, Message]]]:
    """Iterative walk (no recursion) collecting leaves with their owning message, and attached messages."""
    stack = [_Node(root, "", 0, "")]
    leaves: list[tuple[str, MimePart]] = []
    messages: list[tuple[str, Message]] = []
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        clock.check()
        if seen > limits.max_parts:
            raise limit_error(limits, "max_parts", f"> {limits.max_parts}", limits.max_parts)
        if node.depth > limits.max_depth:
            raise limit_error(limits, "max_depth", node.depth, limits.max_depth)
        ctype = _content_type(node.msg)
        payload = _safe(node.msg.get_payload, None)
        if ctype in ("message/rfc822", "message/global"):
            encoded = _encoded_inner(node.msg)
            if encoded is not None:
                children: list[Message] = [_parse_bytes(encoded, limits, clock, node.depth + 1)]
            else:
                listed = payload if isinstance(payload, list) else []
                children = [m for m in listed if isinstance(m, Message)][:1]
            owner = node.path or "1"
            for child in children:
                messages.append((owner, child))
                stack.append(_Node(child, node.path, node.depth + 1, owner))
        elif isinstance(payload, list):
            kids = [m for m in payload if isinstance(m, Message)]
            for i in range(len(kids), 0, -1):
                stack.append(
                    _Node(kids[i - 1], f"{node.path}.{i}" if node.path else str(i), node.depth + 1, node.owner)
                )
        else:
            leaves.append((node.owner, _leaf(node)))
    return leaves, messages


def _best_text(parts: list[MimePart]) -> str:
    """The first inline text/plain body, else the visible text of the first inline HTML body."""
    body = [p for p in parts if p.disposition != "attachment" and p.filename is None]
    for part in body:
        if part.content_type == "text/plain":
            return part.text.replace("\r\n", "\n").strip()
    for part in body:
        if part.content_type == "text/html":
            return html_to_text(part.text)
    return ""


def _first_id(value: str | None) -> str | None:
    match = _MSGID.search(value or "")
    return f"<{match.group(1)}>" if match else None


def _date(msg: Message) -> datetime | None:
    value = _header(msg, "Date")
    return _safe(lambda: parsedate_to_datetime(value), None) if value else None


DEFAULT_LIMITS = MimeLimits()


def parse_message(raw: bytes, *, limits: MimeLimits = DEFAULT_LIMITS) -> ParsedMail:
    """Parse one received mail; MimeLimitError names the limit a hostile or oversized mail exceeded."""
    if len(raw) > limits.max_bytes:
        raise limit_error(limits, "max_bytes", len(raw), limits.max_bytes)
    clock = Clock(limits)
    root = _parse_bytes(raw, limits, clock, 0)
    leaves, messages = _walk(root, limits, clock)
    by_owner: dict[str, list[MimePart]] = {}
    for owner, part in leaves:
        by_owner.setdefault(owner, []).append(part)
    forwarded = []
    for owner, msg in messages:
        senders = _addresses(msg, "From")
        forwarded.append(
            ForwardedMail(
                path=owner,
                subject=_header(msg, "Subject") or "",
                from_=senders[0] if senders else None,
                text=_best_text(by_owner.get(owner, [])),
            )
        )
    message_id = _header(root, "Message-ID", decode=False)
    senders = _addresses(root, "From")
    refs = " ".join(_raw_header(root, "References"))
    parsed = ParsedMail(
        message_id=message_id,
        message_id_normalized=normalize_message_id(message_id),
        subject=_header(root, "Subject") or "",
        from_=senders[0] if senders else None,
        to=_addresses(root, "To"),
        cc=_addresses(root, "Cc"),
        date=_date(root),
        return_path=_header(root, "Return-Path", decode=False),
        auto_submitted=_header(root, "Auto-Submitted"),
        precedence=_header(root, "Precedence"),
        list_id=_header(root, "List-Id"),
        mailer=_header(root, "X-Mailer") or _header(root, "User-Agent"),
        in_reply_to=_first_id(_header(root, "In-Reply-To", decode=False)),
        references=tuple(f"<{m}>" for m in _MSGID.findall(refs)[:100]),
        text=_best_text(by_owner.get("", [])),
        parts=tuple(part for _, part in leaves),
        forwarded=tuple(forwarded),
        size=len(raw),
    )
    clock.check()
    log.debug("parsed message: %d bytes, %d parts, %d attached messages", len(raw), len(leaves), len(messages))
    return parsed
