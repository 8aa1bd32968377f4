"""`mailvoice serve` against hostile clients: the real gated uvicorn on 127.0.0.1, driven with raw sockets.

Timeouts are configured small; the tests assert that a connection gets closed (within a generous bound, never a
measured speed) and that a normal client is still served afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect

from mailvoice.config import GeneralSettings, Settings
from mailvoice.dictation.runtime import Pipeline
from mailvoice.web.app import WebConfig, create_app
from mailvoice.web.security import Limits
from mailvoice.web.server import ConnLimits, make_server

TOKEN = "hold-test-token-0123456789abcdef"
BOUND_S = 30.0
"""How long a test waits for the server to act: a liveness bound on a loaded machine, not a speed."""


class Gated:
    """make_server (what `mailvoice serve` runs) in a thread on a free 127.0.0.1 port."""

    def __init__(self, app: Any, limits: ConnLimits) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.server = make_server(app, "127.0.0.1", self.port, limits)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Gated:
        self.thread.start()
        deadline = time.monotonic() + BOUND_S
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    p = Pipeline(Settings(general=GeneralSettings(data_dir=tmp_path_factory.mktemp("data"))))
    yield p
    p.close()


def _serve(pipeline: Pipeline, limits: ConnLimits, ws_limits: Limits | None = None) -> Gated:
    app = create_app(Settings(), pipeline, WebConfig(TOKEN, frozenset(), ws_limits or Limits()))
    srv = Gated(app, limits)
    app.config = replace(app.config, origins=frozenset({f"http://127.0.0.1:{srv.port}"}))
    return srv


def _raw(port: int, source: str = "127.0.0.1") -> socket.socket:
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def _closed(s: socket.socket, bound: float = BOUND_S) -> bool:
    """True once the server closed (EOF or reset), reading and discarding what it sent; False at the bound."""
    end = time.monotonic() + bound
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            if not s.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


def _get(port: int, source: str = "127.0.0.1") -> bytes:
    with _raw(port, source) as s:
        s.settimeout(BOUND_S)
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def _handshake(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n"
        b"Origin: http://127.0.0.1:" + str(port).encode() + b"\r\n"
        b"Sec-WebSocket-Protocol: mailvoice.v1, token." + TOKEN.encode() + b"\r\n\r\n"
    )


def test_silent_slowloris_and_half_open_sockets_are_closed(pipeline: Pipeline) -> None:
    limits = ConnLimits(header_timeout_s=1.0, idle_timeout_s=2.0, ping_interval_s=1.0)
    with _serve(pipeline, limits, Limits(idle_timeout_s=600.0)) as srv:
        silent = [_raw(srv.port) for _ in range(5)]
        slow = [_raw(srv.port) for _ in range(5)]
        half_open = [_raw(srv.port) for _ in range(5)]
        for s in half_open:  # a valid, authenticated upgrade; then the peer never reads, answers or sends again
            s.sendall(_handshake(srv.port))
            s.settimeout(BOUND_S)
            assert s.recv(4096).startswith(b"HTTP/1.1 101")
        stop = threading.Event()

        def trickle() -> None:  # slowloris: a header byte at a time, forever
            request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 10_000
            for i in range(len(request)):
                for s in slow:
                    with contextlib.suppress(OSError):  # closed by the server: what we wait for
                        s.send(request[i : i + 1])
                if stop.wait(0.1):
                    return

        feeder = threading.Thread(target=trickle, daemon=True)
        feeder.start()
        try:
            assert all(_closed(s) for s in silent), "a silent connection stayed open"
            assert all(_closed(s) for s in slow), "a slowloris connection stayed open"
            assert all(_closed(s) for s in half_open), "a half-open WebSocket stayed open"
        finally:
            stop.set()
            feeder.join(5)
            for s in silent + slow + half_open:
                s.close()
        assert _get(srv.port).startswith(b"HTTP/1.1 200")
        assert srv.server.config.gate.expired >= 10  # type: ignore[attr-defined]


def test_connection_caps_refuse_the_excess(pipeline: Pipeline) -> None:
    limits = ConnLimits(max_connections=6, max_per_client=3, header_timeout_s=60.0, idle_timeout_s=60.0)
    with _serve(pipeline, limits) as srv:
        first = [_raw(srv.port, "127.0.0.2") for _ in range(3)]
        over = _raw(srv.port, "127.0.0.2")
        over.settimeout(BOUND_S)
        assert over.recv(4096).startswith(b"HTTP/1.1 503")
        assert _closed(over)
        assert _get(srv.port, "127.0.0.3").startswith(b"HTTP/1.1 200")  # another address is still served
        second = [_raw(srv.port, "127.0.0.3") for _ in range(3)]
        total = _raw(srv.port, "127.0.0.4")  # the total cap
        total.settimeout(BOUND_S)
        assert total.recv(4096).startswith(b"HTTP/1.1 503")
        first[0].sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        first[0].settimeout(BOUND_S)
        assert first[0].recv(4096).startswith(b"HTTP/1.1 200")  # an admitted connection works
        for s in [over, total, *first, *second]:
            s.close()
        end = time.monotonic() + BOUND_S
        while srv.server.config.gate.conns and time.monotonic() < end:  # type: ignore[attr-defined]
            time.sleep(0.1)  # the server sees the closes asynchronously
        reply = _get(srv.port, "127.0.0.2")
        assert reply.startswith(b"HTTP/1.1 200")


async def _flood(port: int, payloads: list[str]) -> int | None:
    url = f"ws://127.0.0.1:{port}/ws"
    protocols: Any = ["mailvoice.v1", f"token.{TOKEN}"]
    async with connect(url, origin=f"http://127.0.0.1:{port}", subprotocols=protocols) as ws:  # type: ignore[arg-type]
        try:
            for p in payloads:
                await ws.send(p)
            while True:  # read what the server answers (error replies), or the client stops reading at its queue
                await asyncio.wait_for(ws.recv(), BOUND_S)
        except (websockets.exceptions.ConnectionClosed, TimeoutError):
            pass
        return ws.close_code


@pytest.mark.parametrize(
    "payloads",
    [
        ['{"type": "edit", "text": "x"}'] * 500,
        ["not json"] * 500,
        ['{"type": "stop"}'] * 40,
        ['{"type": "start"}'] * 40,
    ],
    ids=["edit", "garbage", "stop", "start"],
)
def test_text_and_control_floods_close_the_socket(pipeline: Pipeline, payloads: list[str]) -> None:
    with _serve(pipeline, ConnLimits()) as srv:
        assert asyncio.run(_flood(srv.port, payloads)) == 1008
        assert _get(srv.port).startswith(b"HTTP/1.1 200")


def test_normal_use_is_within_the_limits(pipeline: Pipeline) -> None:
    with _serve(pipeline, ConnLimits(), Limits(idle_timeout_s=1.0)) as srv:
        typing = ['{"type": "edit", "text": "hello"}'] * 30 + ['{"type": "stop"}'] * 3
        assert asyncio.run(_flood(srv.port, typing)) == 1001  # closed for idleness, not for a limit


def test_a_client_that_stops_reading_a_download_is_dropped(pipeline: Pipeline, tmp_path: Path) -> None:
    from mailvoice.crypto import Sealer, create_keyring
    from mailvoice.feed import feed_token
    from mailvoice.store import MessageContent, NewMessage, Store

    settings = Settings(general=GeneralSettings(data_dir=tmp_path / "data"))
    with Store.open(f"sqlite:///{tmp_path / 'mv.db'}", Sealer(create_keyring(tmp_path / "keys.json"))) as store:
        big = NewMessage(  # already in the feed's format (MP3): served as stored, nothing to encode
            "summary",
            "main",
            MessageContent(text="One new message.", audio_type="audio/mpeg"),
            audio=b"ID3" + os.urandom(40 << 20),
        )
        store.record(messages=[big])
        app = create_app(settings, pipeline, WebConfig(TOKEN, frozenset(), Limits()), store)
        limits = ConnLimits(idle_timeout_s=5.0)  # well above a loaded machine's scheduling hiccups
        with Gated(app, limits) as srv:
            reader = _raw(srv.port)
            reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            path = f"/feed/{feed_token(settings)}/{big.id}.mp3"
            reader.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            gate = srv.server.config.gate  # type: ignore[attr-defined]
            end = time.monotonic() + BOUND_S * 2
            while not gate.conns and time.monotonic() < end:  # accepted asynchronously
                time.sleep(0.05)
            assert gate.conns
            while gate.conns and time.monotonic() < end:  # we never read: the server must let go
                time.sleep(0.2)
            assert not gate.conns, "a connection that stopped reading its response was kept"
            assert gate.expired == 1
            assert _get(srv.port).startswith(b"HTTP/1.1 200")
            reader.close()
            slow = _raw(srv.port)  # a slow listener that keeps reading is not idle, though it sends nothing
            slow.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            slow.settimeout(BOUND_S)
            got = 0
            stop = time.monotonic() + 2 * limits.idle_timeout_s
            while time.monotonic() < stop:
                chunk = slow.recv(65536)
                assert chunk, "a download that was being read was dropped"
                got += len(chunk)
                time.sleep(0.2)
            assert gate.expired == 1 and got < len(big.audio or b"")
            slow.close()
