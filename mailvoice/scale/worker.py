"""`mailvoice worker`: one Celery worker process consuming the named queues, one task at a time.

The solo pool runs tasks in this process: the models load once and stay, and a SIGKILL kills the consumer
with its task, which the broker then hands to another worker (acks late). Scale by running more processes
(one per core for transcription), on this machine or others.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

from mailvoice.errors import ConfigError

if TYPE_CHECKING:
    from mailvoice.config import Settings

log = logging.getLogger(__name__)


def pick_queues(settings: Settings, wanted: list[str] | None) -> list[str]:
    """Queue names from --queues: "mail", "asr", "tts" (the configured names) or full names; default all."""
    from mailvoice.scale.app import all_queues

    q = settings.queue
    if not wanted:
        return all_queues(q)
    short = {"mail": q.mail_queue, "asr": q.asr_queue, "tts": q.tts_queue}
    out = []
    for name in wanted:
        for part in name.split(","):
            part = part.strip()
            if not part:
                continue
            if part not in short and part not in short.values():
                raise ConfigError(f"--queues {part!r}: expected mail, asr, tts or one of {', '.join(short.values())}")
            out.append(short.get(part, part))
    return out


def run_worker(settings: Settings, queues: list[str] | None = None, name: str | None = None) -> int:
    """Consume until SIGTERM/SIGINT (finishing the task in hand); returns the exit code."""
    from mailvoice.scale.app import make_app
    from mailvoice.scale.tasks import open_state

    chosen = pick_queues(settings, queues)
    app = make_app(settings)
    st = open_state(settings, app)
    hostname = name or f"mailvoice-{os.getpid()}@{socket.gethostname()}"
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    log.info("worker %s consuming %s", hostname, ", ".join(chosen))
    try:
        worker = app.Worker(
            pool="solo",
            concurrency=1,
            queues=chosen,
            hostname=hostname,
            quiet=True,
            without_gossip=True,
            without_mingle=True,
            without_heartbeat=True,
            loglevel=level,
            optimization="fair",
        )
        worker.start()
        return int(worker.exitcode or 0)
    finally:
        st.close()
