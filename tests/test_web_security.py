"""The dictation socket's gate: Origin allowlist and token before the upgrade, frame size and rate limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import websockets
from test_browser import TOKEN, Server
from websockets.asyncio.client import connect

from mailvoice.config import Settings
from mailvoice.crypto import Sealer, create_keyring
from mailvoice.dictation.runtime import Pipeline
from mailvoice.store import Store
from mailvoice.web.app import WebConfig, create_app
from mailvoice.web.security import AudioRate, Limits, allowed_origins, normalise_origin, token_ok

GOOD = ["mailvoice.v1", f"token.{TOKEN}"]


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("https://Mail.Example.org", "https://mail.example.org"),
        ("https://mail.example.org:443", "https://mail.example.org"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("null", ""),
        ("file://", ""),
        ("https://x.org/path", ""),
        ("javascript:alert(1)", ""),
    ],
)
def test_normalise_origin(raw: str, norm: str) -> None:
    assert normalise_origin(raw) == norm


def test_allowed_origins() -> None:
    got = allowed_origins("127.0.0.1", 8765, ["https://mail.example.org"])
    assert got == {"http://127.0.0.1:8765", "http://localhost:8765", "https://mail.example.org"}


def test_token_compare() -> None:
    assert token_ok("abc", "abc")
    assert not token_ok("", "")
    assert not token_ok("abd", "abc")


def test_audio_rate_limit() -> None:
    rate = AudioRate(Limits(max_rate=1.5, burst_s=1.0))
    assert rate.take(32_000)  # one second of burst is fine
    assert not rate.take(32_000)  # a second one at once is not
    time.sleep(0.2)
    assert rate.take(9_000)  # 0.2 s at 1.5x real time refills ~9.6 kB


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    p = Pipeline(Settings())
    yield p
    p.close()


@pytest.fixture
def server(tmp_path: Path, pipeline: Pipeline) -> Iterator[tuple[Server, str]]:
    ring = create_keyring(tmp_path / "keys.json")
    with Store.open(f"sqlite:///{tmp_path / 'mv.db'}", Sealer(ring)) as store:
        app = create_app(Settings(), pipeline, WebConfig(TOKEN, frozenset(), Limits(idle_timeout_s=1.0)), store)
        with Server(app) as srv:
            origin = f"http://127.0.0.1:{srv.port}"
            app.config = replace(app.config, origins=frozenset({origin}))
            yield srv, origin


async def _status(url: str, origin: str, protocols: list[str]) -> int:
    try:
        async with connect(url, origin=origin, subprotocols=protocols) as ws:  # type: ignore[arg-type]
            await ws.send('{"type": "start"}')
            return 101
    except websockets.exceptions.InvalidStatus as exc:
        return int(exc.response.status_code)


def test_handshake_refused_before_upgrade(server: tuple[Server, str]) -> None:
    srv, origin = server
    url = f"ws://127.0.0.1:{srv.port}/ws"
    assert asyncio.run(_status(url, origin, GOOD)) == 101
    assert asyncio.run(_status(url, "http://evil.example", GOOD)) == 403
    assert asyncio.run(_status(url, f"http://localhost:{srv.port + 1}", GOOD)) == 403
    assert asyncio.run(_status(url, origin, ["mailvoice.v1", "token.wrong"])) == 403
    assert asyncio.run(_status(url, origin, ["mailvoice.v1"])) == 403
    assert asyncio.run(_status(f"ws://127.0.0.1:{srv.port}/other", origin, GOOD)) == 403


async def _close_code(url: str, origin: str, payloads: list[bytes | str], wait: float = 3.0) -> int | None:
    async with connect(url, origin=origin, subprotocols=GOOD, max_size=None) as ws:  # type: ignore[arg-type]
        try:
            for p in payloads:
                await ws.send(p)
            await asyncio.wait_for(ws.wait_closed(), wait)
        except (websockets.exceptions.ConnectionClosed, TimeoutError):
            pass
        return ws.close_code


def test_oversized_frame_closes(server: tuple[Server, str]) -> None:
    srv, origin = server
    url = f"ws://127.0.0.1:{srv.port}/ws"
    assert asyncio.run(_close_code(url, origin, ['{"type": "start"}', b"\0" * 40_000])) == 1009
    assert asyncio.run(_close_code(url, origin, [b"\0" * 3])) == 1009  # odd length is not int16 audio


def test_audio_faster_than_real_time_closes(server: tuple[Server, str]) -> None:
    srv, origin = server
    url = f"ws://127.0.0.1:{srv.port}/ws"
    flood: list[bytes | str] = [b"\0" * 32_000] * 8  # 8 s of audio at once
    assert asyncio.run(_close_code(url, origin, flood)) == 1008


def test_idle_socket_closes(server: tuple[Server, str]) -> None:
    srv, origin = server
    url = f"ws://127.0.0.1:{srv.port}/ws"
    assert asyncio.run(_close_code(url, origin, [], wait=5.0)) == 1001  # the server closed it, not our wait
