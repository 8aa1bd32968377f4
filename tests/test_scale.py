"""Scale-out end to end: real `mailvoice worker` and `mailvoice scheduler` processes, PostgreSQL, RabbitMQ,
Dovecot with several accounts and aiosmtpd: every voicemail exactly once at the SMTP server, one IMAP session per
mailbox at a time, and a worker SIGKILLed mid-transcription loses nothing."""

from __future__ import annotations

import secrets
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgutil import need, pg_fresh_url  # noqa: F401  (fixture)
from scaleutil import Cluster, make_cluster
from servers import DovecotServer, MailUser, SmtpServer
from test_mailloop_e2e import transcript_mails, voicemail

pytestmark = [pytest.mark.scale, pytest.mark.servers, pytest.mark.slow]


def _users(
    dovecot: DovecotServer, tls_cert: tuple[Path, Path], n: int, monkeypatch: pytest.MonkeyPatch
) -> list[MailUser]:
    out = []
    for _ in range(n):
        name = f"s{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(12)
        env = f"MAILVOICE_TEST_PW_{name.upper()}"
        monkeypatch.setenv(env, password)
        dovecot.add_user(name, password)
        out.append(MailUser(dovecot, name, password, env, tls_cert[0]))
    return out


@pytest.fixture
def services() -> None:
    need(5672, "RabbitMQ")


@pytest.fixture
def users(dovecot: DovecotServer, tls_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> list[MailUser]:
    return _users(dovecot, tls_cert, 3, monkeypatch)


@pytest.fixture
def cluster(
    services: None,
    tmp_path: Path,
    pg_fresh_url: str,  # noqa: F811
    users: list[MailUser],
    smtp_server: SmtpServer,
) -> Iterator[Cluster]:
    c = make_cluster(tmp_path, pg_fresh_url, users, smtp_server)
    try:
        yield c
    finally:
        c.stop_all()


def _baselined(cluster: Cluster, n: int) -> None:
    """Every mailbox polled once (first contact sets the cursor: mail from now on is new)."""
    cluster.wait_for(
        f"{n} mailbox cursors", lambda: cluster.query("SELECT count(*) FROM cursors")[0][0] == n, timeout=120
    )


def test_two_workers_deliver_each_voicemail_once_one_session_per_mailbox(
    cluster: Cluster, users: list[MailUser], smtp_server: SmtpServer
) -> None:
    cluster.start("worker-1", "worker")
    cluster.start("worker-2", "worker")
    cluster.start("scheduler", "scheduler")
    _baselined(cluster, len(users))
    expected = set()
    for u in users:
        for i in range(2):
            msgid = f"<vm-{u.user}-{i}@pbx.example.com>"
            u.append(voicemail(msgid))
            expected.add(msgid)

    most = Counter[str]()
    observed = 0
    deadline = time.monotonic() + 300
    while len(smtp_server.messages) < len(expected):
        assert time.monotonic() < deadline, f"not all delivered\n{cluster.logs()}"
        for name, proc in cluster.procs.items():
            assert proc.poll() is None, f"{name} exited\n{cluster.logs()}"
        for u in users:
            n = u.sessions()
            observed += n
            most[u.user] = max(most[u.user], n)
    time.sleep(4)  # further polls and sends must add nothing

    replies = Counter(m["In-Reply-To"] for m in transcript_mails(smtp_server))
    assert replies == Counter({msgid: 1 for msgid in expected})
    assert all(v <= 1 for v in most.values()), f"more than one IMAP session on one mailbox: {most}"
    assert observed > 0, "doveadm who never saw a polling session: the probe is broken"
    assert cluster.query("SELECT state, count(*) FROM work_items GROUP BY state") == [("done", len(expected))]
    assert cluster.query("SELECT count(*) FROM ledger WHERE state = 'done'")[0][0] == len(expected)
    processed = [name for name in ("worker-1", "worker-2") if ": delivered" in cluster.log(name)]
    assert processed, cluster.logs()


def test_worker_killed_mid_transcription_task_redone_elsewhere_once(
    cluster: Cluster, users: list[MailUser], smtp_server: SmtpServer
) -> None:
    cluster.start("mail-worker", "worker", "--queues", "mail")
    doomed = cluster.start("asr-doomed", "worker", "--queues", "asr", crash_at="transcribing")
    cluster.start("scheduler", "scheduler")
    _baselined(cluster, len(users))
    users[0].append(voicemail("<vm-killed@pbx.example.com>"))

    cluster.wait_for("the doomed worker to die mid-transcription", lambda: doomed.poll() is not None)
    assert doomed.returncode == -signal.SIGKILL, cluster.logs()
    assert smtp_server.messages == []
    assert cluster.query("SELECT state, attempts FROM work_items") == [("queued", 1)]

    cluster.start("asr-rescuer", "worker", "--queues", "asr")
    cluster.wait_for("the redone transcript to be delivered", lambda: len(smtp_server.messages) >= 1)
    time.sleep(4)
    assert [m["In-Reply-To"] for m in transcript_mails(smtp_server)] == ["<vm-killed@pbx.example.com>"]
    assert cluster.query("SELECT state, attempts FROM work_items") == [("done", 2)]
    assert ": delivered" in cluster.log("asr-rescuer")
