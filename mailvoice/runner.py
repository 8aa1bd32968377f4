"""The runner: the one place that wires sources, the pipeline and the sinks together.

Threads: each source (IMAP account or Maildir) has its own thread that owns its connection, drains new mail through
the pipeline and then waits (IDLE where the server has it, polling otherwise). The ASR model has its own single worker
thread. The event loop runs only APScheduler: a poll job per source (wakes its thread on the poll interval;
coalesced, one instance) and the outbox job. Nothing blocking runs on the loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mailvoice.crashpoints import crashpoint
from mailvoice.errors import ConfigError, MailvoiceError, TranscriptionError
from mailvoice.logref import log_unexpected
from mailvoice.pipeline import Context, Pipeline, Result

if TYPE_CHECKING:
    from mailvoice.backoff import Backoff
    from mailvoice.config import AccountSettings, MaildirSettings, Settings
    from mailvoice.engines.base import AsrEngine
    from mailvoice.mail.source import Cursor, MailSource
    from mailvoice.store import Store
    from mailvoice.types import AudioClip, Transcript

log = logging.getLogger(__name__)

BATCH = 50


class Transcriber:
    """Decode in the caller's thread, run the model in its own single worker thread (loaded on first use).

    Voicemails that wait together (several sources, or scaled-out workers in one process) are transcribed as one
    batch (the engine's transcribe_many: their windows share encoder and decoder calls); each caller still waits
    for, and gets, only its own transcript.
    """

    def __init__(self, settings: Settings, engine: AsrEngine | None = None) -> None:
        from mailvoice.engines.executor import BatchingWorker

        self._settings = settings
        self._engine = engine
        self._worker: BatchingWorker[AudioClip, Transcript] = BatchingWorker("asr", self._run_many)
        self._load_lock = threading.Lock()

    def _run_many(self, clips: list[AudioClip]) -> list[Transcript]:
        engine = self._get_engine()
        many = getattr(engine, "transcribe_many", None)
        if many is not None and len(clips) > 1:
            return list(many(clips))
        return [engine.transcribe(c) for c in clips]

    def _get_engine(self) -> AsrEngine:
        with self._load_lock:
            if self._engine is None:
                from mailvoice.engines import load_asr

                self._engine = load_asr(self._settings.asr, self._settings.general)
            return self._engine

    def __call__(self, data: bytes, name: str, budget: float | None = None) -> Transcript:
        from mailvoice.audio import load_for_asr

        clip = load_for_asr(data, name=name, settings=self._settings.audio, budget=budget)
        limit = 120.0 + 4.0 * clip.duration
        future = self._worker.submit(clip)
        try:
            return future.result(timeout=limit)
        except FutureTimeout as exc:
            raise TranscriptionError(f"{name}: transcription took longer than {limit:.0f} s") from exc

    def close(self) -> None:
        self._worker.close()


class StoreCursors:
    """The source cursor protocol, persisted in the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, account: str, folder: str) -> Cursor | None:
        from mailvoice.mail.source import Cursor

        row = self._store.get_cursor(account, folder)
        if row is None:
            return None
        return Cursor(uidvalidity=row.uidvalidity, last_uid=row.last_uid, baseline=row.baseline)

    def set(self, account: str, folder: str, cursor: Cursor) -> None:
        from mailvoice.store.records import Cursor as Row

        self._store.save_cursor(
            Row(
                account=account,
                folder=folder,
                uidvalidity=cursor.uidvalidity,
                last_uid=cursor.last_uid,
                baseline=cursor.baseline,
            )
        )


@dataclass(frozen=True, slots=True)
class Binding:
    """One configured source: how to open it and whom its transcripts go to."""

    ctx: Context
    open: Callable[..., MailSource]
    """Makes the source; takes stop=Event (ends its waits early)."""
    poll_interval: float


@dataclass
class Stats:
    delivered: int = 0
    text: int = 0
    duplicate: int = 0
    quarantined: int = 0
    errors: int = 0
    old_mail: dict[str, int] = field(default_factory=dict)
    """"account/folder" -> messages left as old mail at first contact (not transcribed)."""

    def add(self, r: Result) -> None:
        setattr(self, r.status, getattr(self, r.status) + 1)

    def to_json(self) -> dict[str, object]:
        return {
            "voicemails": self.delivered,
            "text": self.text,
            "duplicate": self.duplicate,
            "quarantined": self.quarantined,
            "errors": self.errors,
            "old_mail": dict(self.old_mail),
        }


