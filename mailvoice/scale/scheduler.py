"""`mailvoice scheduler`: enqueues only (polls, sends, sweeps, summaries); it opens no mailbox and no store.

Task messages expire after a few intervals, so a backlog of busy workers never piles up stale polls. Two
schedulers side by side (for availability) do no harm: polls take a lease, sends take a lease, and a summary
is recorded once per account and minute slot.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

    from mailvoice.config import Settings

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 60.0


def plan(settings: Settings) -> list[tuple[str, float, tuple[Any, ...]]]:
    """(task, interval seconds, args) of every periodic enqueue, one poll per configured source."""
    from mailvoice.runner import contexts
    from mailvoice.scale.app import POLL, SEND, SWEEP

    intervals = {a.name: a.poll_interval for a in settings.accounts}
    jobs: list[tuple[str, float, tuple[Any, ...]]] = [
        (POLL, intervals.get(name, 10.0), (name,)) for name in contexts(settings)
    ]
    jobs.append((SEND, settings.queue.outbox_interval, ()))
    jobs.append((SWEEP, SWEEP_INTERVAL, ()))
    return jobs


def _enqueue(app: Celery, task: str, interval: float, args: tuple[Any, ...]) -> None:
    try:
        app.send_task(task, args=args, expires=max(3 * interval, 30.0))
    except Exception as exc:  # the broker is down: log, the next tick tries again
        log.error("cannot enqueue %s%s: %s", task, args, exc)


def _summary(app: Celery, account: str) -> None:
    from mailvoice.scale.app import SUMMARY

    slot = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M")
    _enqueue(app, SUMMARY, 3600.0, (account, slot))


def run_scheduler(settings: Settings, stop: threading.Event | None = None) -> int:
    """Enqueue on schedule until SIGTERM/SIGINT (or stop is set)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from mailvoice.scale.app import make_app
    from mailvoice.spoken.schedule import cron_trigger, summary_jobs

    app = make_app(settings, with_tasks=False)
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sched = BackgroundScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}
    )
    now = datetime.now(UTC)
    for task, interval, args in plan(settings):
        sched.add_job(_enqueue, "interval", seconds=interval, args=(app, task, interval, args), next_run_time=now)
    for job in summary_jobs(settings):
        sched.add_job(
            _summary,
            cron_trigger(job.cron, settings.summary.timezone),
            args=(app, job.account),
            misfire_grace_time=3600,
        )
    sched.start()
    log.info("scheduler running: %d periodic job(s)", len(sched.get_jobs()))
    try:
        stop.wait()
    finally:
        sched.shutdown(wait=True)
        app.close()
    return 0
