"""uvicorn with a gate on every TCP connection: a header deadline, an idle deadline, and connection caps.

uvicorn alone keeps a connection that never sends a byte, or sends its headers one byte at a time (slowloris), open
forever, and accepts any number of them. The gate sits in the protocol objects uvicorn creates per connection, so a
refused or expired connection costs no task and never reaches the app. It follows the transport, not the protocol:
an HTTP connection upgraded to a WebSocket keeps its slot and its deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger(__name__)
_OUTQ: int | None = None
if sys.platform == "linux":
    import fcntl
    import termios

    _OUTQ = termios.TIOCOUTQ  # SIOCOUTQ: bytes in the kernel's send queue, not yet acknowledged by the peer
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\nretry-after: 5\r\n\r\n"


@dataclass(frozen=True, slots=True)
class ConnLimits:
    """What one TCP connection may cost the server."""

    header_timeout_s: float = 10.0
    """The request line and headers (a WebSocket handshake too) must arrive within this after the first byte."""
    idle_timeout_s: float = 180.0
    """No byte received for this long aborts any connection (a live WebSocket answers pings well within it); a
    response whose send buffer does not drain at all for this long (the peer stopped reading) too."""
    keep_alive_s: float = 5.0
    """An HTTP connection between requests."""
    max_connections: int = 100
    max_per_client: int = 16
    """Connections from one client address at once (behind a reverse proxy, that is the proxy)."""
    ping_interval_s: float = 20.0
    """WebSocket pings; a peer that does not answer within this again is dropped (half-open sockets)."""


@dataclass(slots=True)
class _Conn:
    host: str
    opened: float
    last_rx: float
    header_deadline: float | None
    busy: bool = False
    """An HTTP response is under way (a long download receives nothing and is not idle)."""
    stalled_since: float | None = None
    """While busy: since when our send buffer has not drained at all (a peer that stopped reading)."""
    buffered: int = 0


class Gate:
    """Counts connections per transport and client address; a periodic sweep aborts expired ones."""

    def __init__(self, limits: ConnLimits) -> None:
        self.limits = limits
        self.conns: dict[asyncio.Transport, _Conn] = {}
        self.per_host: dict[str, int] = {}
        self.refused = 0
        self.expired = 0
        self._sweeping: asyncio.TimerHandle | None = None

    def admit(self, transport: asyncio.Transport, host: str) -> bool:
        if transport in self.conns:
            return True
        if len(self.conns) >= self.limits.max_connections or self.per_host.get(host, 0) >= self.limits.max_per_client:
            self.refused += 1
            log.warning(
                "refused a connection from %s: %d open (cap %d), %d from that address (cap %d)",
                host,
                len(self.conns),
                self.limits.max_connections,
                self.per_host.get(host, 0),
                self.limits.max_per_client,
            )
            return False
        now = time.monotonic()
        self.conns[transport] = _Conn(host, now, now, now + self.limits.header_timeout_s)
        self.per_host[host] = self.per_host.get(host, 0) + 1
        self._schedule()
        return True

    def release(self, transport: asyncio.Transport) -> None:
        conn = self.conns.pop(transport, None)
        if conn is not None:
            left = self.per_host.get(conn.host, 1) - 1
            if left > 0:
                self.per_host[conn.host] = left
            else:
                self.per_host.pop(conn.host, None)

    def received(self, transport: asyncio.Transport, *, in_headers: bool) -> None:
        """Bytes arrived; in_headers while a request's headers are still incomplete."""
        conn = self.conns.get(transport)
        if conn is None:
            return
        conn.last_rx = time.monotonic()
        if not in_headers:
            conn.header_deadline = None
        elif conn.header_deadline is None:
            conn.header_deadline = conn.last_rx + self.limits.header_timeout_s

    def headers_done(self, transport: asyncio.Transport, *, busy: bool) -> None:
        conn = self.conns.get(transport)
        if conn is not None:
            conn.header_deadline = None
            conn.busy = busy
            conn.stalled_since, conn.buffered = None, 0

    def _stalled(self, conn: _Conn, size: int, now: float) -> bool:
        """While we send: True once nothing we sent was taken by the peer for idle_timeout_s."""
        if size == 0 or size < conn.buffered:  # sent, or draining: progress (a slow download is not idle)
            conn.stalled_since, conn.buffered, conn.last_rx = None, size, now
            return False
        conn.buffered = size
        if conn.stalled_since is None:
            conn.stalled_since = now
        return now - conn.stalled_since > self.limits.idle_timeout_s

    def _schedule(self) -> None:
        if self._sweeping is None and self.conns:
            every = max(0.05, min(self.limits.header_timeout_s, self.limits.idle_timeout_s) / 4)
            self._sweeping = asyncio.get_running_loop().call_later(every, self._sweep)

    def _sweep(self) -> None:
        self._sweeping = None
        now = time.monotonic()
        for transport, conn in list(self.conns.items()):
            why = ""
            size = unacknowledged(transport)
            if conn.header_deadline is not None and now > conn.header_deadline:
                why = "headers not complete in time"
            elif conn.busy or size:
                why = "not reading its response" if self._stalled(conn, size, now) else ""
            elif now - conn.last_rx > self.limits.idle_timeout_s:
                why = "idle"
            if why:
                self.expired += 1
                log.info("closing a connection from %s: %s", conn.host, why)
                self.release(transport)
                transport.abort()  # close() would wait for a peer that never reads to drain our buffer
        self._schedule()


