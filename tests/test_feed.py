"""The private podcast feed: MP3/M4A episodes podcast apps play, the channel tags they need, absolute URLs that no
client can steer, byte ranges, a secret token; checked with feedparser against the real server (uvicorn)."""

from __future__ import annotations

import stat
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from servers import free_port
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mailvoice.audio.decode import decode_audio
from mailvoice.audio.encode import encode_audio
from mailvoice.audio.sniff import sniff_format
from mailvoice.config import DeliverySettings, FeedSettings, GeneralSettings, Settings
from mailvoice.crypto import Sealer, create_keyring
from mailvoice.errors import ConfigError
from mailvoice.feed import ATOM, ITUNES, feed_path, feed_routes, feed_token
from mailvoice.store import MessageContent, NewMessage, Store
from mailvoice.types import AudioClip

RATE = 24000


def tone_ogg(seconds: float = 3.0) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)
    return encode_audio(AudioClip(samples=samples, sample_rate=RATE), "ogg")


OGG = tone_ogg()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        general=GeneralSettings(data_dir=tmp_path / "data", key_file=tmp_path / "keys.json"),
        delivery=DeliverySettings(owners=("owner@example.org",)),
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    ring = create_keyring(settings.general.resolved_key_file())
    with Store.open(settings.general.resolved_store_url(), Sealer(ring)) as s:
        yield s


@pytest.fixture
def stored(store: Store) -> tuple[NewMessage, NewMessage]:
    summary = NewMessage(
        kind="summary",
        account="home",
        duration=3.0,
        audio=OGG,
        content=MessageContent(
            text="Three new messages. Voicemail from Sarah Miller. Secret body text.",
            subject="Inbox summary: 3 new",
            audio_filename="inbox-summary.ogg",
            audio_type="audio/ogg",
        ),
    )
    voicemail = NewMessage(
        kind="voicemail",
        account="home",
        audio=b"RIFFprivate",
        content=MessageContent(text="private voicemail", audio_type="audio/wav"),
    )
    store.record(messages=(summary, voicemail))
    return summary, voicemail


def client_for(settings: Settings, store: Store) -> TestClient:
    return TestClient(Starlette(routes=feed_routes(settings, lambda: store)))


@pytest.fixture
def client(settings: Settings, store: Store) -> TestClient:
    return client_for(settings, store)


def enclosure_of(body: bytes) -> ET.Element:
    found = ET.fromstring(body).find("./channel/item/enclosure")
    assert found is not None
    return found


def local(url: str) -> str:
    """The path of an absolute feed URL (the TestClient talks to the app directly)."""
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_feed_serves_mp3_episodes_with_the_tags_apps_need(
    settings: Settings, client: TestClient, stored: tuple[NewMessage, NewMessage]
) -> None:
    summary, _ = stored
    resp = client.get(feed_path(feed_token(settings)))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/rss+xml")
    assert resp.headers["cache-control"] == "private, no-store"
    assert resp.headers["x-content-type-options"] == "nosniff"
    channel = ET.fromstring(resp.content).find("channel")
    assert channel is not None
    assert channel.find(f"{{{ITUNES}}}image") is not None
    assert channel.find(f"{{{ITUNES}}}category") is not None
    assert channel.findtext(f"{{{ITUNES}}}explicit") == "false"
    assert channel.findtext(f"{{{ITUNES}}}author") == "mailvoice"
    assert channel.findtext(f"{{{ITUNES}}}owner/{{{ITUNES}}}email") == "owner@example.org"
    self_link = channel.find(f"{{{ATOM}}}link")
    assert self_link is not None and self_link.get("rel") == "self"
    assert local(self_link.get("href") or "") == feed_path(feed_token(settings))
    items = channel.findall("item")
    assert len(items) == 1  # only summaries
    assert items[0].findtext("description") == "Three new messages."  # counts only, never mail content
    assert b"Secret body" not in resp.content and b"Sarah" not in resp.content

    enclosure = enclosure_of(resp.content)
    assert enclosure.get("type") == "audio/mpeg"
    url = enclosure.get("url") or ""
    assert url.startswith("http") and url.endswith(f"/{summary.id}.mp3")
    audio = client.get(local(url))
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
    assert audio.headers["x-content-type-options"] == "nosniff"
    assert enclosure.get("length") == str(len(audio.content))
    assert sniff_format(audio.content) == "mp3"
    assert abs(decode_audio(audio.content).duration - 3.0) < 0.2

    image = channel.find(f"{{{ITUNES}}}image")
    assert image is not None
    cover = client.get(local(image.get("href") or ""))
    assert cover.status_code == 200 and cover.content.startswith(b"\x89PNG")
    width, height = int.from_bytes(cover.content[16:20], "big"), int.from_bytes(cover.content[20:24], "big")
    assert 1400 <= width == height <= 3000  # Apple Podcasts' artwork bounds


