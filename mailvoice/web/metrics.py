"""`/healthz` (open: says only whether the store answers) and `/metrics` (Prometheus text, bearer token).

Store figures are read at scrape time from plain columns (nothing is decrypted); transcription and dictation
figures are this process's dictation decodes. The mail daemon (`mailvoice run`) is another process: its work shows
here through the store (processed, quarantined, outbox depth).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mailvoice.errors import MailvoiceError
from mailvoice.web.security import token_ok

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from starlette.requests import Request
    from starlette.responses import Response

    from mailvoice.dictation.decoder import Hypothesis, WindowDecoder
    from mailvoice.store import Store

log = logging.getLogger(__name__)
SAMPLE_RATE = 16_000
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


class _StoreCollector:
    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counts = self.store.counts()
        yield CounterMetricFamily(
            "mailvoice_messages_processed", "Source mail items processed", value=counts.ledger.get("done", 0)
        )
        yield CounterMetricFamily(
            "mailvoice_messages_quarantined",
            "Source mail items quarantined",
            value=counts.ledger.get("quarantined", 0),
        )
        yield GaugeMetricFamily(
            "mailvoice_quarantine_open", "Quarantined items still open", value=counts.quarantine.get("open", 0)
        )
        depth = GaugeMetricFamily("mailvoice_outbox_depth", "Outgoing mails not yet sent, by state", labels=["state"])
        for state in ("pending", "sending", "failed"):
            depth.add_metric([state], counts.outbox.get(state, 0))
        yield depth


class _RtfCollector:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        audio, compute = self.metrics.totals()
        yield GaugeMetricFamily(
            "mailvoice_transcription_real_time_factor",
            "Compute seconds per audio second over all decodes so far (below 1: faster than real time)",
            value=compute / audio if audio else 0.0,
        )


class Metrics:
    """This app's registry (never the process-global one: tests start many apps)."""

    def __init__(self, store: Store | None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=False)
        self.audio_s = Counter(
            "mailvoice_transcription_audio_seconds", "Audio seconds decoded (dictation)", registry=self.registry
        )
        self.compute_s = Counter(
            "mailvoice_transcription_compute_seconds", "Seconds spent decoding (dictation)", registry=self.registry
        )
        self.latency = Histogram(
            "mailvoice_dictation_final_latency_seconds",
            "From the end of an utterance (endpoint) to its final text",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sessions = Counter("mailvoice_dictation_sessions", "Dictation recordings started", registry=self.registry)
        self.registry.register(_RtfCollector(self))
        if store is not None:
            self.registry.register(_StoreCollector(store))
        self._lock = threading.Lock()
        self._audio = 0.0
        self._compute = 0.0

    def decoded(self, audio_s: float, compute_s: float) -> None:
        with self._lock:
            self._audio += audio_s
            self._compute += compute_s
        self.audio_s.inc(audio_s)
        self.compute_s.inc(compute_s)

    def totals(self) -> tuple[float, float]:
        with self._lock:
            return self._audio, self._compute

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


class TimedDecoder:
    """The shared WindowDecoder, timing each decode for the real-time factor (runs on the model's thread)."""

    def __init__(self, inner: WindowDecoder, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def decode(
        self, audio: npt.NDArray[np.float32], *, beam_size: int = 1, min_seconds: float = 0.0, context: str = ""
    ) -> Hypothesis:
        t0 = time.perf_counter()
        try:
            return self.inner.decode(audio, beam_size=beam_size, min_seconds=min_seconds, context=context)
        finally:
            self.metrics.decoded(len(audio) / SAMPLE_RATE, time.perf_counter() - t0)

    def decode_final(
        self, audio: npt.NDArray[np.float32], *, beam_size: int, min_seconds: float = 0.0, context: str = ""
    ) -> Hypothesis:
        t0 = time.perf_counter()
        try:
            return self.inner.decode_final(audio, beam_size=beam_size, min_seconds=min_seconds, context=context)
        finally:
            self.metrics.decoded(len(audio) / SAMPLE_RATE, time.perf_counter() - t0)


def bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def monitoring_routes(token: str, metrics: Metrics, store: Store | None) -> list[Any]:
    from starlette.responses import Response
    from starlette.routing import Route

    plain = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

    async def healthz(request: Request) -> Response:
        if store is not None:
            try:
                await asyncio.to_thread(store.counts)
            except MailvoiceError as exc:
                log.warning("healthz: the store does not answer (%s)", type(exc).__name__)
                return Response(b"store unavailable\n", status_code=503, media_type="text/plain", headers=plain)
        return Response(b"ok\n", media_type="text/plain", headers=plain)

    async def scrape(request: Request) -> Response:
        client = f"web:{request.client.host if request.client else '?'}"
        if not token_ok(bearer(request), token):
            if store is not None:
                await asyncio.to_thread(store.audit, "login.failed", "/metrics", actor=client, outcome="failed")
            headers = {**plain, "WWW-Authenticate": 'Bearer realm="mailvoice"'}
            return Response(b"unauthorized\n", status_code=401, media_type="text/plain", headers=headers)
        from prometheus_client import CONTENT_TYPE_LATEST

        body = await asyncio.to_thread(metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers=plain)

    return [Route("/healthz", healthz), Route("/metrics", scrape)]