class GatedConfig(uvicorn.Config):
    """uvicorn's config carrying the gate its protocol objects share."""

    gate: Gate


def unacknowledged(transport: asyncio.Transport) -> int:
    """Bytes we sent that the peer has not taken yet: asyncio's buffer plus, on Linux, the kernel's send queue.

    It shrinks only when the peer acknowledges data, which a full receive window stops: so it tells a slow
    listener (shrinking) from one that stopped reading (stuck), through megabytes of socket buffers.
    """
    size = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if _OUTQ is not None and sock is not None:
        with contextlib.suppress(OSError, ValueError):
            size += struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0]
    return size


def _host(transport: asyncio.Transport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple | list) and peer else "?"


class GatedH11(H11Protocol):
    """HTTP/1.1 under the gate."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.gate = cast(GatedConfig, self.config).gate
        if not self.gate.admit(transport, _host(transport)):
            transport.write(_BUSY)
            transport.close()
            return
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:  # refused in connection_made
            return
        self.gate.release(self.transport)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        import h11

        self.gate.received(self.transport, in_headers=True)
        super().data_received(data)
        if self.transport.get_protocol() is not self:
            return  # upgraded: the WebSocket protocol owns the connection now
        if self.conn.their_state is not h11.IDLE:
            self.gate.headers_done(self.transport, busy=self.conn.our_state is not h11.DONE)

    def on_response_complete(self) -> None:
        self.gate.headers_done(self.transport, busy=False)
        super().on_response_complete()


class GatedWebSocket(WebSocketsSansIOProtocol):
    """The WebSocket an upgraded connection becomes: same slot, idle deadline still counting."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.gate = cast(GatedConfig, self.config).gate
        self.gate.headers_done(cast(asyncio.Transport, transport), busy=False)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate.release(self.transport)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.gate.received(self.transport, in_headers=False)
        super().data_received(data)


def make_server(app: Any, host: str, port: int, limits: ConnLimits | None = None) -> uvicorn.Server:
    """The uvicorn server mailvoice runs (and its tests start): gated HTTP/1.1 and WebSocket protocols."""
    limits = limits or ConnLimits()
    config = GatedConfig(
        app,
        host=host,
        port=port,
        http=GatedH11,
        ws=GatedWebSocket,
        ws_max_size=300_000,
        ws_per_message_deflate=False,
        ws_ping_interval=limits.ping_interval_s,
        ws_ping_timeout=limits.ping_interval_s,
        timeout_keep_alive=max(1, round(limits.keep_alive_s)),
        h11_max_incomplete_event_size=16 * 1024,
        log_level="warning",
        lifespan="off",
        proxy_headers=False,
        server_header=False,
    )
    config.gate = Gate(limits)
    return uvicorn.Server(config)