def test_episode_is_encoded_once_and_cached_sealed(
    settings: Settings, client: TestClient, stored: tuple[NewMessage, NewMessage]
) -> None:
    summary, _ = stored
    url = f"/feed/{feed_token(settings)}/{summary.id}.mp3"
    first = client.get(url).content
    cache = settings.general.data_dir / "feed-cache" / f"{summary.id}.mp3.sealed"
    sealed = cache.read_bytes()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert first[:64] not in sealed and b"ID3" not in sealed[:16]  # never the plaintext MP3 on disk
    assert client.get(url).content == first and cache.read_bytes() == sealed  # served from the cache
    cache.write_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]))  # tampered: encoded again, never served as is
    again = client.get(url)
    assert again.status_code == 200 and sniff_format(again.content) == "mp3"


def test_m4a_episodes(settings: Settings, store: Store, stored: tuple[NewMessage, NewMessage]) -> None:
    client = client_for(replace(settings, feed=FeedSettings(format="m4a")), store)
    enclosure = enclosure_of(client.get(feed_path(feed_token(settings))).content)
    assert enclosure.get("type") == "audio/x-m4a"
    audio = client.get(local(enclosure.get("url") or ""))
    assert audio.status_code == 200 and audio.content[4:12] == b"ftypM4A "
    assert abs(decode_audio(audio.content).duration - 3.0) < 0.2


def test_byte_ranges_and_absurd_ranges(
    settings: Settings, client: TestClient, stored: tuple[NewMessage, NewMessage]
) -> None:
    url = f"/feed/{feed_token(settings)}/{stored[0].id}.mp3"
    whole = client.get(url).content
    part = client.get(url, headers={"Range": "bytes=4-9"})
    assert part.status_code == 206 and part.content == whole[4:10]
    assert part.headers["content-range"] == f"bytes 4-9/{len(whole)}"
    tail = client.get(url, headers={"Range": "bytes=-4"})
    assert tail.status_code == 206 and tail.content == whole[-4:]
    for absurd in (
        f"bytes={len(whole)}-",
        "bytes=" + "9" * 5000 + "-",
        "bytes=0-" + "9" * 40,
        "bytes=5-2",
        "lines=1-2",
    ):
        resp = client.get(url, headers={"Range": absurd})
        assert resp.status_code == 416, absurd
        assert resp.headers["content-range"] == f"bytes */{len(whole)}"


def test_wrong_token_extension_or_kind_is_not_found(
    settings: Settings, client: TestClient, stored: tuple[NewMessage, NewMessage]
) -> None:
    token = feed_token(settings)
    summary, voicemail = stored
    assert client.get("/feed/wrong-token-wrong-token-wrong.xml").status_code == 404
    assert client.get(f"/feed/x{token}.xml").status_code == 404
    assert client.get(f"/feed/wrong/{summary.id}.mp3").status_code == 404
    assert client.get("/feed/wrong/cover.png").status_code == 404
    assert client.get(f"/feed/{token}/{summary.id}.ogg").status_code == 404  # the wrong extension
    assert client.get(f"/feed/{token}/{summary.id}.MP3").status_code == 404
    assert client.get(f"/feed/{token}/{summary.id}.mp3.mp3").status_code == 404
    assert client.get(f"/feed/{token}/{voicemail.id}.mp3").status_code == 404  # only summaries are served
    assert client.get(f"/feed/{token}/{summary.id[:10]}.mp3").status_code == 404  # no id prefixes
    assert client.get(f"/feed/{token}/nothex.mp3").status_code == 404


