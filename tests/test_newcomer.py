"""The newcomer's first hour, end to end: the real `mailvoice` CLI in a subprocess, against real Dovecot and aiosmtpd.

Absence of an optional extra is simulated (the packages are installed here): tests/shims/sitecustomize.py, put first
on the subprocess's PYTHONPATH, makes importing the named modules fail with ModuleNotFoundError.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from servers import SMTP_PASSWORD, SMTP_USER, MailUser, SmtpServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SHIMS = Path(__file__).resolve().parent / "shims"
REAL = Path(__file__).resolve().parent / "data" / "real"


@dataclass
class Cli:
    home: Path
    env: dict[str, str]
    cwd: Path

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailvoice", *args],
            env={**self.env, **(env or {})},
            cwd=self.cwd,
            text=True,
            capture_output=True,
            timeout=timeout,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVOICE_")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("MAILVOICE_TEST_")})  # fixture passwords
    env["MAILVOICE_GENERAL__DATA_DIR"] = str(tmp_path / "data")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"
    yield Cli(tmp_path / "data", env, tmp_path)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _text_mail(subject: str) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Alice <alice@example.org>"
    msg["To"] = "me@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{abs(hash(subject))}@example.org>"
    msg.set_content("See you at the meeting.\n")
    return msg.as_bytes()


def _account_toml(user: MailUser, extra: str = "") -> str:
    return (
        f'[[accounts]]\nname = "work"\nhost = "127.0.0.1"\nport = {user.imaps_port}\nusername = "{user.user}"\n'
        f'password_env = "{user.password_env}"\ntls = "implicit"\nca_file = "{user.cafile}"\n'
        f'address = "me@example.org"\ntimeout = 10.0\n{extra}'
    )


# ------------------------------------------------------------------------------------------------ point 1


def test_init_writes_a_named_config_and_options_are_taken_after_the_verb(cli: Cli) -> None:
    named = cli.cwd / "etc" / "deep" / "mailvoice.toml"
    proc = cli("--config", str(named), "init")
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(named.stat().st_mode) == 0o600 and "[general]" in named.read_text()

    from_env = cli.cwd / "container" / "config.toml"
    proc = cli("init", env={"MAILVOICE_CONFIG": str(from_env)})
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(from_env.stat().st_mode) == 0o600

    # global options after the verb, also on a nested action
    proc = cli("messages", "--config", str(named), "--json")
    assert proc.returncode == 0, proc.stderr
    proc = cli("quarantine", "list", "--config", str(cli.cwd / "missing.toml"))
    assert proc.returncode == 1 and "missing.toml does not exist" in _flat(proc.stderr)


# ------------------------------------------------------------------------------------------------ point 2


def test_demo_is_hermetic_and_shows_the_delivered_transcript(cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    user_cfg_dir = home / ".config" / "mailvoice"
    user_cfg_dir.mkdir(parents=True)
    trap = socket.create_server(("127.0.0.1", 0))  # the "real" mail server the user's config points at
    trap.setblocking(False)
    port = trap.getsockname()[1]
    user_cfg = user_cfg_dir / "config.toml"
    user_cfg.write_text(
        f'[general]\ndata_dir = "{tmp_path / "userdata"}"\n\n'
        f'[[accounts]]\nname = "real"\nhost = "127.0.0.1"\nport = {port}\nusername = "me@example.org"\n'
        f'password_env = "REAL_PW"\ntls = "implicit"\n\n[smtp]\nhost = "127.0.0.1"\nport = {port}\n'
    )
    before = (user_cfg.read_bytes(), user_cfg.stat().st_mtime_ns)
    opens = tmp_path / "opens.log"
    env = {k: v for k, v in cli.env.items() if k not in ("XDG_CONFIG_HOME", "MAILVOICE_GENERAL__DATA_DIR")}
    env.update(
        HOME=str(home),
        REAL_PW="secret",
        MAILVOICE_CONFIG=str(user_cfg),  # even an exported config and override are left alone
        MAILVOICE_SMTP__HOST="127.0.0.1",
        MAILVOICE_HOME=str(tmp_path / "demo"),
        MAILVOICE_DEMO_SETUP="0",
        PYTHONPATH=str(SHIMS),
        MVTEST_WATCH=str(user_cfg_dir),
        MVTEST_OPENLOG=str(opens),
    )
    try:
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "demo.sh")], env=env, text=True, capture_output=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        with pytest.raises(BlockingIOError):
            trap.accept()  # nobody connected to the user's server
    finally:
        trap.close()
    assert not opens.exists(), f"the demo opened the user's config: {opens.read_text()}"
    assert (user_cfg.read_bytes(), user_cfg.stat().st_mtime_ns) == before
    assert sorted(p.name for p in user_cfg_dir.iterdir()) == ["config.toml"]
    assert not (tmp_path / "userdata").exists()

    out = _flat(proc.stderr)
    assert "voicemails transcribed: 1" in out
    delivered = sorted((tmp_path / "demo" / "delivered" / "new").iterdir())
    assert len(delivered) == 1
    assert f"the transcript mail was delivered to {delivered[0]}" in out
    # the mail as shown: the default threading subject, the caller in the body, the transcript
    assert "Subject: Re: [PBX]: New message" in out and "Voicemail from Riverside Dental" in out
    assert "appointment" in out.lower()
    assert b"X-Mailvoice: transcript" in delivered[0].read_bytes()


# ------------------------------------------------------------------------------------------------ point 3


@pytest.mark.servers
def test_first_contact_reports_old_mail_per_folder_and_since_processes_it(cli: Cli, mail_user: MailUser) -> None:
    for i in range(3):
        mail_user.append(_text_mail(f"Old mail {i}"))
    cfg = cli.cwd / "config.toml"
    cfg.write_text(_account_toml(mail_user))
    cli.env[mail_user.password_env] = mail_user.password
    assert cli("--config", str(cfg), "init").returncode == 0

    first = cli("--config", str(cfg), "run", "--once")
    assert first.returncode == 0, first.stderr
    out = _flat(first.stderr)
    assert "WARNING" in out and "INBOX: first contact: 3 older message(s) left as old mail" in out  # the log line
    assert "first contact with work/INBOX: 3 message(s) already there, left as old mail" in out  # the summary
    assert "mailvoice run --once --since YYYY-MM-DD" in out and "general.backlog" in out

    again = cli("--config", str(cfg), "run", "--once", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {
        "voicemails": 0,
        "text": 0,
        "duplicate": 0,
        "quarantined": 0,
        "errors": 0,
        "old_mail": {},
    }
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    back = cli("--config", str(cfg), "run", "--once", "--since", yesterday, "--json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["text"] == 3  # what the advice promises
    mail_user.append(_text_mail("New mail"))
    new = cli("--config", str(cfg), "run", "--once", "--json")
    assert json.loads(new.stdout)["text"] == 1


@pytest.mark.servers
def test_backlog_setting_log_level_and_json_log_lines(cli: Cli, mail_user: MailUser) -> None:
    now = datetime.now(UTC)
    mail_user.append(_text_mail("Quarterly numbers"), when=now - timedelta(days=3))
    mail_user.append(_text_mail("Ancient history"), when=now - timedelta(days=20))
    cfg = cli.cwd / "config.toml"
    cfg.write_text('[general]\nbacklog = "7d"\nlog_level = "info"\n\n' + _account_toml(mail_user))
    cli.env[mail_user.password_env] = mail_user.password
    assert cli("--config", str(cfg), "init").returncode == 0
    proc = cli("run", "--once", "--json", "--config", str(cfg), "--log-format", "json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["text"] == 1 and stats["old_mail"] == {"work/INBOX": 1}
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert {"INFO", "WARNING"} <= {r["level"] for r in records}  # general.log_level = "info" is honoured
    assert all(set(r) >= {"time", "level", "logger", "message"} for r in records)
    logged = "\n".join(r["message"] for r in records)
    assert "Quarterly" not in logged and "alice@example.org" not in logged  # references only

    quiet = cli.cwd / "quiet.toml"
    quiet.write_text('[general]\nlog_level = "ERROR"\n\n' + _account_toml(mail_user).replace('"work"', '"other"'))
    proc = cli("--config", str(quiet), "run", "--once")
    assert proc.returncode == 0 and "WARNING" not in proc.stderr  # the old-mail warning is below ERROR
    assert "left as old mail" in proc.stderr  # ... but the summary still says it

    bad = cli.cwd / "bad.toml"
    bad.write_text('[general]\nbacklog = "a week"\n')
    proc = cli("--config", str(bad), "run", "--once")
    assert proc.returncode == 1 and "general.backlog" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------------------ point 4

EXTRA_CASES = {
    "web": (["serve"], "uvicorn,starlette,websockets", {}),
    "mic-dictate": (["dictate", "--input", "mic", "--to", "a@example.com"], "sounddevice", {}),
    "mic-send": (["send", "--to", "a@example.com", "--record", "--yes"], "sounddevice", {}),
    "coqui": (["speak", "hello there", "-o", "out.wav"], "TTS,torch,torchaudio", {"MAILVOICE_TTS__ENGINE": "coqui"}),
    "scale": (["worker"], "celery,kombu", {"MAILVOICE_QUEUE__BROKER_URL": "amqp://mailvoice@127.0.0.1:9/mv"}),
    "postgres": (
        ["messages"],
        "psycopg,alembic",
        {"MAILVOICE_GENERAL__STORE_URL": "postgresql+psycopg://mailvoice@127.0.0.1:9/mailvoice"},
    ),
}


@pytest.mark.parametrize("case", sorted(EXTRA_CASES))
def test_a_missing_extra_names_the_pip_command_and_exits_2(cli: Cli, case: str) -> None:
    args, blocked, env = EXTRA_CASES[case]
    assert cli("init").returncode == 0
    extra = case.split("-")[0]
    if extra == "coqui":  # a model directory in the shape coqui wants, so the engine gets as far as importing
        voice = cli.cwd / "voice"
        voice.mkdir()
        (voice / "config.json").write_text("{}")
        (voice / "model.pth").write_bytes(b"")
        env = {**env, "MAILVOICE_TTS__VOICE": str(voice)}
    proc = cli(*args, env={**env, "PYTHONPATH": str(SHIMS), "MVTEST_BLOCK": blocked})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"pip install 'mailvoice[{extra}]'" in _flat(proc.stderr)
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------------------ point 8


@pytest.mark.servers
def test_doctor_logs_in_to_imap_and_smtp_and_names_the_fix(
    cli: Cli, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    s = smtp_server.settings()
    cli.env[s.password_env] = SMTP_PASSWORD
    cfg = cli.cwd / "config.toml"
    cfg.write_text(
        f'[smtp]\nhost = "{s.host}"\nport = {s.port}\ntls = "starttls"\nca_file = "{s.ca_file}"\n'
        f'username = "{SMTP_USER}"\npassword_env = "{s.password_env}"\nsender = "bot@example.org"\n\n'
        + _account_toml(mail_user)
    )
    cli.env[mail_user.password_env] = mail_user.password
    assert cli("--config", str(cfg), "init").returncode == 0
    proc = cli("doctor", "--config", str(cfg), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["imap work"]["ok"] and "logged in as" in checks["imap work"]["detail"]
    assert checks["smtp"]["ok"] and f"logged in as {SMTP_USER}" in checks["smtp"]["detail"]
    assert checks["config"]["detail"] == str(cfg)

    wrong = {mail_user.password_env: "not-the-password", s.password_env: "not-the-password"}
    proc = cli("doctor", "--config", str(cfg), "--json", env=wrong)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert doc["ok"] is False
    assert (
        not checks["imap work"]["ok"]
        and f"check the password in {mail_user.password_env}" in (checks["imap work"]["detail"])
    )
    assert not checks["smtp"]["ok"] and f"check the password in {s.password_env}" in checks["smtp"]["detail"]
    assert not smtp_server.handler.messages  # a login check sends nothing


def test_doctor_counts_the_store_without_opening_every_record(cli: Cli) -> None:
    import sqlite3

    maildir = cli.cwd / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for i in range(3):
        (maildir / "new" / f"{1_700_000_000 + i}.M{i}P1.test").write_bytes(_text_mail(f"Mail {i}"))
    cfg = cli.cwd / "config.toml"
    cfg.write_text(f'[[maildirs]]\nname = "home"\npath = "{maildir}"\naddress = "me@example.org"\n')
    assert cli("--config", str(cfg), "init").returncode == 0
    proc = cli("--config", str(cfg), "run", "--once", "--since", "2000-01-01", "--json")
    assert json.loads(proc.stdout)["text"] == 3, proc.stderr
    # Damage a record other than the newest: a doctor that opened every record (as it did) fails; a COUNT does not.
    with sqlite3.connect(cli.home / "mailvoice.db") as db:
        (newest,) = db.execute("SELECT id FROM messages ORDER BY created_at DESC, id LIMIT 1").fetchone()
        (older,) = db.execute("SELECT id FROM messages WHERE id != ? LIMIT 1", (newest,)).fetchone()
        db.execute("UPDATE messages SET payload = ? WHERE id = ?", (b"\x01garbage", older))
    proc = cli("--config", str(cfg), "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["store"]["ok"], checks["store"]
    assert "3 message(s), the key opens the newest" in checks["store"]["detail"]


# ------------------------------------------------------------------------------------------------ point 9


@pytest.mark.servers
def test_send_json_and_the_outbox_listing(cli: Cli, smtp_server: SmtpServer) -> None:
    s = smtp_server.settings()
    cli.env[s.password_env] = SMTP_PASSWORD
    maildir = cli.cwd / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    cfg = cli.cwd / "config.toml"
    cfg.write_text(
        f'[smtp]\nhost = "{s.host}"\nport = {s.port}\ntls = "starttls"\nca_file = "{s.ca_file}"\n'
        f'username = "{SMTP_USER}"\npassword_env = "{s.password_env}"\nsender = "bot@example.org"\n'
        f'retry_base = 600.0\n\n[[maildirs]]\nname = "home"\npath = "{maildir}"\naddress = "me@example.org"\n'
    )
    assert cli("--config", str(cfg), "init").returncode == 0
    assert cli("--config", str(cfg), "outbox").stderr.startswith("outbox is empty")

    smtp_server.handler.mode = "tempfail"
    audio = str(REAL / "wizard-left.wav")
    proc = cli("--config", str(cfg), "send", "--to", "bob@example.org", "--audio", audio, "--yes", "--json")
    assert proc.returncode == 1, proc.stderr  # queued, not sent
    sent = json.loads(proc.stdout)
    assert sent["sent"] is False and sent["queued"] is True and sent["to"] == ["bob@example.org"]
    assert "wizard" in sent["transcript"].lower() and "451" in sent["error"]

    proc = cli("--config", str(cfg), "outbox", "--json")
    (row,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert row["status"] == "retrying" and row["attempts"] == 1 and "451" in row["last_error"]
    assert row["recipients"] == ["bob@example.org"] and row["message_id"] == sent["message_id"]
    table = _flat(cli("--config", str(cfg), "outbox").stdout)
    assert "retrying" in table and "bob@example.org" in table

    smtp_server.handler.mode = "permfail"
    proc = cli("--config", str(cfg), "send", "--to", "carol@example.org", "--audio", audio, "--yes", "--json")
    assert proc.returncode == 1
    rows = {
        r["recipients"][0]: r
        for r in map(json.loads, cli("--config", str(cfg), "outbox", "--json").stdout.split("\n")[:-1])
    }
    assert rows["carol@example.org"]["status"] == "failed" and "554" in rows["carol@example.org"]["last_error"]

    smtp_server.handler.mode = "accept"
    proc = cli("--config", str(cfg), "summary", "--send", "--json", "-o", str(cli.cwd / "summary.ogg"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["sent"] is True and summary["mailed_to"] == ["me@example.org"] and summary["format"] == "ogg"
    assert summary["output"] == str(cli.cwd / "summary.ogg") and summary["duration"] > 0
    assert (cli.cwd / "summary.ogg").read_bytes()[:4] == b"OggS"
