"""Who may open the dictation socket, and how much they may send: token, Origin allowlist, size and rate limits."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

TOKEN_PROTOCOL_PREFIX = "token."  # noqa: S105 (a prefix, not a secret)
"""The browser sends the token as a WebSocket subprotocol ("token.<token>"): never in the URL, so never in logs."""
APP_PROTOCOL = "mailvoice.v1"
_ANY = ("0.0.0.0", "::")  # noqa: S104 (recognised, not bound here)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one socket may do before it is closed."""

    max_frame_bytes: int = 32_000
    """One binary frame: 1 s of 16 kHz 16-bit mono."""
    max_text_bytes: int = 256_000
    """One JSON message (the text box travels in it)."""
    max_rate: float = 1.5
    """Audio may arrive at most this many times faster than real time (over a few seconds)."""
    burst_s: float = 3.0
    """Seconds of audio that may arrive at once (network jitter)."""
    idle_timeout_s: float = 120.0
    """No message at all for this long closes the socket."""
    max_session_s: float = 3600.0
    text_per_s: float = 20.0
    """JSON messages per second (the page sends one per keystroke in the text box)."""
    text_burst: float = 60.0
    control_per_s: float = 0.5
    """start/stop/send/save_draft per second: each start builds a recognizer, each send queues a mail."""
    control_burst: float = 6.0


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_from_protocols(protocols: Iterable[str]) -> str:
    for p in protocols:
        if p.startswith(TOKEN_PROTOCOL_PREFIX):
            return p[len(TOKEN_PROTOCOL_PREFIX) :]
    return ""


def token_ok(given: str, expected: str) -> bool:
    """Constant-time comparison; an empty token never matches."""
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def normalise_origin(origin: str) -> str:
    """scheme://host[:port] in lower case, default ports dropped; '' for anything else."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return ""
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def allowed_origins(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The page's own origins (as served) plus configured ones (the HTTPS reverse proxy's)."""
    local = host in ("127.0.0.1", "localhost", *_ANY)
    hosts = {host} | ({"127.0.0.1", "localhost"} if local else set())
    own = {normalise_origin(f"http://{h}:{port}") for h in hosts if h not in _ANY}
    return frozenset(o for o in (*own, *(normalise_origin(e) for e in extra)) if o)


class Bucket:
    """Token bucket: rate per second, capacity tokens at once."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.level = capacity
        self.at = time.monotonic()

    def take(self, n: float = 1.0) -> bool:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now
        if n > self.level:
            return False
        self.level -= n
        return True


class AudioRate(Bucket):
    """Audio bytes: real time times max_rate, with a burst allowance."""

    def __init__(self, limits: Limits, bytes_per_s: int = 32_000) -> None:
        super().__init__(bytes_per_s * limits.max_rate, bytes_per_s * limits.burst_s)


MIN_TOKEN_LENGTH = 24
"""Characters; new_token() gives 32 (24 random bytes)."""
