"""What the terminal shows: the real CLI in a real terminal (tmux), answered with send-keys, read with capture-pane.

User text rendered by rich (prompts, subjects, transcripts, file names) must print as typed: `[s]end` and a subject
`[bold]Budget[/bold]` are not markup.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REAL = Path(__file__).resolve().parent / "data" / "real"


class Terminal:
    """One tmux server on a private socket, a 200x50 window per command."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        if shutil.which("tmux") is None:
            raise RuntimeError("the terminal tests need tmux: apt-get install tmux (scripts/setup.sh dev does)")
        self.socket = f"mailvoice-test-{secrets.token_hex(4)}"
        self.env, self.cwd = env, cwd

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True, timeout=30
        ).stdout

    def start(self, *argv: str) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        cmd = f"cd {shlex.quote(str(self.cwd))} && env -i {exports} {' '.join(map(shlex.quote, argv))}"
        self._tmux("new-session", "-d", "-s", "t", "-x", "200", "-y", "50", f"{cmd}; echo EXIT=$?; sleep 600")

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-t", "t", "-S", "-200")

    def wait_for(self, text: str, limit: float = 300) -> str:
        """Poll the screen until `text` shows (a wait for an event, not a measured time)."""
        deadline = time.monotonic() + limit
        while True:
            shown = self.screen()
            if text in shown:
                return shown
            if "EXIT=" in shown or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never showed; the screen:\n{shown}")
            time.sleep(0.2)

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def term(tmp_path: Path) -> Iterator[Terminal]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")}
    env.update(
        MAILVOICE_GENERAL__DATA_DIR=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        TERM="xterm-256color",
        PYTHONUNBUFFERED="1",
    )
    t = Terminal(env, tmp_path)
    try:
        yield t
    finally:
        t.close()


def _mv(*args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "mailvoice", *args)


def test_dictate_prompt_prints_its_brackets_and_takes_the_answer(term: Terminal) -> None:
    subprocess.run(
        _mv("init"), env={**os.environ, **term.env}, cwd=term.cwd, check=True, capture_output=True, timeout=120
    )
    term.start(*_mv("dictate", "--input", str(REAL / "wizard-left.wav"), "--fast", "--to", "bob@example.org"))
    shown = term.wait_for("without sending?")
    assert "[s]end, save [d]raft, or [q]uit without sending?" in shown
    term.keys("q", "Enter")
    shown = term.wait_for("EXIT=")
    assert "EXIT=0" in shown
    assert "sent" not in shown.split("without sending?")[-1].replace("EXIT", "")  # quit: nothing sent


def test_subjects_with_brackets_print_as_typed_in_the_table_and_the_send_review(term: Terminal, tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Alice <alice@example.org>"
    msg["To"] = "me@example.org"
    msg["Subject"] = "[red]Alert[/red] and [bold]numbers[/bold]"
    msg.set_content("Body.\n")
    (maildir / "new" / f"{int(time.time())}.M1P1.test").write_bytes(msg.as_bytes())
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[[maildirs]]\nname = "home"\npath = "{maildir}"\naddress = "me@example.org"\n')
    env = {**os.environ, **term.env}
    for args in (("init",), ("run", "--once", "--since", "2000-01-01")):
        subprocess.run(_mv("--config", str(cfg), *args), env=env, cwd=tmp_path, check=True, timeout=300)

    term.start(*_mv("--config", str(cfg), "messages"))
    shown = term.wait_for("EXIT=")
    assert "[red]Alert[/red] and [bold]numbers[/bold]" in " ".join(shown.split())

    term.close()
    term.socket += "b"
    audio = tmp_path / "[draft] take 1.wav"
    audio.write_bytes((REAL / "wizard-left.wav").read_bytes())
    subject = "[bold]Budget[/bold] review"
    term.start(
        *_mv("--config", str(cfg), "send", "--to", "bob@example.org", "--subject", subject, "--audio", str(audio))
    )
    shown = term.wait_for("Send this voice email? [y/N]")
    assert "Subject: [bold]Budget[/bold] review" in shown
    assert "Transcript:" in shown and "wizard" in shown.lower()
    term.keys("n", "Enter")
    shown = term.wait_for("EXIT=")
    assert "not sent" in shown and "EXIT=1" in shown
