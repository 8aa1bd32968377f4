"""A private podcast feed of the spoken summaries: RSS 2.0 with enclosures behind a secret token in the URL.

Podcast apps cannot send a bearer token, so the secret travels in the path (`/feed/<token>.xml`); a wrong token
answers 404, exactly like a missing page. Item descriptions carry only the counts, never mail content: some podcast
apps fetch feeds through their vendor's servers.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
from collections.abc import Callable
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from mailvoice.errors import ConfigError, MailvoiceError

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.store import Message, Store

log = logging.getLogger(__name__)

ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
FEED_ITEMS = 50
_HEADERS = {"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_ID = re.compile(r"^[0-9a-f]{8,64}$")


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


def _opening(text: str) -> str:
    """The first sentence of a summary script: counts and length only."""
    return re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0][:200] if text else ""


def build_rss(messages: tuple[Message, ...], *, base_url: str, token: str, title: str) -> bytes:
    """RSS 2.0 with iTunes tags; one item per summary that kept its audio."""
    from mailvoice.audio.encode import FORMATS

    ET.register_namespace("itunes", ITUNES)
    rss = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(rss, "channel")
    ET.SubElement(channel, "title").text = title
    ET.SubElement(channel, "link").text = base_url
    ET.SubElement(channel, "description").text = "Spoken inbox summaries from mailvoice (private feed)."
    ET.SubElement(channel, "language").text = "en"
    ET.SubElement(channel, f"{{{ITUNES}}}block").text = "Yes"
    for m in messages:
        if m.audio is None:
            continue
        ext = next(
            (
                f
                for f in FORMATS
                if m.content.audio_type.endswith(f) or (f == "mp3" and m.content.audio_type == "audio/mpeg")
            ),
            "ogg",
        )
        item = ET.SubElement(channel, "item")
        ET.SubElement(item, "title").text = m.content.subject or "Inbox summary"
        ET.SubElement(item, "description").text = _opening(m.content.text)
        ET.SubElement(item, "guid", {"isPermaLink": "false"}).text = m.id
        ET.SubElement(item, "pubDate").text = format_datetime(m.created_at)
        ET.SubElement(
            item,
            "enclosure",
            {
                "url": f"{base_url}/feed/{token}/{m.id}.{ext}",
                "length": str(len(m.audio)),
                "type": m.content.audio_type or "audio/ogg",
            },
        )
        if m.duration:
            ET.SubElement(item, f"{{{ITUNES}}}duration").text = str(round(m.duration))
    body: bytes = ET.tostring(rss, encoding="utf-8", xml_declaration=True)
    return body


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single "bytes=a-b" range; None when absent or unsatisfiable."""
    m = _RANGE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        start, end = max(0, size - int(m.group(2))), size - 1
    else:
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    return (start, end) if start <= end < size else None


def feed_routes(settings: Settings, store_factory: Callable[[], Store], *, token: str | None = None) -> list[Any]:
    """Starlette routes: GET /feed/<token>.xml and GET /feed/<token>/<id>.<ext> (with byte ranges for players).

    store_factory returns the server's shared, open Store (not closed here).
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    secret = token or feed_token(settings)

    def allowed(request: Request) -> bool:
        given = str(request.path_params.get("token", ""))
        return hmac.compare_digest(given.encode(), secret.encode())

    def not_found() -> Response:
        return Response("not found", status_code=404, media_type="text/plain", headers=_HEADERS)

    async def feed(request: Request) -> Response:
        if not allowed(request):
            return not_found()
        store = store_factory()
        messages = await run_in_threadpool(store.list_messages, "summary", limit=FEED_ITEMS)
        base = str(request.base_url).rstrip("/")
        body = build_rss(messages, base_url=base, token=secret, title="mailvoice inbox summaries")
        return Response(body, media_type="application/rss+xml", headers=_HEADERS)

    async def enclosure(request: Request) -> Response:
        item = str(request.path_params.get("item", ""))
        if not allowed(request) or not _ID.match(item):
            return not_found()
        store = store_factory()
        try:
            message = await run_in_threadpool(store.get_message, item)
        except MailvoiceError:  # unknown or ambiguous id: the same answer as a wrong token
            return not_found()
        if message.kind != "summary" or message.audio is None or message.id != item:
            return not_found()
        data, media = message.audio, message.content.audio_type or "audio/ogg"
        headers = {**_HEADERS, "Accept-Ranges": "bytes"}
        wanted = request.headers.get("range")
        if wanted:
            span = _byte_range(wanted, len(data))
            if span is None:
                return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"})
            start, end = span
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return Response(data[start : end + 1], status_code=206, media_type=media, headers=headers)
        return Response(data, media_type=media, headers=headers)

    return [
        Route("/feed/{token}.xml", feed, methods=["GET"]),
        Route("/feed/{token}/{item}.{ext}", enclosure, methods=["GET"]),
    ]