def _own_address(name: str, address: str, username: str = "") -> str:
    if address:
        return address
    if "@" in username:
        return username
    raise ConfigError(
        f"source {name!r}: set `address` (the mailbox's own address) or `recipients`, so mailvoice "
        "knows where to deliver transcripts"
    )


def _account_context(acc: AccountSettings) -> Context:
    address = acc.address or (acc.username if "@" in acc.username else "")
    if not address and not acc.recipients:
        address = _own_address(acc.name, acc.address, acc.username)
    return Context(account=acc.name, address=address or acc.recipients[0], recipients=acc.recipients or (address,))


def _maildir_context(md: MaildirSettings) -> Context:
    address = md.address or (md.recipients[0] if md.recipients else "")
    if not address:
        raise ConfigError(f"maildir {md.name!r}: set `address` or `recipients`")
    return Context(account=md.name, address=address, recipients=md.recipients or (address,))


def _maildirs(settings: Settings, create_demo: bool) -> list[MaildirSettings]:
    maildirs = list(settings.maildirs)
    if not settings.accounts and not maildirs:
        from mailvoice.demo import demo_source, ensure_demo_mailbox

        maildirs.append(ensure_demo_mailbox(settings) if create_demo else demo_source(settings))
    return maildirs


def contexts(settings: Settings) -> dict[str, Context]:
    """Each configured source's context by name (the demo mailbox's when none is configured)."""
    out = {a.name: _account_context(a) for a in settings.accounts}
    out.update({m.name: _maildir_context(m) for m in _maildirs(settings, create_demo=False)})
    return out


def build_bindings(settings: Settings, store: Store, since: datetime | None = None) -> list[Binding]:
    """A binding per configured account and Maildir; the bundled demo mailbox when none is configured."""
    from mailvoice.mail.imap import ImapSource
    from mailvoice.mail.maildir import MaildirSource

    cursors = StoreCursors(store)
    age = settings.general.backlog_age()
    backlog = (datetime.now(UTC) - age).date() if age is not None else None
    out: list[Binding] = []
    for acc in settings.accounts:
        src = functools.partial(ImapSource, acc, cursors, since=since, backlog=backlog)
        out.append(Binding(_account_context(acc), src, acc.poll_interval))
    demo = not settings.accounts and not settings.maildirs
    for md in _maildirs(settings, create_demo=True):
        # The demo mailbox is made to be processed: every mail in it counts as new.
        md_since = datetime.fromtimestamp(0, UTC) if demo else since
        md_src = functools.partial(MaildirSource, md, cursors, since=md_since, backlog=backlog)
        out.append(Binding(_maildir_context(md), md_src, 10.0))
    return out


