"""A private podcast feed of the spoken summaries: RSS 2.0 with enclosures behind a secret token in the URL.

Podcast apps cannot send a bearer token, so the secret travels in the path (`/feed/<token>.xml`); a wrong token
answers 404, exactly like a missing page. Item descriptions carry only the counts, never mail content: some podcast
apps fetch feeds through their vendor's servers. Episodes are MP3 or M4A (mailvoice.feedaudio); every URL in the
feed is absolute and built from `[feed] base_url`, else from a trusted proxy's X-Forwarded-* headers, else from the
address the connection came in on: never from the Host header, which any client sets.
"""

from __future__ import annotations

import hmac
import importlib.resources
import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Callable, Mapping
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from mailvoice.errors import ConfigError, MailvoiceError

if TYPE_CHECKING:
    from starlette.requests import Request

    from mailvoice.config import Settings
    from mailvoice.store import Message, Store

log = logging.getLogger(__name__)

ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
ATOM = "http://www.w3.org/2005/Atom"
FEED_ITEMS = 50
_HEADERS = {
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
}
_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")  # more digits than any file has bytes: 416, not int() of it
_ID = re.compile(r"^[0-9a-f]{8,64}$")
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$"
)
_PREFIX = re.compile(r"^(?:/[A-Za-z0-9._~%!$&'()*+,;=:@-]+)*$")


def feed_token(settings: Settings) -> str:
    """The feed's secret: <data_dir>/feed-token (0600), created on first use; delete the file to revoke it."""
    path = settings.general.data_dir / "feed-token"
    try:
        token = path.read_text(encoding="ascii").strip()
        if len(token) >= 24:
            return token
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"feed token file {path} cannot be read ({exc.strerror})") from exc
    token = secrets.token_urlsafe(24)
    _write_private(path, token)
    return token


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def feed_path(token: str) -> str:
    """The path a podcast app subscribes to (prefix it with the server's base URL)."""
    return f"/feed/{token}.xml"


def configured_base(settings: Settings) -> str:
    """`[feed] base_url` without its trailing slash, checked; "" when unset."""
    base = settings.feed.base_url.strip().rstrip("/")
    if not base:
        return ""
    scheme, sep, rest = base.partition("://")
    host, _, prefix = rest.partition("/")
    if scheme not in ("http", "https") or not sep or not _HOST.match(host) or not _PREFIX.match("/" + prefix):
        raise ConfigError(
            f"setting feed.base_url = {settings.feed.base_url!r} is invalid: expected the public address, "
            "such as 'https://mail.example.org/mailvoice'"
        )
    return base


def trusted_networks(settings: Settings) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`[feed] trusted_proxies` as networks; ConfigError names the entry that is not an address or network."""
    nets = []
    for i, entry in enumerate(settings.feed.trusted_proxies):
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ConfigError(
                f"setting feed.trusted_proxies[{i}] = {entry!r} is invalid: expected an IP address or network "
                "such as '127.0.0.1' or '10.0.0.0/8'"
            ) from exc
    return tuple(nets)


def _last(value: str) -> str:
    """The value the nearest proxy added (the last of a comma list)."""
    return value.rsplit(",", 1)[-1].strip()


def public_base(scope: Mapping[str, Any], configured: str, trusted: tuple[Any, ...]) -> str:
    """The absolute base of every URL in the feed (see the module docstring for the order)."""
    if configured:
        return configured
    client = (scope.get("client") or ("", 0))[0]
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    try:
        from_proxy = bool(client) and any(ipaddress.ip_address(client) in net for net in trusted)
    except ValueError:
        from_proxy = False
    if from_proxy and "x-forwarded-host" in headers:
        proto = _last(headers.get("x-forwarded-proto", "https")).lower()
        host = _last(headers["x-forwarded-host"])
        prefix = _last(headers.get("x-forwarded-prefix", "")).rstrip("/")
        if proto in ("http", "https") and _HOST.match(host) and _PREFIX.match(prefix):
            return f"{proto}://{host}{prefix}"
        log.warning("ignoring malformed X-Forwarded-* headers from proxy %s", client)
    host, port = scope.get("server") or ("127.0.0.1", 80)
    shown = f"[{host}]" if ":" in str(host) else str(host)
    return f"{scope.get('scheme', 'http')}://{shown}:{port}"


def _opening(text: str) -> str:
    """The first sentence of a summary script: counts and length only."""
    return re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0][:200] if text else ""


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def build_rss(
    episodes: list[tuple[Message, int]], settings: Settings, *, base_url: str, token: str, fmt: str = "mp3"
) -> bytes:
    """RSS 2.0 with the iTunes and Atom tags podcast apps need; one item per (summary, audio length)."""
    from mailvoice.feedaudio import FEED_TYPES
    from mailvoice.spoken.lang import voice_language

    ET.register_namespace("itunes", ITUNES)
    ET.register_namespace("atom", ATOM)
    feed = settings.feed
    home = f"{base_url}/feed/{token}"
    rss = ET.Element("rss", {"version": "2.0"})
    channel = _sub(rss, "channel")
    _sub(channel, "title", feed.title)
    _sub(channel, "link", f"{base_url}/")
    _sub(channel, f"{{{ATOM}}}link", href=f"{home}.xml", rel="self", type="application/rss+xml")
    _sub(channel, "description", "Spoken inbox summaries from mailvoice (private feed).")
    _sub(channel, "language", voice_language(settings.tts).replace("_", "-").lower())
    image = _sub(channel, "image")
    _sub(image, "url", f"{home}/cover.png")
    _sub(image, "title", feed.title)
    _sub(image, "link", f"{base_url}/")
    _sub(channel, f"{{{ITUNES}}}image", href=f"{home}/cover.png")
    _sub(channel, f"{{{ITUNES}}}category", text=feed.category)
    _sub(channel, f"{{{ITUNES}}}explicit", "false")
    _sub(channel, f"{{{ITUNES}}}author", feed.author)
    owner = _sub(channel, f"{{{ITUNES}}}owner")
    _sub(owner, f"{{{ITUNES}}}name", feed.author)
    email = feed.email or next(iter(settings.delivery.owners), "")
    if email:
        _sub(owner, f"{{{ITUNES}}}email", email)
    _sub(channel, f"{{{ITUNES}}}type", "episodic")
    _sub(channel, f"{{{ITUNES}}}block", "Yes")  # private: never listed in a directory
    for m, length in episodes:
        item = _sub(channel, "item")
        _sub(item, "title", m.content.subject or "Inbox summary")
        _sub(item, "description", _opening(m.content.text))
        _sub(item, "guid", m.id, isPermaLink="false")
        _sub(item, "pubDate", format_datetime(m.created_at))
        _sub(item, "enclosure", url=f"{home}/{m.id}.{fmt}", length=str(length), type=FEED_TYPES[fmt])
        _sub(item, f"{{{ITUNES}}}explicit", "false")
        if m.duration:
            _sub(item, f"{{{ITUNES}}}duration", str(round(m.duration)))
    body: bytes = ET.tostring(rss, encoding="utf-8", xml_declaration=True)
    return body


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single "bytes=a-b" range; None when malformed, absurd or unsatisfiable."""
    m = _RANGE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        start, end = max(0, size - int(m.group(2))), size - 1
    else:
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    return (start, end) if start <= end < size else None


