"""`mailvoice bench dictation --sockets N`: N browsers dictating at once into the real `mailvoice serve`.

The server runs as its own process on 127.0.0.1 (the same config, a fresh token); N WebSocket clients each stream
the same synthesized speech at real-time pace, stop, and wait for the session to end. Figures: how many sessions
ended cleanly (a "stopped" message, then a normal close), endpoint-to-final latency over every final, and the
server's resident memory before the sessions and at its peak (VmHWM), so the cost per session shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailvoice.errors import MailvoiceError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from mailvoice.config import Settings

FRAME_S = 0.2
"""Audio per WebSocket frame, sent every FRAME_S seconds (a browser's worklet sends 0.1 to 0.25 s)."""
SESSION_LIMIT_S = 900.0
"""A session that has not ended this long after its start counts as dropped."""


@dataclass(frozen=True)
class SocketsBench:
    """Many dictation sockets at once against one server."""

    sockets: int
    audio_seconds: float
    """Speech streamed per socket."""
    clean: int
    """Sessions that got "stopped" and a normal close."""
    errors: int
    """Sessions that got an error message, an abnormal close, or none of that within the limit."""
    finals: int
    final_p50_s: float
    """Endpoint (speech end + endpoint silence) to final text, over all sockets, median."""
    final_p95_s: float
    wall_s: float
    """From the first connection to the last session's end."""
    server_rss_before_mb: float
    """The server's resident memory with the model loaded, before the sessions."""
    server_rss_peak_mb: float
    """Its peak resident memory (VmHWM) over the whole run."""
    per_socket_mb: float
    """(peak - before) / sockets."""


@dataclass
class _Outcome:
    latencies: list[float]
    clean: bool
    why: str = ""


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _rss_mb(pid: int, field: str) -> float:
    """VmRSS or VmHWM of a process, in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(config: str | None, port: int, token: str, sockets: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "mailvoice", *(["--config", config] if config else []), "serve"]
    env = {**os.environ, "MAILVOICE_WEB_TOKEN": token}
    # every bench client comes from 127.0.0.1: raise the per-address cap (and the total) to the sockets asked for
    caps = ["--max-connections", str(max(100, sockets + 8)), "--max-per-client", str(sockets + 8)]
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port), *caps],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")[-2000:]
            raise MailvoiceError(f"bench: `mailvoice serve` exited with status {proc.returncode}: {err}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return proc
        time.sleep(0.3)
    proc.kill()
    raise MailvoiceError(f"bench: `mailvoice serve` did not listen on 127.0.0.1:{port} within 180 s")


async def _session(url: str, origin: str, token: str, pcm: bytes, limit_s: float) -> _Outcome:
    from websockets.asyncio.client import connect

    from mailvoice.web.security import APP_PROTOCOL, TOKEN_PROTOCOL_PREFIX

    protocols = [APP_PROTOCOL, TOKEN_PROTOCOL_PREFIX + token]
    latencies: list[float] = []
    step = int(FRAME_S * 16000) * 2
    try:
        async with asyncio.timeout(limit_s):
            async with connect(url, origin=origin, subprotocols=protocols, open_timeout=120) as ws:  # type: ignore[arg-type]
                await ws.send(json.dumps({"type": "start"}))
                t0 = time.monotonic()

                async def feed() -> None:
                    for i, start in enumerate(range(0, len(pcm), step)):
                        await asyncio.sleep(max(0.0, t0 + i * FRAME_S - time.monotonic()))
                        await ws.send(pcm[start : start + step])
                    await ws.send(json.dumps({"type": "stop"}))

                feeder = asyncio.create_task(feed())
                stopped = False
                async for message in ws:
                    event = json.loads(message)
                    if event.get("type") == "final":
                        latencies.append(time.monotonic() - (t0 + float(event["endpoint"])))
                    elif event.get("type") == "error":
                        return _Outcome(latencies, False, f"error: {event.get('message')}")
                    elif event.get("type") == "stopped":
                        stopped = True
                        break
                await feeder
            code = ws.close_code
    except TimeoutError:
        return _Outcome(latencies, False, f"no end within {limit_s:.0f} s")
    except OSError as exc:
        return _Outcome(latencies, False, f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # websockets' ConnectionClosed / InvalidStatus: the session was dropped
        return _Outcome(latencies, False, f"{type(exc).__name__}: {exc}")
    if not stopped or code != 1000:
        return _Outcome(latencies, False, f"closed with {code} before the session ended")
    return _Outcome(latencies, True)


def _speech(settings: Settings, seconds: float) -> tuple[npt.NDArray[np.float32], str]:
    from mailvoice.dictation.bench import _script

    return _script(settings, seconds)


def bench_sockets(
    settings: Settings, sockets: int, seconds: float = 4.0, *, config: str | None = None
) -> tuple[SocketsBench, list[str]]:
    """Run the load benchmark (blocking); returns the figures and why each unclean session failed."""
    import numpy as np

    samples, _ = _speech(settings, seconds)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    port, token = _free_port(), secrets.token_urlsafe(24)
    server = _start_server(config, port, token, sockets)
    url, origin = f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}"
    try:
        warm = asyncio.run(_session(url, origin, token, pcm, SESSION_LIMIT_S))  # the model's first calls allocate
        if not warm.clean:
            raise MailvoiceError(f"bench: a single dictation session failed ({warm.why})")
        before = _rss_mb(server.pid, "VmRSS")

        async def everyone() -> list[_Outcome]:
            return await asyncio.gather(*(_session(url, origin, token, pcm, SESSION_LIMIT_S) for _ in range(sockets)))

        start = time.monotonic()
        outcomes = asyncio.run(everyone())
        wall = time.monotonic() - start
        peak = _rss_mb(server.pid, "VmHWM")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if server.stderr is not None:
            server.stderr.close()
    latencies = [t for o in outcomes for t in o.latencies]
    result = SocketsBench(
        sockets=sockets,
        audio_seconds=len(samples) / 16000,
        clean=sum(o.clean for o in outcomes),
        errors=sum(not o.clean for o in outcomes),
        finals=len(latencies),
        final_p50_s=_pct(latencies, 0.5),
        final_p95_s=_pct(latencies, 0.95),
        wall_s=wall,
        server_rss_before_mb=before,
        server_rss_peak_mb=peak,
        per_socket_mb=(peak - before) / max(1, sockets),
    )
    return result, [o.why for o in outcomes if not o.clean]
