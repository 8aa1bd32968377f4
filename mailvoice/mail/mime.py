"""Parse untrusted mail within limits (size, depth, parts, headers, time), never crashing on bad encodings."""

from __future__ import annotations

import email.policy
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value, parsedate_to_datetime
from html.parser import HTMLParser
from typing import TypeVar

from mailvoice.errors import MailError, MimeLimitError
from mailvoice.mail.headers import (
    clean_header_text,
    decode_codec,
    lenient_b64decode,
    parse_addresses,
    strip_controls,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class MimeLimits:
    """Bounds that keep a hostile mail from costing more than a normal one."""

    max_bytes: int = 60 * 1024 * 1024
    """Size of the raw message."""
    max_depth: int = 20
    """Nesting of multiparts and attached messages."""
    max_parts: int = 500
    """MIME entities in the whole tree, containers included."""
    max_headers: int = 1000
    """Header fields in one header block."""
    max_header_bytes: int = 64 * 1024
    """One header field, folded lines included."""
    max_params: int = 40
    """Parameters (semicolons) in one Content-Type or Content-Disposition field: the stdlib's parameter
    parser is quadratic in them."""
    max_seconds: float = 5.0
    """Wall time for scanning, parsing and walking."""


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


def _limit(limits: MimeLimits, what: str, value: object, bound: object) -> MimeLimitError:
    """A limit error that names the limit, the value seen and the setting."""
    return MimeLimitError(f"message refused: {what} {value} exceeds the limit of {bound} "
                          f"(MimeLimits.{what}); "
                          "it is quarantined unparsed")


class _Clock:
    """Deadline shared by the pre-scan, the parser and the walk."""

    def __init__(self, limits: MimeLimits) -> None:
        self.limits = limits
        self.start = time.monotonic()

    def check(self) -> None:
        elapsed = time.monotonic() - self.start
        if elapsed > self.limits.max_seconds:
            raise _limit(self.limits, "max_seconds", f"{elapsed:.2f}", self.limits.max_seconds)


_MESSAGE_TYPES = (b"message/rfc822", b"message/global")
_LINE = re.compile(rb"([^\r\n]*)(\r\n|\r|\n|$)")
_EOL = re.compile(rb"[\r\n]")
_BOUNDARY = re.compile(rb'boundary\*?0?\*?[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))', re.IGNORECASE)
_CTYPE = re.compile(rb"^content-type[ \t]*:", re.IGNORECASE)
_COMMENT = re.compile(rb"\((?:[^()\\]|\\.)*\)")
_PARAM_FIELD = re.compile(rb"^content-(?:type|disposition)[ \t]*:", re.IGNORECASE)
_CTE = re.compile(rb"^content-transfer-encoding[ \t]*:[ \t]*([!-~]+)", re.IGNORECASE)


def _scan_headers(raw: bytes, pos: int, limits: MimeLimits) -> tuple[int, bytes, list[bytes], bytes]:
    """Check one header block; return (body start, content type, boundaries, transfer encoding)."""
    fields: list[bytearray] = []
    end = len(raw)
    while pos < end:
        match = _LINE.match(raw, pos)
        if match is None:  # pragma: no cover - the pattern matches any position
            break
        line, pos = match.group(1), match.end()
        if not line:
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            if len(fields) >= limits.max_headers:
                raise _limit(limits, "max_headers", f"> {limits.max_headers}", limits.max_headers)
            fields.append(bytearray(line))
        if len(fields[-1]) > limits.max_header_bytes:
            raise _limit(limits, "max_header_bytes", f"> {limits.max_header_bytes}", limits.max_header_bytes)
    ctype = cte = b""
    boundaries: list[bytes] = []
    for item in fields:
        if _PARAM_FIELD.match(item) and item.count(b";") > limits.max_params:
            raise _limit(limits, "max_params", item.count(b";"), limits.max_params)
        if m := _CTYPE.match(item):
            # Comments are legal anywhere in the field; the stdlib skips them, so must we.
            bare = bytes(item[m.end(0):])
            for _ in range(4):
                bare = _COMMENT.sub(b"", bare)
            ctype = re.sub(rb"\s+", b"", bare.split(b";", 1)[0]).lower()
            for source in (bytes(item), bare):
                for b in _BOUNDARY.finditer(source):
                    value = (b.group(1) or b.group(2) or b"").split(b"''", 1)[-1].rstrip()
                    if value and value not in boundaries:
                        boundaries.append(value)
        elif m := _CTE.match(item):
            cte = m.group(1).lower()
    return pos, ctype, boundaries, cte


class _Delimiters:
    """Lines starting with "--", found in one forward pass (a bare-CR mail must not make it quadratic)."""

    _PATTERNS = (b"\n--", b"\r--")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.cached = {pattern: -2 for pattern in self._PATTERNS}  # -2 unknown, -1 none left

    def after(self, pos: int) -> tuple[bytes, int] | None:
        """The next such line at or after pos: (the rest of the line, where it ends)."""
        raw = self.raw
        if pos == 0 and raw.startswith(b"--"):
            start = 2
        else:
            hits = []
            for pattern in self._PATTERNS:
                hit = self.cached[pattern]
                if hit == -2 or 0 <= hit < pos - 1:
                    hit = self.cached[pattern] = raw.find(pattern, max(pos - 1, 0))
                if hit >= 0:
                    hits.append(hit)
            if not hits:
                return None
            start = min(hits) + 3
        eol = _EOL.search(raw, start)
        end = eol.start() if eol else len(raw)
        return raw[start:end], end


def _prescan(raw: bytes, limits: MimeLimits, clock: _Clock, base_depth: int = 0) -> int:
    """Estimate depth and part count on the raw bytes, so a bomb never reaches the recursive parser."""
    delimiters = raw.count(b"\n--") + raw.count(b"\r--") + raw.startswith(b"--")
    # Every MIME part needs a line starting with "--": a hard bound whatever boundary syntax we missed.
    if delimiters > max(4 * limits.max_parts, 2000):
        raise _limit(limits, "max_parts", f"(~{delimiters} boundary lines)", limits.max_parts)
    delimiters_at = _Delimiters(raw)
    stack: list[tuple[bytes, int]] = []
    parts = 0
    pos, depth = 0, base_depth
    while True:
        # A header block: it may open a multipart (push its boundary) or an attached message (go deeper).
        while True:
            parts += 1
            if parts > limits.max_parts:
                raise _limit(limits, "max_parts", f"> {limits.max_parts}", limits.max_parts)
            if depth > limits.max_depth:
                raise _limit(limits, "max_depth", f"> {limits.max_depth}", limits.max_depth)
            pos, ctype, boundaries, cte = _scan_headers(raw, pos, limits)
            # Any declared boundary counts, multipart or not: over-counting is safe, missing one is not.
            stack.extend((boundary, depth) for boundary in boundaries)
            if ctype in _MESSAGE_TYPES and cte not in (b"base64", b"quoted-printable"):
                depth += 1
                continue
            break
        # The next delimiter line of any open multipart starts the next header block.
        while True:
            clock.check()
            found = delimiters_at.after(pos)
            if found is None:
                return parts
            line, pos = found
            for i in range(len(stack) - 1, -1, -1):
                boundary, level = stack[i]
                if not line.startswith(boundary):
                    continue
                rest = line[len(boundary):].rstrip(b" \t")
                if rest == b"--":
                    del stack[i:]
                    break
                if rest == b"":
                    del stack[i + 1:]
                    depth = level + 1
                    nl = _LINE.match(raw, pos)
                    pos = nl.end() if nl else pos
                    break
            else:
                continue
            if rest == b"":
                break


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


_BLOCK_TAGS = frozenset({"p", "div", "br", "tr", "li", "ul", "ol", "table", "blockquote", "section",
                         "article", "header", "footer", "pre", "hr", "dd", "dt", "h1", "h2", "h3", "h4", "h5",
                         "h6", "address"})
_DROP_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript", "iframe", "object",
                        "embed", "svg", "math", "audio", "video", "canvas", "select", "button"})
_VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                        "track", "wbr", "param"})
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|mso-hide\s*:\s*all"
                           r"|font-size\s*:\s*0+(?:px|pt|em|%)?\s*(?:;|$|!)|opacity\s*:\s*0+(?:\.0+)?\s*(?:;|$|!)",
                           re.IGNORECASE)


class _VisibleText(HTMLParser):
    """Collects the text a reader would see: no scripts, styles, head or hidden elements; fetches nothing."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skip_tag: str | None = None
        self.skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth += 1
            elif self.skip_tag == "head" and tag == "body":  # an unclosed <head> must not swallow the body
                self.skip_tag = None
            return
        hidden = tag in _DROP_TAGS or any(
            (k == "hidden") or (k == "aria-hidden" and (v or "").lower() == "true")
            or (k == "style" and v is not None and _HIDDEN_STYLE.search(v) is not None)
            for k, v in attrs)
        if hidden and tag not in _VOID_TAGS:
            self.skip_tag, self.skip_depth = tag, 1
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")
        elif tag in ("td", "th"):
            self.chunks.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if self.skip_depth <= 0:
                    self.skip_tag = None
            return
        if tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip_tag is None:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML body, paragraphs kept as blank lines."""
    parser = _VisibleText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient, but a crash here must not lose the mail
        log.debug("html.parser failed; keeping the text collected so far")
    lines = (" ".join(line.split()) for line in "".join(parser.chunks).splitlines())
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


