"""The task bodies and the per-process state a worker keeps (store, models): registered on the Celery app."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailvoice.crashpoints import crashpoint
from mailvoice.errors import ConfigError, SourceError, StoreError

if TYPE_CHECKING:
    from celery import Celery

    from mailvoice.config import Settings
    from mailvoice.engines.base import TtsEngine
    from mailvoice.pipeline import Context, Pipeline
    from mailvoice.runner import Binding, Transcriber
    from mailvoice.store import Store
    from mailvoice.types import Transcript

log = logging.getLogger(__name__)


@dataclass
class WorkerState:
    """What one worker process opens once and keeps: the store, the pipeline, the models (loaded on first use)."""

    settings: Settings
    store: Store
    app: Celery
    transcriber: Transcriber
    pipeline: Pipeline
    bindings: dict[str, Binding]
    contexts: dict[str, Context]
    lock_dir: Path
    _tts: TtsEngine | None = field(default=None, repr=False)
    _tts_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def transcribe(self, data: bytes, name: str, budget: float | None = None) -> Transcript:
        crashpoint("transcribing")
        return self.transcriber(data, name, budget)

    def tts(self) -> TtsEngine:
        with self._tts_lock:
            if self._tts is None:
                from mailvoice.engines import load_tts

                self._tts = load_tts(self.settings.tts, self.settings.general)
            return self._tts

    def enqueue(self, name: str, *args: Any, **options: Any) -> None:
        self.app.send_task(name, args=args, **options)

    def close(self) -> None:
        self.transcriber.close()
        self.store.close()


_state: WorkerState | None = None


def open_state(settings: Settings, app: Celery) -> WorkerState:
    """Open this process's store and pipeline (the worker calls it once before consuming)."""
    global _state
    from mailvoice.crypto import Sealer, load_key
    from mailvoice.pipeline import Pipeline
    from mailvoice.runner import Transcriber, build_bindings
    from mailvoice.store import Store

    sealer = Sealer(load_key(settings.general.resolved_key_file()))
    store = Store.open(
        settings.general.resolved_store_url(), sealer, keep_audio=settings.delivery.keep_audio, recover=False
    )
    transcriber = Transcriber(settings)
    bindings = {b.ctx.account: b for b in build_bindings(settings, store)}
    st = WorkerState(
        settings=settings,
        store=store,
        app=app,
        transcriber=transcriber,
        pipeline=Pipeline(settings, store, lambda d, n, b: st.transcribe(d, n, b)),
        bindings=bindings,
        contexts={k: b.ctx for k, b in bindings.items()},
        lock_dir=settings.general.data_dir / "locks",
    )
    _state = st
    return st


def state() -> WorkerState:
    if _state is None:
        raise RuntimeError("mailvoice tasks run inside `mailvoice worker` (open_state was not called)")
    return _state


# -- task bodies ------------------------------------------------------------------------------------------------


def poll(account: str) -> str:
    """Take a mailbox's new mail in, holding its cluster-wide lease (one IMAP session per mailbox)."""
    from mailvoice.scale.app import PROCESS
    from mailvoice.scale.intake import drain

    st = state()
    binding = st.bindings.get(account)
    if binding is None:
        raise ConfigError(f"poll task for unknown source {account!r}: the worker's config lacks it")
    with st.store.lease(f"mailbox:{account}", st.lock_dir) as held:
        if not held:
            return "busy"
        source = binding.open()
        try:
            source.connect()
            n = drain(st.store, st.pipeline, source, binding.ctx, lambda wid: st.enqueue(PROCESS, wid))
        except SourceError as exc:
            log.warning("%s: %s; next poll retries", account, exc)
            return "unreachable"
        finally:
            source.close()
    return f"took in {n}"


def process(work_id: str) -> str:
    """Run the pipeline's stages on a queued item; a repeat (redelivery) finds it done and does nothing."""
    from mailvoice.mail.source import SourceItem, SourceRef
    from mailvoice.scale.app import SEND

    st = state()
    item = st.store.get_work(work_id)
    if item is None:
        log.warning("work item %s does not exist; dropping its task", work_id)
        return "missing"
    if not st.store.start_work(work_id):
        return "duplicate"
    ctx = st.contexts.get(item.account)
    if ctx is None:
        raise ConfigError(f"work item {work_id} is from source {item.account!r}, which this worker's config lacks")
    source_item = SourceItem(
        ref=SourceRef(item.account, item.folder, item.uidvalidity, item.uid, item.key),
        raw=item.raw,
        size=item.size,
        internal_date=item.internal_date,
    )
    result = st.pipeline.process(source_item, ctx, work_id=work_id)
    log.info("work item %s: %s %s", work_id, result.status, result.detail)
    if result.status == "delivered":
        st.enqueue(SEND)
    return result.status


def send() -> int:
    """Send what the outbox has due, holding the cluster's outbox lease (so 'sending' rows are a dead sender's)."""
    from mailvoice.outbox import Outbox

    st = state()
    with st.store.lease("outbox", st.lock_dir) as held:
        if not held:
            return 0
        if n := st.store.requeue_sending():
            log.warning("outbox: %d mail(s) a stopped sender left mid-send are queued again", n)
        outbox = Outbox(st.settings, st.store)

        async def flush_all() -> int:
            total = 0
            while (stats := await outbox.flush()).sent:
                total += stats.sent
            return total

        return asyncio.run(flush_all())


def summary(account: str, slot: str) -> str:
    """Speak one account's scheduled summary, recorded once per (account, slot) however often the task runs."""
    from mailvoice.scale.app import SEND
    from mailvoice.spoken.schedule import write_summary_file
    from mailvoice.spoken.summary import speak_summary, summary_records

    st = state()
    s = st.settings
    spoken = speak_summary(s, st.store, st.tts(), account=account)
    message, out = summary_records(s, spoken, send=s.summary.send)
    outcome = st.store.record_once(f"summary:{account}:{slot}", (message,), (out,) if out is not None else ())
    if outcome == "recorded":
        if s.summary.folder is not None:
            write_summary_file(s.summary.folder, spoken, account)
        st.enqueue(SEND)
    return outcome


def sweep() -> int:
    """Enqueue again the queued items whose task was lost (its publisher died before the broker had it)."""
    from mailvoice.scale.app import PROCESS
    from mailvoice.store.records import utcnow

    st = state()
    ids = st.store.claim_stale_work(utcnow() - timedelta(seconds=st.settings.queue.requeue_after))
    for wid in ids:
        st.enqueue(PROCESS, wid)
    if ids:
        log.warning("sweep: %d queued item(s) enqueued again", len(ids))
    return len(ids)


def ping() -> str:
    """An empty task: the benchmark's queue round trip."""
    return "pong"


def register(app: Celery) -> None:
    """Register every task on app under its stable name; infrastructure errors retry with backoff."""
    from mailvoice.scale import app as names

    # A store outage retries with backoff; anything else fails the task (a queued item is swept up later).
    retry: dict[str, Any] = {
        "autoretry_for": (StoreError,),
        "retry_backoff": 2,
        "retry_backoff_max": 300,
        "retry_jitter": True,
        "max_retries": 20,
    }
    app.task(name=names.POLL, **retry)(poll)
    app.task(name=names.PROCESS, **retry)(process)
    app.task(name=names.SEND, **retry)(send)
    app.task(name=names.SUMMARY, **retry)(summary)
    app.task(name=names.SWEEP, **retry)(sweep)
    app.task(name=names.PING, ignore_result=False)(ping)
