"""Scheduled spoken summaries: one APScheduler cron job per account, synthesis on its own model thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailvoice.errors import ConfigError, MailvoiceError
from mailvoice.spoken.crontab import cron_trigger

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.engines.base import TtsEngine
    from mailvoice.engines.executor import ModelWorker
    from mailvoice.spoken.summary import SpokenSummary
    from mailvoice.store import Store

log = logging.getLogger(__name__)

__all__ = ["SummaryJob", "cron_trigger", "produce_summary", "schedule_summaries", "summary_jobs"]


@dataclass(frozen=True)
class SummaryJob:
    """One account's schedule."""

    account: str
    cron: str


def summary_jobs(settings: Settings) -> list[SummaryJob]:
    """Each account's cron line: summary.account_cron overrides summary.cron; "off" or empty means none."""
    from mailvoice.runner import contexts

    if not settings.summary.cron.strip() and not settings.summary.account_cron:
        return []
    accounts = list(contexts(settings))
    overrides: dict[str, str] = {}
    for entry in settings.summary.account_cron:
        name, sep, cron = entry.partition("=")
        if not sep or name.strip() not in accounts:
            raise ConfigError(
                f"setting summary.account_cron entry {entry!r} is invalid: expected "
                f"'NAME=CRON' with NAME one of {', '.join(accounts) or '(no accounts)'}"
            )
        overrides[name.strip()] = cron.strip()
    jobs = []
    for account in accounts:
        cron = overrides.get(account, settings.summary.cron).strip()
        if cron and cron.lower() != "off":
            jobs.append(SummaryJob(account, cron))
    return jobs


class _Voice:
    """The TTS engine, loaded on first use inside the worker thread and kept for later summaries."""

    def __init__(self, settings: Settings, factory: Callable[[], TtsEngine] | None) -> None:
        self._settings = settings
        self._factory = factory
        self._engine: TtsEngine | None = None
        self._lock = threading.Lock()

    def get(self) -> TtsEngine:
        with self._lock:
            if self._engine is None:
                if self._factory is not None:
                    self._engine = self._factory()
                else:
                    from mailvoice.engines import load_tts

                    self._engine = load_tts(self._settings.tts, self._settings.general)
            return self._engine


def produce_summary(
    settings: Settings,
    store: Store,
    tts: TtsEngine,
    account: str,
    *,
    send: bool | None = None,
    folder: Path | None = None,
) -> SpokenSummary:
    """Speak one account's summary, seal it (with its mail to the owners) and write it to the folder if set."""
    from mailvoice.spoken.summary import speak_summary, summary_records

    spoken = speak_summary(settings, store, tts, account=account)
    message, out = summary_records(settings, spoken, send=settings.summary.send if send is None else send)
    store.record(messages=(message,), outgoing=(out,) if out is not None else ())
    if message.audio is not None:
        _prepare_episode(settings, store, message.id, message.audio, message.content.audio_type)
    target = folder or settings.summary.folder
    if target is not None:
        write_summary_file(target, spoken, account)
    return spoken


def _prepare_episode(settings: Settings, store: Store, message_id: str, audio: bytes, audio_type: str) -> None:
    """Encode the podcast episode now, on this worker thread, so the first podcast app request finds it ready."""
    from mailvoice.feedaudio import EpisodeAudio

    try:
        EpisodeAudio(settings, settings.feed.format).episode(message_id, audio, audio_type, store.sealer)
    except OSError as exc:  # the summary is recorded and mailed: the feed encodes on first request instead
        log.warning("podcast episode for summary %s not prepared: %s", message_id, exc.strerror)


def write_summary_file(folder: Path, spoken: SpokenSummary, account: str) -> Path:
    """Write the audio into a folder under a dated, sortable name (atomic: never a half-written file)."""
    from mailvoice.audio import extension_for
    from mailvoice.commands.speak import write_atomic
    from mailvoice.store.records import utcnow

    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in account)[:60] or "account"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"summary-{safe}-{utcnow().strftime('%Y%m%d-%H%M%S')}{extension_for(spoken.format)}"
    write_atomic(path, spoken.audio)
    return path


def schedule_summaries(
    scheduler: Any,
    settings: Settings,
    store: Store,
    *,
    tts_factory: Callable[[], TtsEngine] | None = None,
    worker: ModelWorker | None = None,
) -> list[str]:
    """Add a cron job per account to an AsyncIOScheduler; returns the job ids ("summary:<account>").

    Each run synthesizes on a dedicated model thread (never on the loop), records the summary and its mail in one
    transaction, then flushes the outbox.
    """
    from mailvoice.engines.executor import ModelWorker
    from mailvoice.outbox import Outbox

    jobs = summary_jobs(settings)
    if not jobs:
        return []
    voice = _Voice(settings, tts_factory)
    tts_worker = worker or ModelWorker("tts-summary")
    outbox = Outbox(settings, store)

    async def run(account: str) -> None:
        try:
            await tts_worker.run(lambda: produce_summary(settings, store, voice.get(), account))
        except MailvoiceError as exc:
            log.error("scheduled summary for %s failed: %s", account, exc)
            return
        await outbox.flush()

    ids = []
    for job in jobs:
        trigger = cron_trigger(job.cron, settings.summary.timezone, key=f"summary cron for {job.account}")
        job_id = f"summary:{job.account}"
        scheduler.add_job(
            run,
            trigger,
            args=(job.account,),
            id=job_id,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
        )
        ids.append(job_id)
        log.info("summary for %s scheduled: %s", job.account, job.cron)
    return ids
