"""Browser dictation end to end: headless Debian Chromium with a fake microphone playing synthesized speech.

The only fake is the sound card (Chromium's --use-file-for-fake-audio-capture); the page, its AudioWorklet, the
WebSocket, the streaming recognizer, the store, the outbox and the SMTP server (aiosmtpd, STARTTLS + AUTH) are real.
Needs Debian `chromium` (apt) and Playwright from PyPI driving it; no browser download.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import replace
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from servers import SmtpServer, free_port
from speech import silence, speak, wer

from mailvoice.config import GeneralSettings, Settings
from mailvoice.crypto import Sealer, create_keyring
from mailvoice.dictation.runtime import Pipeline
from mailvoice.store import Store
from mailvoice.web.app import WebConfig, create_app
from mailvoice.web.security import Limits, allowed_origins

pytestmark = [pytest.mark.slow, pytest.mark.servers]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
BODY = "Hello Bob, the quarterly report is ready for your review."
TOKEN = "browser-test-token-0123456789"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("the browser test needs Debian chromium: apt-get install -y chromium chromium-driver")
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int = 16_000) -> None:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


class Server:
    """The server `mailvoice serve` runs (gated uvicorn) in a thread on a free 127.0.0.1 port."""

    def __init__(self, app: Any) -> None:
        from mailvoice.web.server import make_server

        self.port = free_port()
        self.server = make_server(app, "127.0.0.1", self.port)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    data = Path(tempfile.mkdtemp(prefix="mailvoice-browser-"))
    p = Pipeline(Settings(general=GeneralSettings(data_dir=data)))
    yield p
    p.close()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    ring = create_keyring(tmp_path / "keys.json")
    with Store.open(f"sqlite:///{tmp_path / 'mv.db'}", Sealer(ring)) as s:
        yield s


def test_dictate_and_send_from_the_browser(
    tmp_path: Path, pipeline: Pipeline, store: Store, smtp_server: SmtpServer
) -> None:
    from playwright.sync_api import sync_playwright

    speech = np.concatenate([speak(BODY).samples, silence(1.2), speak("Send it.").samples, silence(2.0)])
    wav = tmp_path / "mic.wav"
    write_wav(wav, speech)
    settings = Settings(general=GeneralSettings(data_dir=tmp_path), smtp=smtp_server.settings())
    app = create_app(settings, pipeline, WebConfig(TOKEN, frozenset(), Limits()), store)
    with Server(app) as server:
        app.config = replace(app.config, origins=allowed_origins("127.0.0.1", server.port))
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=chromium(),
                headless=True,
                args=[*FLAGS, f"--use-file-for-fake-audio-capture={wav}%noloop"],
            )
            try:
                page = ctx.pages[0] if ctx.pages else ctx.new_page()
                page.goto(f"http://127.0.0.1:{server.port}/#token={TOKEN}")
                page.wait_for_function(
                    "document.getElementById('status').textContent.startsWith('Connected')", timeout=15_000
                )
                assert "token" not in page.url  # the fragment is removed once read
                page.fill("#to", "bob@example.org")
                page.fill("#subject", "Quarterly report")
                page.click("#record")
                deadline = time.monotonic() + len(speech) / 16_000 + 30
                partials: set[str] = set()
                while not smtp_server.messages and time.monotonic() < deadline:
                    live = (page.text_content("#live") or "").strip()
                    if live:
                        partials.add(live)
                    page.wait_for_timeout(100)
                page.wait_for_timeout(300)
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "browser-dictation.png"), full_page=True)
                status = page.text_content("#status") or ""
                shown = page.input_value("#text")
            finally:
                ctx.close()
    assert smtp_server.messages, f"no mail reached the SMTP server (page status: {status!r})"
    received = smtp_server.messages[0]
    assert received.recipients == ("bob@example.org",)
    assert received.tls and received.authenticated
    mail = message_from_bytes(received.raw, policy=policy.default)
    assert mail["Subject"] == "Quarterly report"
    body = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert wer(BODY, body) <= 0.15, body
    assert "send it" not in body.lower()
    assert status == "Sent."
    assert shown == body.strip()  # what the page showed is what was sent
    assert partials, "no partial text appeared while speaking"
    assert any(len(p.split()) >= 3 and wer(BODY[: len(p) + 10], p) < 0.5 for p in partials), partials
    stored = store.list_messages(kind="dictation")
    assert len(stored) == 1 and stored[0].content.text == body.strip()
