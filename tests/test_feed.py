"""The private podcast feed: RSS with enclosures, a secret token in the URL, byte ranges for players."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mailvoice.config import GeneralSettings, Settings
from mailvoice.crypto import Sealer, create_keyring
from mailvoice.feed import ITUNES, feed_path, feed_routes, feed_token
from mailvoice.store import MessageContent, NewMessage, Store

AUDIO = b"OggS" + bytes(range(256)) * 40


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(general=GeneralSettings(data_dir=tmp_path / "data", key_file=tmp_path / "keys.json"))


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
        duration=42.4,
        audio=AUDIO,
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


@pytest.fixture
def client(settings: Settings, store: Store) -> TestClient:
    return TestClient(Starlette(routes=feed_routes(settings, lambda: store)))


def test_feed_lists_summaries_with_enclosures(
    settings: Settings, client: TestClient, stored: tuple[NewMessage, NewMessage]
) -> None:
    summary, _ = stored
    resp = client.get(feed_path(feed_token(settings)))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/rss+xml")
    assert resp.headers["cache-control"] == "private, no-store"
    root = ET.fromstring(resp.content)
    items = root.findall("./channel/item")
    assert len(items) == 1
    item = items[0]
    assert item.findtext("title") == "Inbox summary: 3 new"
    assert item.findtext("description") == "Three new messages."  # counts only, never mail content
    assert item.findtext(f"{{{ITUNES}}}duration") == "42"
    assert b"Secret body" not in resp.content and b"Sarah" not in resp.content
    enclosure = item.find("enclosure")
    assert enclosure is not None and enclosure.get("type") == "audio/ogg"
    assert enclosure.get("length") == str(len(AUDIO))
    url = enclosure.get("url") or ""
    assert url.endswith(f"/{summary.id}.ogg")
    audio = client.get(url)
    assert audio.status_code == 200 and audio.content == AUDIO
    assert audio.headers["accept-ranges"] == "bytes"


def test_byte_ranges(settings: Settings, client: TestClient, stored: tuple[NewMessage, NewMessage]) -> None:
    token = feed_token(settings)
    url = f"/feed/{token}/{stored[0].id}.ogg"
    part = client.get(url, headers={"Range": "bytes=4-9"})
    assert part.status_code == 206 and part.content == AUDIO[4:10]
    assert part.headers["content-range"] == f"bytes 4-9/{len(AUDIO)}"
    tail = client.get(url, headers={"Range": "bytes=-4"})
    assert tail.status_code == 206 and tail.content == AUDIO[-4:]
    assert client.get(url, headers={"Range": f"bytes={len(AUDIO)}-"}).status_code == 416


def test_wrong_token_or_other_kinds_are_not_found(
    settings: Settings, client: TestClient, stored: tuple[NewMessage, NewMessage]
) -> None:
    token = feed_token(settings)
    summary, voicemail = stored
    assert client.get("/feed/wrong-token-wrong-token-wrong.xml").status_code == 404
    assert client.get(f"/feed/x{token}.xml").status_code == 404
    assert client.get(f"/feed/wrong/{summary.id}.ogg").status_code == 404
    assert client.get(f"/feed/{token}/{voicemail.id}.wav").status_code == 404  # only summaries are served
    assert client.get(f"/feed/{token}/{summary.id[:10]}.ogg").status_code == 404  # no id prefixes
    assert client.get(f"/feed/{token}/nothex.ogg").status_code == 404


def test_token_is_private_and_stable(settings: Settings) -> None:
    token = feed_token(settings)
    assert len(token) >= 24 and feed_token(settings) == token
    path = settings.general.data_dir / "feed-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.unlink()  # revoking: a new token, the old URL stops working
    assert feed_token(settings) != token