def test_urls_come_from_base_url_never_from_host(
    settings: Settings, store: Store, stored: tuple[NewMessage, NewMessage]
) -> None:
    mine = replace(settings, feed=FeedSettings(base_url="https://mail.example.org/mailvoice/"))
    client = client_for(mine, store)
    token = feed_token(settings)
    for headers in ({"Host": "evil.example"}, {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}):
        body = client.get(feed_path(token), headers=headers).content
        assert b"evil.example" not in body
        url = enclosure_of(body).get("url") or ""
        assert url == f"https://mail.example.org/mailvoice/feed/{token}/{stored[0].id}.mp3"
    # without base_url, an untrusted client's Host and X-Forwarded-* are ignored as well
    plain = client_for(settings, store)
    body = plain.get(feed_path(token), headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"}).content
    assert b"evil.example" not in body


def test_bad_feed_settings_name_the_key(settings: Settings, store: Store) -> None:
    with pytest.raises(ConfigError, match=r"feed\.base_url"):
        feed_routes(replace(settings, feed=FeedSettings(base_url="mail.example.org")), lambda: store)
    with pytest.raises(ConfigError, match=r"feed\.trusted_proxies\[0\]"):
        feed_routes(replace(settings, feed=FeedSettings(trusted_proxies=("proxy.local",))), lambda: store)


def test_token_is_private_and_stable(settings: Settings) -> None:
    token = feed_token(settings)
    assert len(token) >= 24 and feed_token(settings) == token
    path = settings.general.data_dir / "feed-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.unlink()  # revoking: a new token, the old URL stops working
    assert feed_token(settings) != token


class Server:
    """uvicorn in a thread on a free 127.0.0.1 port, configured as `mailvoice serve` runs it (its own proxy-header
    rewriting off: trust is the feed's decision)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", proxy_headers=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as resp:  # 127.0.0.1 only
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()


def test_feedparser_reads_the_feed_from_the_real_server(
    settings: Settings, store: Store, stored: tuple[NewMessage, NewMessage]
) -> None:
    import feedparser

    summary, _ = stored
    token = feed_token(settings)
    with Server(Starlette(routes=feed_routes(settings, lambda: store))) as server:
        base = f"http://127.0.0.1:{server.port}"
        status, headers, body = fetch(base + feed_path(token), {"Host": "evil.example"})
        assert status == 200 and headers["x-content-type-options"] == "nosniff"
        parsed = feedparser.parse(body)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.version == "rss20"
        feed = parsed.feed
        assert feed.title == "mailvoice inbox summaries"
        assert feed.image.href == f"{base}/feed/{token}/cover.png"  # the connection's address, not Host
        assert "itunes_explicit" in feed  # "false", Apple's current form (feedparser maps only yes/clean to bools)
        assert feed.author == "mailvoice"
        assert feed.publisher_detail.email == "owner@example.org"  # itunes:owner
        assert [t.term for t in feed.tags] == ["Technology"]
        assert any(link.rel == "self" and link.href == base + feed_path(token) for link in feed.links)
        (entry,) = parsed.entries
        assert entry.id == summary.id and entry.itunes_duration == "3"
        (enclosure,) = entry.enclosures
        assert enclosure.type == "audio/mpeg" and enclosure.href == f"{base}/feed/{token}/{summary.id}.mp3"
        status, headers, audio = fetch(enclosure.href)
        assert status == 200 and headers["content-type"] == "audio/mpeg"
        assert int(enclosure.length) == len(audio) == int(headers["content-length"])
        assert sniff_format(audio) == "mp3"
        with urllib.request.urlopen(urllib.request.Request(enclosure.href, method="HEAD"), timeout=30) as head:
            assert head.status == 200 and int(head.headers["content-length"]) == len(audio)  # apps ask HEAD first
            assert head.read() == b""


def test_forwarded_headers_only_from_trusted_proxies(
    settings: Settings, store: Store, stored: tuple[NewMessage, NewMessage]
) -> None:
    token = feed_token(settings)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pod.example.org", "X-Forwarded-Prefix": "/mv"}
    trusting = replace(settings, feed=FeedSettings(trusted_proxies=("127.0.0.0/8",)))
    with Server(Starlette(routes=feed_routes(trusting, lambda: store))) as server:
        _, _, body = fetch(f"http://127.0.0.1:{server.port}{feed_path(token)}", forwarded)
        assert (enclosure_of(body).get("url") or "").startswith(f"https://pod.example.org/mv/feed/{token}/")
    distrusting = replace(settings, feed=FeedSettings(trusted_proxies=("10.0.0.0/8",)))
    with Server(Starlette(routes=feed_routes(distrusting, lambda: store))) as server:
        _, _, body = fetch(f"http://127.0.0.1:{server.port}{feed_path(token)}", forwarded)
        assert b"pod.example.org" not in body
        assert (enclosure_of(body).get("url") or "").startswith(f"http://127.0.0.1:{server.port}/feed/")