def _cover() -> bytes:
    return importlib.resources.files("mailvoice").joinpath("data", "cover.png").read_bytes()


def feed_routes(settings: Settings, store_factory: Callable[[], Store], *, token: str | None = None) -> list[Any]:
    """Starlette routes: the feed, its cover and its episodes (byte ranges for players; HEAD comes with GET).

    store_factory returns the server's shared, open Store (not closed here). Settings are checked here, at start.
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response
    from starlette.routing import Route

    from mailvoice.feedaudio import FEED_TYPES, EpisodeAudio

    secret = token or feed_token(settings)
    configured, trusted = configured_base(settings), trusted_networks(settings)
    fmt = settings.feed.format
    audio = EpisodeAudio(settings, fmt)

    def allowed(request: Request) -> bool:
        given = str(request.path_params.get("token", ""))
        return hmac.compare_digest(given.encode(), secret.encode())

    def not_found() -> Response:
        return Response("not found", status_code=404, media_type="text/plain", headers=_HEADERS)

    def episodes(store: Store) -> list[tuple[Message, int]]:
        out = []
        for m in store.list_messages("summary", limit=FEED_ITEMS):
            data = audio.get(m, store.sealer)
            if data is not None:
                out.append((m, len(data)))
        audio.prune({m.id for m, _ in out})
        return out

    async def feed(request: Request) -> Response:
        if not allowed(request):
            return not_found()
        items = await run_in_threadpool(episodes, store_factory())
        base = public_base(request.scope, configured, trusted)
        body = build_rss(items, settings, base_url=base, token=secret, fmt=fmt)
        return Response(body, media_type="application/rss+xml", headers=_HEADERS)

    async def cover(request: Request) -> Response:
        if not allowed(request):
            return not_found()
        return Response(_cover(), media_type="image/png", headers=_HEADERS)

    def episode(store: Store, item: str) -> bytes | None:
        try:
            message = store.get_message(item)
        except MailvoiceError:  # unknown or ambiguous id: the same answer as a wrong token
            return None
        if message.kind != "summary" or message.id != item:
            return None
        return audio.get(message, store.sealer)

    async def enclosure(request: Request) -> Response:
        item = str(request.path_params.get("item", ""))
        if not allowed(request) or not _ID.match(item) or request.path_params.get("ext") != fmt:
            return not_found()
        data = await run_in_threadpool(episode, store_factory(), item)
        if data is None:
            return not_found()
        headers = {**_HEADERS, "Accept-Ranges": "bytes"}
        wanted = request.headers.get("range")
        if wanted:
            span = _byte_range(wanted, len(data))
            if span is None:
                return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"})
            start, end = span
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return Response(data[start : end + 1], status_code=206, media_type=FEED_TYPES[fmt], headers=headers)
        return Response(data, media_type=FEED_TYPES[fmt], headers=headers)

    return [
        Route("/feed/{token}.xml", feed, methods=["GET"]),
        Route("/feed/{token}/cover.png", cover, methods=["GET"]),
        Route("/feed/{token}/{item}.{ext}", enclosure, methods=["GET"]),
    ]
