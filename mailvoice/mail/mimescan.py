"""The cheap pre-scan of a raw mail: refuses bombs (depth, parts, header size, parameters, time) in
milliseconds, before the stdlib parser, which can recurse or go quadratic on them, ever sees the bytes."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from mailvoice.errors import MimeLimitError


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


def limit_error(limits: MimeLimits, what: str, value: object, bound: object) -> MimeLimitError:
    """A limit error that names the limit, the value seen and the setting."""
    return MimeLimitError(
        f"message refused: {what} {value} exceeds the limit of {bound} (MimeLimits.{what}); it is quarantined unparsed"
    )


class Clock:
    """Deadline shared by the pre-scan, the parser and the walk."""

    def __init__(self, limits: MimeLimits) -> None:
        self.limits = limits
        self.start = time.monotonic()

    def check(self) -> None:
        elapsed = time.monotonic() - self.start
        if elapsed > self.limits.max_seconds:
            raise limit_error(self.limits, "max_seconds", f"{elapsed:.2f}", self.limits.max_seconds)


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
                raise limit_error(limits, "max_headers", f"> {limits.max_headers}", limits.max_headers)
            fields.append(bytearray(line))
        if len(fields[-1]) > limits.max_header_bytes:
            raise limit_error(limits, "max_header_bytes", f"> {limits.max_header_bytes}", limits.max_header_bytes)
    ctype = cte = b""
    boundaries: list[bytes] = []
    for item in fields:
        if _PARAM_FIELD.match(item) and item.count(b";") > limits.max_params:
            raise limit_error(limits, "max_params", item.count(b";"), limits.max_params)
        if m := _CTYPE.match(item):
            # Comments are legal anywhere in the field; the stdlib skips them, so must we.
            bare = bytes(item[m.end(0) :])
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


def prescan(raw: bytes, limits: MimeLimits, clock: Clock, base_depth: int = 0) -> int:
    """Estimate depth and part count on the raw bytes, so a bomb never reaches the recursive parser."""
    delimiters = raw.count(b"\n--") + raw.count(b"\r--") + raw.startswith(b"--")
    # Every MIME part needs a line starting with "--": a hard bound whatever boundary syntax we missed.
    if delimiters > max(4 * limits.max_parts, 2000):
        raise limit_error(limits, "max_parts", f"(~{delimiters} boundary lines)", limits.max_parts)
    delimiters_at = _Delimiters(raw)
    stack: list[tuple[bytes, int]] = []
    parts = 0
    pos, depth = 0, base_depth
    while True:
        # A header block: it may open a multipart (push its boundary) or an attached message (go deeper).
        while True:
            parts += 1
            if parts > limits.max_parts:
                raise limit_error(limits, "max_parts", f"> {limits.max_parts}", limits.max_parts)
            if depth > limits.max_depth:
                raise limit_error(limits, "max_depth", f"> {limits.max_depth}", limits.max_depth)
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
                rest = line[len(boundary) :].rstrip(b" \t")
                if rest == b"--":
                    del stack[i:]
                    break
                if rest == b"":
                    del stack[i + 1 :]
                    depth = level + 1
                    nl = _LINE.match(raw, pos)
                    pos = nl.end() if nl else pos
                    break
            else:
                continue
            if rest == b"":
                break
