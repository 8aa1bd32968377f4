"""The Starlette app: the dictation page, its two scripts, and the WebSocket that carries audio in and text out.

The socket is refused before the upgrade (HTTP 403) unless the Origin is on the allowlist and the token matches:
websockets and browsers accept any Origin by default, which is cross-site WebSocket hijacking.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailvoice.errors import MailvoiceError
from mailvoice.web.metrics import Metrics, TimedDecoder, monitoring_routes
from mailvoice.web.security import APP_PROTOCOL, AudioRate, Bucket, Limits, token_from_protocols, token_ok

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.websockets import WebSocket

    from mailvoice.config import Settings
    from mailvoice.dictation.runtime import Pipeline
    from mailvoice.store import Store

log = logging.getLogger(__name__)
STATIC = {"app.js": "text/javascript", "worklet.js": "text/javascript", "style.css": "text/css"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
WS_PATH = "/ws"
_FEED_AUDIO = re.compile(r"^/feed/[^/]+/([0-9a-f]{8,64})\.[a-z0-9]{2,4}$")
"""A podcast enclosure; only the item id is audited, never the feed secret before it."""


@dataclass(frozen=True, slots=True)
class WebConfig:
    """What the app needs besides the model."""

    token: str
    origins: frozenset[str]
    limits: Limits = field(default_factory=Limits)


def _static(name: str) -> bytes:
    return importlib.resources.files("mailvoice.web").joinpath("static", name).read_bytes()


class _Guard:
    """ASGI wrapper: checks Origin and token of a WebSocket handshake before the app (and the upgrade) sees it."""

    def __init__(self, app: Any, config: WebConfig, store: Store | None = None) -> None:
        self.app = app
        self.config = config
        self.store = store

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.store is not None and str(scope.get("path", "")).startswith("/feed/"):
            await self._audited_feed(scope, receive, send)
            return
        if scope["type"] == "websocket":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            from mailvoice.web.security import normalise_origin

            origin = normalise_origin(headers.get("origin", ""))
            protocols = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
            why = ""
            if scope.get("path") != WS_PATH:
                why = "unknown path"
            elif origin not in self.config.origins:
                why = "origin not allowed"
            elif not token_ok(token_from_protocols(protocols), self.config.token):
                why = "bad or missing token"
            client = f"web:{(scope.get('client') or ('?',))[0]}"
            if why:
                log.warning("refused a WebSocket handshake from %s: %s", client, why)
                await self._audit("login.failed", f"{WS_PATH} {why}", client, "failed")
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
                return
            await self._audit("login.succeeded", WS_PATH, client, "ok")
        await self.app(scope, receive, send)

    async def _audited_feed(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """A played episode (its first byte range) is audited before it is sent; a 404 is a failed login."""
        client = f"web:{(scope.get('client') or ('?',))[0]}"
        ranges = [v for k, v in scope.get("headers", []) if k.lower() == b"range"]
        first = not ranges or ranges[0].replace(b" ", b"").startswith(b"bytes=0-")
        audio = _FEED_AUDIO.match(str(scope.get("path", "")))

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status in (200, 206) and audio is not None and first:
                    await self._audit("audio.played", audio.group(1), client, "ok")
                elif status == 404:
                    await self._audit("login.failed", "/feed", client, "failed")
            await send(message)

        await self.app(scope, receive, watch)

    async def _audit(self, action: str, target: str, actor: str, outcome: str) -> None:
        if self.store is not None:
            await asyncio.to_thread(self.store.audit, action, target, actor=actor, outcome=outcome)


class _Connection:
    """One browser page: recordings come and go, the draft stays."""

    def __init__(
        self,
        ws: WebSocket,
        settings: Settings,
        pipeline: Pipeline,
        store: Store | None,
        limits: Limits,
        metrics: Metrics,
    ) -> None:
        from mailvoice.dictation.draft import Draft

        self.ws = ws
        self.settings = settings
        self.pipeline = pipeline
        self.store = store
        self.limits = limits
        self.metrics = metrics
        self.draft = Draft()
        self.rate = AudioRate(limits)
        self.text_rate = Bucket(limits.text_per_s, limits.text_burst)
        self.control_rate = Bucket(limits.control_per_s, limits.control_burst)
        self.audio: asyncio.Queue[npt.NDArray[np.float32] | None] | None = None
        self.session_task: asyncio.Task[None] | None = None
        self.send_lock = asyncio.Lock()

    async def send(self, payload: dict[str, object]) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(payload))

    async def _frames(self, queue: asyncio.Queue[npt.NDArray[np.float32] | None]) -> AsyncIterator[Any]:
        while (chunk := await queue.get()) is not None:
            yield chunk

    async def _run_session(self, queue: asyncio.Queue[npt.NDArray[np.float32] | None]) -> None:
        from mailvoice.dictation.events import Final
        from mailvoice.dictation.recognizer import StreamingRecognizer
        from mailvoice.dictation.session import DictationSession

        decoder: Any = TimedDecoder(self.pipeline.decoder, self.metrics)
        recognizer = StreamingRecognizer(decoder, self.pipeline.stream)
        session = DictationSession(recognizer, self.pipeline.worker, self.draft)
        self.metrics.sessions.inc()
        try:
            async for event in session.run(self._frames(queue)):
                if isinstance(event, Final):
                    self.metrics.latency.observe(event.compute_s)
                await self.send(event.to_json())
            await self.send({"type": "stopped", "text": self.draft.text})
        except MailvoiceError as exc:
            await self.send({"type": "error", "message": str(exc)})

    async def start(self) -> None:
        await self.stop()
        self.audio = asyncio.Queue()
        self.session_task = asyncio.create_task(self._run_session(self.audio))

    async def stop(self) -> None:
        if self.audio is not None:
            self.audio.put_nowait(None)
            self.audio = None
        if self.session_task is not None:
            task, self.session_task = self.session_task, None
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def on_audio(self, data: bytes) -> str:
        """Queue one binary frame; a reason string when it breaks a limit (the socket is then closed)."""
        import numpy as np

        if len(data) > self.limits.max_frame_bytes or len(data) % 2:
            return f"audio frame of {len(data)} bytes (limit {self.limits.max_frame_bytes}, even)"
        if not self.rate.take(len(data)):
            return "audio faster than real time"
        if self.audio is not None:
            self.audio.put_nowait(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0)
        return ""

    async def on_text(self, text: str) -> str:
        """Handle one JSON message; a reason string when it breaks a limit (the socket is then closed)."""
        if not self.text_rate.take():
            return "messages faster than the limit"
        try:
            msg = json.loads(text)
        except ValueError:
            await self.send({"type": "error", "message": "messages must be JSON"})
            return ""
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind in ("start", "stop", "send", "save_draft") and not self.control_rate.take():
            return f"{kind} messages faster than the limit"
        await self._dispatch(kind, msg)
        return ""

    async def _dispatch(self, kind: object, msg: Any) -> None:
        from mailvoice.dictation.mailer import Dictated, save_draft, send

        if kind == "start":
            await self.start()
        elif kind == "stop":
            await self.stop()
        elif kind == "edit" and isinstance(msg.get("text"), str):
            self.draft.set_text(msg["text"])
        elif kind in ("send", "save_draft"):
            to = msg.get("to", [])
            to = [to] if isinstance(to, str) else to
            if not isinstance(to, list) or not all(isinstance(a, str) for a in to):
                await self.send({"type": "error", "message": "'to' must be a list of addresses"})
                return
            text_ = msg.get("text", self.draft.text)
            dictated = Dictated(
                text=str(text_), to=tuple(a for a in to if a.strip()), subject=str(msg.get("subject", ""))
            )
            if self.store is None:
                await self.send({"type": "error", "message": "no store: start mailvoice serve with a key"})
                return
            try:
                if kind == "send":
                    stats = await send(self.settings, self.store, dictated)
                    await self.send({"type": "sent", "sent": stats.sent, "retrying": stats.retrying})
                else:
                    folder = await save_draft(self.settings, self.store, dictated)
                    await self.send({"type": "draft_saved", "folder": folder})
                self.draft.set_text("")
            except MailvoiceError as exc:
                await self.send({"type": "error", "message": str(exc)})
        else:
            await self.send({"type": "error", "message": "unknown message"})

    async def serve(self) -> None:
        from starlette.websockets import WebSocketDisconnect

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.max_session_s
        try:
            while loop.time() < deadline:
                try:
                    msg = await asyncio.wait_for(self.ws.receive(), self.limits.idle_timeout_s)
                except TimeoutError:
                    await self.ws.close(code=1001, reason="idle")
                    return
                if msg["type"] == "websocket.disconnect":
                    return
                if msg.get("bytes") is not None:
                    why = self.on_audio(msg["bytes"])
                    if why:
                        log.warning("closing a dictation socket: %s", why)
                        await self.ws.close(code=1009 if "bytes" in why else 1008, reason=why[:120])
                        return
                elif msg.get("text") is not None:
                    if len(msg["text"]) > self.limits.max_text_bytes:
                        await self.ws.close(code=1009, reason="message too large")
                        return
                    why = await self.on_text(msg["text"])
                    if why:
                        log.warning("closing a dictation socket: %s", why)
                        await self.ws.close(code=1008, reason=why)
                        return
            await self.ws.close(code=1001, reason="session too long")
        except WebSocketDisconnect:
            return
        finally:
            if self.session_task is not None:
                self.session_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.session_task


def create_app(settings: Settings, pipeline: Pipeline, config: WebConfig, store: Store | None = None) -> Any:
    """The ASGI app (Starlette wrapped in the handshake guard)."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route, WebSocketRoute

    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }

    async def page(request: Request) -> Response:
        return Response(_static("index.html"), media_type="text/html; charset=utf-8", headers=headers)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response(b"not found", status_code=404)
        return Response(_static(name), media_type=STATIC[name], headers=headers)

    async def socket(ws: WebSocket) -> None:
        await ws.accept(subprotocol=APP_PROTOCOL)
        await _Connection(ws, settings, pipeline, store, config.limits, metrics).serve()

    metrics = Metrics(store)
    routes: list[Any] = [Route("/", page), Route("/static/{name}", static), WebSocketRoute(WS_PATH, socket)]
    routes += monitoring_routes(config.token, metrics, store)
    if store is not None:
        from mailvoice.feed import feed_routes

        shared = store
        routes += feed_routes(settings, lambda: shared)  # the private podcast feed of spoken summaries
    app: Starlette = Starlette(routes=routes)
    return _Guard(app, config, store)