@dataclass(slots=True)
class _Node:
    msg: Message
    path: str
    depth: int
    owner: str
    """Path of the message this node belongs to ("" for the outer mail)."""


def _content_type(msg: Message) -> str:
    return _safe(lambda: msg.get_content_type().lower(), "text/plain")


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
        lambda: collapse_rfc2231_value(view.get_param("name") or ""), None)
    filename = clean_header_text(raw_name, 255) if isinstance(raw_name, str) else None
    disposition = _safe(view.get_content_disposition, None)
    charset = _safe(view.get_content_charset, None)
    return MimePart(path=node.path, content_type=_content_type(msg), filename=filename or None,
                    disposition=disposition, charset=charset,
                    data=data, in_forward=bool(node.owner),
                    defects=defects)


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


def _parse_bytes(raw: bytes, limits: MimeLimits, clock: _Clock, base_depth: int) -> Message:
    _prescan(raw, limits, clock, base_depth)
    try:
        # compat32: the default policy's header registry recurses on nested comments and is slow on many
        # parameters; with compat32 every header stays raw and we decode the few we need ourselves.
        return BytesParser(policy=email.policy.compat32).parsebytes(raw)
    except RecursionError as exc:
        raise _limit(limits, "max_depth", "(recursion)", limits.max_depth) from exc
    except Exception as exc:
        raise MailError(f"message could not be parsed ({type(exc).__name__}); it is quarantined") from exc


def _walk(root: Message, limits: MimeLimits, clock: _Clock) -> tuple[list[tuple[str, MimePart]],
                                                                    list[tuple[str, Message]]]:
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
            raise _limit(limits, "max_parts", f"> {limits.max_parts}", limits.max_parts)
        if node.depth > limits.max_depth:
            raise _limit(limits, "max_depth", node.depth, limits.max_depth)
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
                stack.append(_Node(kids[i - 1], f"{node.path}.{i}" if node.path else str(i), node.depth + 1,
                                   node.owner))
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


def parse_message(raw: bytes, *, limits: MimeLimits = MimeLimits()) -> ParsedMail:
    """Parse one received mail; MimeLimitError names the limit a hostile or oversized mail exceeded."""
    if len(raw) > limits.max_bytes:
        raise _limit(limits, "max_bytes", len(raw), limits.max_bytes)
    clock = _Clock(limits)
    root = _parse_bytes(raw, limits, clock, 0)
    leaves, messages = _walk(root, limits, clock)
    by_owner: dict[str, list[MimePart]] = {}
    for owner, part in leaves:
        by_owner.setdefault(owner, []).append(part)
    forwarded = []
    for owner, msg in messages:
        senders = _addresses(msg, "From")
        forwarded.append(ForwardedMail(path=owner, subject=_header(msg, "Subject") or "",
                                       from_=senders[0] if senders else None,
                                       text=_best_text(by_owner.get(owner, []))))
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
    log.debug("parsed message: %d bytes, %d parts, %d attached messages",
              len(raw), len(leaves), len(messages))
    return parsed
