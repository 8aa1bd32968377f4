"""A scaled-out mailvoice for the tests: one config (PostgreSQL store, RabbitMQ queues of its own), and the real
`mailvoice worker` / `mailvoice scheduler` CLI as subprocesses."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pgutil import BROKER_PASSWORD, BROKER_URL
from servers import MailUser, SmtpServer
from sqlalchemy import create_engine, text
from test_mailloop_e2e import write_config


@dataclass
class Cluster:
    """Config, environment and the processes started from it (stopped by stop_all)."""

    home: Path
    config: Path
    env: dict[str, str]
    store_url: str
    queues: tuple[str, str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mailvoice", "--config", str(self.config), *args]

    def start(self, name: str, *args: str, crash_at: str | None = None) -> subprocess.Popen[bytes]:
        env = dict(self.env)
        if crash_at:
            env["MAILVOICE_TEST_CRASH_AT"] = crash_at
        with open(self.home / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(self.cmd("-v", *args), env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- {n} (rc {p.poll()}) ---\n{self.log(n)[-4000:]}" for n, p in self.procs.items())

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._delete_queues()

    def _delete_queues(self) -> None:
        from kombu import Connection

        try:
            with Connection(BROKER_URL, password=BROKER_PASSWORD, connect_timeout=5) as conn:
                channel = conn.default_channel
                for q in self.queues:
                    channel.queue_delete(q)
        except Exception:  # cleanup only: a queue left behind is harmless, and never shared
            pass

    def query(self, sql: str) -> list[tuple[object, ...]]:
        engine = create_engine(self.store_url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql)).all()]
        finally:
            engine.dispose()

    def wait_for(self, what: str, predicate: object, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"timed out waiting for {what}\n{self.logs()}"
            time.sleep(0.2)


def make_cluster(
    tmp_path: Path, store_url: str, users: list[MailUser], smtp: SmtpServer, poll_interval: float = 1.0
) -> Cluster:
    home = tmp_path / "home"
    home.mkdir()
    prefix = f"t{secrets.token_hex(4)}"
    queues = (f"{prefix}.mail", f"{prefix}.asr", f"{prefix}.tts")
    s = smtp.settings()
    cfg = tmp_path / "config.toml"
    write_config(
        cfg,
        {
            "general": {"data_dir": str(home), "store_url": store_url},
            "asr": {"threads": 1},
            "smtp": {
                "host": s.host,
                "port": s.port,
                "tls": s.tls,
                "ca_file": str(s.ca_file),
                "username": s.username,
                "password_env": s.password_env,
                "sender": s.sender,
                "timeout": 10.0,
                "retry_base": 0.5,
                "retry_cap": 1.0,
            },
            "queue": {
                "broker_url": BROKER_URL,
                "password_env": "MAILVOICE_TEST_BROKER_PW",
                "mail_queue": queues[0],
                "asr_queue": queues[1],
                "tts_queue": queues[2],
                "outbox_interval": 1.0,
                "requeue_after": 600.0,
            },
        },
        [
            {
                "name": f"acct-{u.user}",
                "host": u.host,
                "port": u.imaps_port,
                "tls": "implicit",
                "ca_file": str(u.cafile),
                "username": u.user,
                "password_env": u.password_env,
                "address": f"{u.user}@example.org",
                "poll_interval": poll_interval,
                "timeout": 10.0,
            }
            for u in users
        ],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVOICE_")}
    for u in users:
        env[u.password_env] = u.password
    env["MAILVOICE_TEST_SMTP_PASSWORD"] = os.environ["MAILVOICE_TEST_SMTP_PASSWORD"]
    env["MAILVOICE_TEST_BROKER_PW"] = BROKER_PASSWORD
    env["PYTHONUNBUFFERED"] = "1"
    cluster = Cluster(home, cfg, env, store_url, queues)
    init = subprocess.run(cluster.cmd("init"), env=env, capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    # The deploy step that migrates the shared database before any worker starts (workers would do it too).
    migrate = subprocess.run(
        [sys.executable, "-m", "mailvoice.store.migrations", store_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrate.returncode == 0 and "store schema at" in migrate.stdout, migrate.stderr
    return cluster