class Runner:
    """Drains sources through the pipeline and acknowledges each item only after the store committed it."""

    def __init__(
        self, settings: Settings, store: Store, *, since: datetime | None = None, transcriber: Transcriber | None = None
    ) -> None:
        from mailvoice.outbox import Outbox

        self.settings = settings
        self.store = store
        self.since = since
        self.transcriber = transcriber or Transcriber(settings)
        self.pipeline = Pipeline(settings, store, self.transcriber)
        self.outbox = Outbox(settings, store)
        self.stats = Stats()
        self._stats_lock = threading.Lock()

    def drain(self, source: MailSource, ctx: Context, stop: threading.Event | None = None) -> int:
        """Process everything new in one source; returns how many items were handled.

        Each voicemail is committed to the store on its own, text records of a batch together (one transaction);
        what is committed is then acknowledged at the source in one go
        (a crash in between re-fetches items the ledger already has: they are acknowledged, not redone).
        """
        handled = 0
        while stop is None or not stop.is_set():
            items = source.fetch_new(BATCH)
            if not items:
                break
            done = []
            try:
                try:
                    for item, result in self.pipeline.process_many(items, ctx, stop.is_set if stop else None):
                        done.append(item.ref)
                        with self._stats_lock:
                            self.stats.add(result)
                        log.info("%s: %s %s", item.ref, result.status, result.detail)
                except MailvoiceError as exc:
                    # e.g. the store is unreachable or the disk is full: acknowledge nothing more, retry later
                    log.error(
                        "%d item(s) of the batch not processed, will retry: %s",
                        len(items) - len(done),
                        type(exc).__name__,
                    )
                    log.debug("batch not processed: %s", exc)
                    with self._stats_lock:
                        self.stats.errors += 1
                    raise
            finally:
                if done:
                    source.acknowledge_many(done)
                    crashpoint("acknowledged")
                    handled += len(done)
        return handled

    async def run_once(self) -> Stats:
        """Process what is waiting in every source, deliver the outbox, return the counts."""
        from mailvoice.errors import SourceError

        await asyncio.to_thread(self.store.requeue_sending)
        bindings = build_bindings(self.settings, self.store, self.since)
        for b in bindings:
            try:
                await asyncio.to_thread(self._once, b)
            except SourceError as exc:
                log.error("%s", exc)
                self.stats.errors += 1
            except MailvoiceError as exc:  # one source's trouble must not keep the others or the outbox waiting
                log.error("%s: stopped early: %s", b.ctx.account, exc)
                self.stats.errors += 1
        while True:
            flushed = await self.outbox.flush()
            if flushed.sent == 0:
                break
        return self.stats

    def _once(self, b: Binding) -> None:
        source = b.open()
        try:
            source.connect()
            with self._stats_lock:
                for folder, left in source.old_mail.items():
                    self.stats.old_mail[f"{b.ctx.account}/{folder}" if folder else b.ctx.account] = left
            self.drain(source, b.ctx)
        finally:
            source.close()

    async def run_forever(self, stop: asyncio.Event) -> None:
        """The daemon: until `stop` is set, then finish in-flight work and release every connection."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.store.requeue_sending)
        bindings = build_bindings(self.settings, self.store, self.since)
        scheduler = AsyncIOScheduler(
            event_loop=loop, timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}
        )
        scheduler.add_job(self.outbox.flush, "interval", seconds=15, id="outbox", next_run_time=datetime.now(UTC))
        from mailvoice.spoken.schedule import schedule_summaries

        schedule_summaries(scheduler, self.settings, self.store)  # spoken inbox summaries (summary.cron)

        def kick_outbox() -> None:
            job = scheduler.get_job("outbox")
            if job is not None:
                job.modify(next_run_time=datetime.now(UTC))

        def on_work() -> None:
            loop.call_soon_threadsafe(kick_outbox)

        workers = [SourceThread(b, self, on_work) for b in bindings]
        for w in workers:
            scheduler.add_job(w.wake, "interval", seconds=w.binding.poll_interval, id=f"poll:{w.binding.ctx.account}")
            w.start()
        scheduler.start()
        try:
            await stop.wait()
        finally:
            log.info("stopping: finishing in-flight work")
            scheduler.shutdown(wait=False)
            for w in workers:
                w.shutdown()
            for w in workers:
                await asyncio.to_thread(w.join)
            await asyncio.wait_for(self.outbox.flush(), timeout=30)
            await asyncio.to_thread(self.transcriber.close)


class SourceThread(threading.Thread):
    """Owns one source's connection: drain, wait for change (IDLE or poll), reconnect with backoff."""

    def __init__(self, binding: Binding, runner: Runner, on_work: Callable[[], None]) -> None:
        super().__init__(name=f"source-{binding.ctx.account}", daemon=True)
        self.binding = binding
        self.runner = runner
        self.on_work = on_work
        self.stop = threading.Event()
        self.interrupt = threading.Event()
        """Handed to the source as its stop flag: ends an IDLE or poll wait early (shutdown or scheduled poll)."""

    def wake(self) -> None:
        """The scheduled poll: look now, even when the server offers no IDLE."""
        self.interrupt.set()

    def shutdown(self) -> None:
        self.stop.set()
        self.interrupt.set()

    def run(self) -> None:
        from mailvoice.backoff import Backoff

        backoff = Backoff(base=1.0, cap=300.0)
        while not self.stop.is_set():
            self.interrupt.clear()
            source = self.binding.open(stop=self.interrupt)
            try:
                source.connect()
                self._serve(source, backoff)
            except MailvoiceError as exc:
                delay = backoff.next_delay()
                log.warning(
                    "%s: %s; reconnecting in %.1f s (attempt %d)", self.binding.ctx.account, exc, delay, backoff.attempt
                )
                self.stop.wait(delay)
            except Exception as exc:  # a bug must not kill the daemon's source thread silently
                delay = backoff.next_delay()
                log_unexpected(log, self.binding.ctx.account, exc)
                log.warning(
                    "%s: restarting the source in %.1f s (attempt %d)", self.binding.ctx.account, delay, backoff.attempt
                )
                self.stop.wait(delay)
            finally:
                source.close()

    def _serve(self, source: MailSource, backoff: Backoff) -> None:
        while not self.stop.is_set():
            if self.runner.drain(source, self.binding.ctx, self.stop):
                self.on_work()
            # Only a clean drain ends the backoff: resetting on connect let an item that fails every time
            # (or a store that is down) restart the source at once, forever.
            backoff.reset()
            if self.stop.is_set():
                return
            self.interrupt.clear()
            source.wait_for_change(self.binding.poll_interval)
