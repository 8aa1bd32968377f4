"""`/healthz`, `/metrics` behind the token, audited logins, and how `mailvoice serve` takes its token and address."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from test_feed import tone_ogg
from test_web_hold import BOUND_S, TOKEN, Gated
from websockets.asyncio.client import connect

from mailvoice.config import GeneralSettings, Settings
from mailvoice.crypto import Sealer, create_keyring
from mailvoice.dictation.runtime import Pipeline
from mailvoice.feed import feed_token
from mailvoice.store import Envelope, MessageContent, NewMessage, NewOutgoing, SourceRef, Store
from mailvoice.web.app import WebConfig, create_app
from mailvoice.web.security import Limits
from mailvoice.web.server import ConnLimits

REAL = Path(__file__).resolve().parent / "data" / "real"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    p = Pipeline(Settings(general=GeneralSettings(data_dir=tmp_path_factory.mktemp("data"))))
    yield p
    p.close()


@pytest.fixture
def served(tmp_path: Path, pipeline: Pipeline) -> Iterator[tuple[Gated, Store]]:
    ring = create_keyring(tmp_path / "keys.json")
    with Store.open(f"sqlite:///{tmp_path / 'mv.db'}", Sealer(ring)) as store:
        settings = Settings(general=GeneralSettings(data_dir=tmp_path / "data"))
        app = create_app(settings, pipeline, WebConfig(TOKEN, frozenset(), Limits()), store)
        with Gated(app, ConnLimits()) as srv:
            app.config = replace(app.config, origins=frozenset({f"http://127.0.0.1:{srv.port}"}))
            yield srv, store


def _http(port: int, path: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=BOUND_S) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _fill(store: Store) -> None:
    store.record_processed(SourceRef("main", "INBOX", "a" * 64, "b" * 64, uidvalidity=1, uid=7))
    quarantined = SourceRef("main", "INBOX", "c" * 64, "d" * 64, uidvalidity=1, uid=8)
    store.record_quarantined(quarantined, "AudioTooLongError", b"raw")
    store.record(outgoing=[NewOutgoing("<a@x>", b"x", Envelope("a@x.org", ("b@x.org",)))])


def test_healthz_is_open_and_metrics_need_the_token(served: tuple[Gated, Store]) -> None:
    srv, store = served
    _fill(store)
    assert _http(srv.port, "/healthz") == (200, "ok\n")
    assert _http(srv.port, "/metrics")[0] == 401
    assert _http(srv.port, "/metrics", "wrong-token-wrong-token-wrong")[0] == 401
    status, body = _http(srv.port, "/metrics", TOKEN)
    assert status == 200
    got = _metrics(body)
    assert got[("mailvoice_messages_processed_total", ())] == 1
    assert got[("mailvoice_messages_quarantined_total", ())] == 1
    assert got[("mailvoice_quarantine_open", ())] == 1
    assert got[("mailvoice_outbox_depth", (("state", "pending"),))] == 1
    assert ("mailvoice_transcription_real_time_factor", ()) in got
    assert ("mailvoice_dictation_final_latency_seconds_count", ()) in got
    failed = [r for r in store.audit_records() if r.action == "login.failed"]
    assert [(r.target, r.actor) for r in failed] == [("/metrics", "web:127.0.0.1")] * 2


async def _handshake(port: int, token: str) -> int:
    protocols: Any = ["mailvoice.v1", f"token.{token}"]
    try:
        async with connect(f"ws://127.0.0.1:{port}/ws", origin=f"http://127.0.0.1:{port}", subprotocols=protocols):
            return 101
    except websockets.exceptions.InvalidStatus as exc:
        return int(exc.response.status_code)


def test_socket_logins_are_audited(served: tuple[Gated, Store]) -> None:
    srv, store = served
    assert asyncio.run(_handshake(srv.port, "not-the-token-not-the-token-x")) == 403
    assert asyncio.run(_handshake(srv.port, TOKEN)) == 101
    trail = [(r.action, r.target, r.outcome) for r in store.audit_records()]
    assert trail == [("login.failed", "/ws bad or missing token", "failed"), ("login.succeeded", "/ws", "ok")]
    assert TOKEN not in json.dumps([r.to_json() for r in store.audit_records()])


def test_feed_episodes_played_are_audited_by_id(served: tuple[Gated, Store], tmp_path: Path) -> None:
    srv, store = served
    summary = NewMessage("summary", "main", MessageContent(text="Two new messages."), audio=tone_ogg())
    store.record(messages=[summary])
    secret = feed_token(Settings(general=GeneralSettings(data_dir=tmp_path / "data")))
    url = f"http://127.0.0.1:{srv.port}/feed/{secret}/{summary.id}.mp3"  # episodes are served as MP3
    with urllib.request.urlopen(url, timeout=BOUND_S) as reply:
        assert reply.status == 200
    later = urllib.request.Request(url, headers={"Range": "bytes=100-199"})  # the same listen, further on
    with urllib.request.urlopen(later, timeout=BOUND_S) as reply:
        assert reply.status == 206
    assert _http(srv.port, f"/feed/guessed-guessed-guessed-guess/{summary.id}.mp3")[0] == 404
    trail = [(r.action, r.target) for r in store.audit_records()]
    assert trail == [("audio.played", summary.id), ("login.failed", "/feed")]
    assert secret not in json.dumps([r.to_json() for r in store.audit_records()])


async def _dictate(port: int, pcm: bytes) -> list[dict[str, Any]]:
    protocols: Any = ["mailvoice.v1", f"token.{TOKEN}"]
    events: list[dict[str, Any]] = []
    async with connect(f"ws://127.0.0.1:{port}/ws", origin=f"http://127.0.0.1:{port}", subprotocols=protocols) as ws:
        await ws.send('{"type": "start"}')
        step = 3200  # 0.1 s, sent a little faster than real time (the limit is 1.5x)
        for i in range(0, len(pcm), step):
            await ws.send(pcm[i : i + step])
            await asyncio.sleep(0.08)
        await ws.send('{"type": "stop"}')
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 300))
            events.append(event)
            if event["type"] in ("stopped", "error"):
                return events


def test_dictation_feeds_latency_and_real_time_factor(served: tuple[Gated, Store]) -> None:
    srv, _ = served
    with wave.open(str(REAL / "horizon-right.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16_000, 1, 2)
        pcm = w.readframes(w.getnframes()) + b"\0" * 32_000  # a second of silence: the utterance ends
    events = asyncio.run(_dictate(srv.port, pcm))
    assert [e["type"] for e in events if e["type"] == "final"], events
    got = _metrics(_http(srv.port, "/metrics", TOKEN)[1])
    assert got[("mailvoice_dictation_final_latency_seconds_count", ())] >= 1
    assert got[("mailvoice_dictation_sessions_total", ())] == 1
    assert got[("mailvoice_transcription_audio_seconds_total", ())] > 0
    assert got[("mailvoice_transcription_real_time_factor", ())] > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("MAILVOICE_")}
    out["MAILVOICE_GENERAL__DATA_DIR"] = str(tmp_path / "data")
    out["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    return out


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailvoice", "serve", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_serve_refuses_unsafe_token_and_address_settings(env: dict[str, str], tmp_path: Path) -> None:
    argv = _serve(env, "--token", TOKEN)
    assert argv.returncode == 1 and "shows in `ps`" in argv.stderr and "--token-file" in argv.stderr
    wide = _serve(env, "--host", "0.0.0.0")
    assert wide.returncode == 1 and "--behind-tls-proxy" in " ".join(wide.stderr.split())
    caps = _serve(env, "--max-connections", "4", "--max-per-client", "5")
    assert caps.returncode == 1 and "per-client cap no larger than the total" in " ".join(caps.stderr.split())
    short = _serve({**env, "MAILVOICE_WEB_TOKEN": "short"})
    assert short.returncode == 1 and "at least 24" in " ".join(short.stderr.split())
    loose = tmp_path / "token"
    loose.write_text(TOKEN)
    loose.chmod(0o644)
    refused = _serve(env, "--token-file", str(loose))
    assert refused.returncode == 1 and f"chmod 600 {loose}" in " ".join(refused.stderr.split())


def test_serve_takes_its_token_from_a_private_file(env: dict[str, str], tmp_path: Path) -> None:
    assert subprocess.run([sys.executable, "-m", "mailvoice", "init"], env=env, timeout=120).returncode == 0
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    port = _free_port()
    cmd = [sys.executable, "-m", "mailvoice", "serve", "--port", str(port), "--token-file", str(token_file)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 120
        while True:
            try:
                status = _http(port, "/healthz")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < end, "serve did not start"
                time.sleep(0.2)
        assert status == (200, "ok\n")
        assert _http(port, "/metrics", TOKEN)[0] == 200
        assert TOKEN not in " ".join(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert f"token from {token_file}" in " ".join(err.split())
    assert TOKEN not in err
