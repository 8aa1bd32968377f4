"""`mailvoice bench scale`: voicemails transcribed per minute by 1 and 2 worker processes, and the queue's cost.

Each run starts real `mailvoice worker` processes (one ASR thread each) on a private SQLite store and private
queues on the configured broker ([queue] broker_url, else RabbitMQ as guest on 127.0.0.1), warms their models up,
queues the same 30-second voicemails as work items and times until all are done. The queue overhead is the round
trip of an empty task through broker and worker against a direct call of the same function.
"""

from __future__ import annotations

import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.store import Store

log = logging.getLogger(__name__)

ITEMS = 8
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
PINGS = 40


@dataclass(frozen=True)
class ScaleBench:
    cores: int
    voicemails: int
    audio_seconds_each: float
    per_minute_1_worker: float
    per_minute_2_workers: float
    speedup_2_vs_1: float
    """Ideal: 2.0 while there is a core per worker."""
    rtf_per_worker: float
    """Wall seconds of one worker per second of audio (1-worker run, one ASR thread)."""
    audio_minutes_per_worker_hour: float
    queue_round_trip_ms: float
    """Median of an empty task: publish, consume, run, result back."""
    direct_call_us: float
    """The same empty function called in-process."""


def _config(base: Path, settings: Settings, queues: tuple[str, str, str], broker: str) -> Path:
    lines = [
        "[general]",
        f'data_dir = "{base}"',
        f'store_url = "sqlite:///{base / "bench.db"}"',
        "",
        "[asr]",
        f'model = "{settings.asr.model}"',
        "threads = 1",
        "",
        "[queue]",
        f'broker_url = "{broker}"',
        f'mail_queue = "{queues[0]}"',
        f'asr_queue = "{queues[1]}"',
        f'tts_queue = "{queues[2]}"',
        "",
        "[[maildirs]]",
        'name = "bench"',
        f'path = "{base / "inbox"}"',
        'address = "bench@example.org"',
        "",
    ]
    path = base / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _queue(store: Store, raws: list[bytes], first_uid: int) -> list[str]:
    from mailvoice.store.records import SourceRef, content_hash, message_id_hash

    ids = []
    for i, raw in enumerate(raws):
        ref = SourceRef(
            "bench", "INBOX", message_id_hash(None, raw), content_hash([raw], raw), uidvalidity=1, uid=first_uid + i
        )
        wid = store.record_queued(ref, raw, len(raw), None)
        assert wid is not None
        ids.append(wid)
    return ids


def _run(
    settings: Settings, workers: int, raws: list[bytes], warmups: list[bytes], broker: str
) -> tuple[float, float | None, float]:
    """(seconds for all raws, median ping round trip in s or None, direct call in s) with N workers."""
    from mailvoice.crypto import Sealer, create_keyring
    from mailvoice.scale.app import PING, PROCESS
    from mailvoice.scale.app import make_app as make
    from mailvoice.scale.tasks import ping
    from mailvoice.store import Store

    with tempfile.TemporaryDirectory(prefix="mailvoice-bench-scale-") as tmp:
        base = Path(tmp)
        prefix = f"bench{secrets.token_hex(4)}"
        queues = (f"{prefix}.mail", f"{prefix}.asr", f"{prefix}.tts")
        cfg = _config(base, settings, queues, broker)
        ring = create_keyring(base / "keys.json")
        store = Store.open(f"sqlite:///{base / 'bench.db'}", Sealer(ring))
        from mailvoice.config import load_settings

        app = make(load_settings(cfg, environ={}), with_tasks=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVOICE_")}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "mailvoice", "--config", str(cfg), "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        try:
            warm = _queue(store, warmups[:workers], 10_000)  # one each: the models load outside the timing
            for wid in warm:
                app.send_task(PROCESS, args=(wid,))
            _wait(store, procs, len(warm))
            ids = _queue(store, raws, 1)
            start = time.perf_counter()
            for wid in ids:
                app.send_task(PROCESS, args=(wid,))
            _wait(store, procs, len(warm) + len(ids))
            elapsed = time.perf_counter() - start
            trip: float | None = None
            if workers == 1:
                trips = []
                for _ in range(PINGS):
                    t0 = time.perf_counter()
                    app.send_task(PING).get(timeout=30)
                    trips.append(time.perf_counter() - t0)
                trip = statistics.median(trips)
            t0 = time.perf_counter()
            for _ in range(10_000):
                ping()
            direct = (time.perf_counter() - t0) / 10_000
            return elapsed, trip, direct
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
            _delete_queues(app, queues)
            app.close()
            store.close()


def _wait(store: Store, procs: list[subprocess.Popen[bytes]], n: int, timeout: float = 900.0) -> None:
    from mailvoice.errors import MailvoiceError

    deadline = time.monotonic() + timeout
    while store.work_counts().get("done", 0) < n:
        if any(p.poll() is not None for p in procs):
            raise MailvoiceError("a benchmark worker exited; run `mailvoice -v worker` with the same config to see why")
        if time.monotonic() > deadline:
            raise MailvoiceError(f"benchmark: not all {n} voicemails were transcribed within {timeout:.0f} s")
        time.sleep(0.05)


def _delete_queues(app: object, queues: tuple[str, ...]) -> None:
    try:
        with app.connection_for_write() as conn:  # type: ignore[attr-defined]
            for q in queues:
                conn.default_channel.queue_delete(q)
    except Exception as exc:  # cleanup only: private queues left behind are harmless
        log.debug("benchmark queues not deleted: %s", exc)


def bench_scale(settings: Settings) -> ScaleBench:
    """Throughput with 1 and 2 worker processes, and the queue round trip (see the module docstring)."""
    from mailvoice.audio import assemble, encode_audio
    from mailvoice.engines import load_tts
    from mailvoice.mailbench import LONG_SCRIPT, _voicemail

    url = DEFAULT_BROKER
    if settings.queue.broker_url:
        from mailvoice.scale.app import broker_url

        url = broker_url(settings.queue)
    clip = assemble(load_tts(settings.tts, settings.general).synthesize(LONG_SCRIPT))
    wav = encode_audio(clip, "wav")
    raws = [_voicemail(i, wav) for i in range(ITEMS)]
    warmups = [_voicemail(1000 + i, wav) for i in range(2)]
    one, trip, direct = _run(settings, 1, raws, warmups, url)
    two, _, _ = _run(settings, 2, raws, warmups, url)
    rtf = one / (ITEMS * clip.duration)
    return ScaleBench(
        cores=os.cpu_count() or 1,
        voicemails=ITEMS,
        audio_seconds_each=round(clip.duration, 1),
        per_minute_1_worker=ITEMS / one * 60,
        per_minute_2_workers=ITEMS / two * 60,
        speedup_2_vs_1=one / two,
        rtf_per_worker=rtf,
        audio_minutes_per_worker_hour=60.0 / rtf,
        queue_round_trip_ms=(trip or 0.0) * 1000,
        direct_call_us=direct * 1e6,
    )
