"""The Celery application: broker, queues and routing from [queue], acks late so a killed worker loses nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from mailvoice.errors import ConfigError

if TYPE_CHECKING:
    from celery import Celery

    from mailvoice.config import QueueSettings, Settings

POLL = "mailvoice.poll"
PROCESS = "mailvoice.process"
SEND = "mailvoice.send"
SUMMARY = "mailvoice.summary"
SWEEP = "mailvoice.sweep"
PING = "mailvoice.ping"


def broker_url(q: QueueSettings) -> str:
    """[queue] broker_url with the password (from password_env / password_file) put in; ConfigError if unset."""
    from mailvoice.config import read_secret

    if not q.broker_url:
        raise ConfigError(
            "setting queue.broker_url is empty: set it to the broker of the scaled-out deployment, "
            "e.g. amqp://mailvoice@127.0.0.1:5672/mailvoice (RabbitMQ) or redis://127.0.0.1:6379/0"
        )
    if not (q.password_env or q.password_file):
        return q.broker_url
    parts = urlsplit(q.broker_url)
    if parts.password:
        raise ConfigError(
            "setting queue.broker_url holds a password: remove it and keep it in "
            "queue.password_env or queue.password_file"
        )
    password = read_secret("queue broker", q.password_env, q.password_file)
    user = quote(parts.username or "", safe="")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def routes(q: QueueSettings) -> dict[str, dict[str, str]]:
    """Which queue each task goes to: transcription apart from mail, so the two can run on different machines."""
    return {
        POLL: {"queue": q.mail_queue},
        SEND: {"queue": q.mail_queue},
        SWEEP: {"queue": q.mail_queue},
        PING: {"queue": q.mail_queue},
        PROCESS: {"queue": q.asr_queue},
        SUMMARY: {"queue": q.tts_queue},
    }


def all_queues(q: QueueSettings) -> list[str]:
    return [q.mail_queue, q.asr_queue, q.tts_queue]


def make_app(settings: Settings, *, with_tasks: bool = True) -> Celery:
    """The app for a worker (with_tasks) or an enqueuer (the scheduler, the benchmark)."""
    from celery import Celery

    q = settings.queue
    url = broker_url(q)
    backend = "rpc://" if url.startswith(("amqp", "pyamqp")) else url
    app = Celery("mailvoice", broker=url, backend=backend, set_as_current=False)
    conf: dict[str, Any] = {
        # At-least-once: a task is acknowledged only after it returned; a worker that dies (SIGKILL, power cut)
        # never acknowledges, so the broker hands the task to another worker. The store makes a repeat harmless.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,  # a worker holds no more than the task in hand
        "task_routes": routes(q),
        "task_default_queue": q.mail_queue,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_expires": 300,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "broker_connection_retry_on_startup": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_enable_remote_control": False,
        # The solo pool cannot answer AMQP heartbeats while a long transcription runs: rely on TCP keepalive.
        "broker_heartbeat": 0,
        # Redis has no consumer acknowledgement: a lost task comes back after this long (RabbitMQ: at once).
        "broker_transport_options": {"visibility_timeout": 3600},
    }
    app.conf.update(conf)
    if with_tasks:
        from mailvoice.scale.tasks import register

        register(app)
    return app
