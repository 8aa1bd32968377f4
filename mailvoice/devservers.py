"""A private Dovecot (IMAP, IMAPS, LMTP) on 127.0.0.1 for the tests and `mailvoice bench mail`.

Runs as a child tied to this process (PR_SET_PDEATHSIG plus atexit), from a fresh directory under the system temp
dir, on free ports (see shared/guides/mailservers.md for why each setting is there). Needs Debian's dovecot-imapd,
dovecot-lmtpd and openssl, and root (mail processes run as the `dovecot` user).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

APT_HINT = "install them with: apt-get install -y --no-install-recommends dovecot-imapd dovecot-lmtpd openssl"
MAIL_USER = "dovecot"


def require_programs(*names: str) -> None:
    """Fail (never skip) with the apt command when a server binary is missing."""
    missing = [n for n in names if shutil.which(n) is None and not Path("/usr/sbin", n).exists()]
    if missing:
        raise RuntimeError(f"the server tests need {', '.join(missing)}: {APT_HINT}")


def free_port() -> int:
    """A port nobody listens on right now (bind to port 0, read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed localhost/127.0.0.1 certificate that passes strict verification (Python 3.11-3.13)."""
    require_programs("openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "3650",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    key.chmod(0o600)
    return cert, key


def _die_with_parent() -> None:
    """Runs in the child: the kernel sends SIGTERM when pytest dies, even on SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def wait_for_greeting(
    host: str, port: int, expect: bytes, timeout: float = 10.0, tls: ssl.SSLContext | None = None
) -> None:
    """Block until the server says its greeting (an open port alone is not ready)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0) as raw:
                sock = tls.wrap_socket(raw, server_hostname=host) if tls else raw
                with sock:
                    if sock.recv(200).startswith(expect):
                        return
        except OSError as exc:
            last = exc
        time.sleep(0.02)
    raise RuntimeError(f"no {expect!r} greeting from {host}:{port} within {timeout} s ({last})")


_CONF = """\
instance_name = mailvoice-test-{tag}
base_dir = {dir}/run
state_dir = {dir}/state
listen = 127.0.0.1
protocols = imap lmtp
log_path = {dir}/dovecot.log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_max_userip_connections = 100
default_internal_user = root
default_internal_group = root
default_login_user = dovenull
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{dir}/mail/%n/Maildir
passdb {{
  driver = passwd-file
  # One file per user: Dovecot re-reads a changed passwd-file at most once a second, so appending users to a
  # shared file makes a login right after fail; a new path is always read fresh.
  args = scheme=PLAIN username_format=%n {dir}/users/%n
}}
userdb {{
  driver = static
  args = home={dir}/mail/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


class DovecotServer:
    """A private Dovecot on 127.0.0.1 with IMAP (STARTTLS), IMAPS and LMTP; one per test session."""

    host = "127.0.0.1"

    def __init__(self, cert: Path, key: Path) -> None:
        require_programs("dovecot", "doveadm")
        self.cert, self.key = cert, key
        # Under the system temp dir with 0755: the mail user cannot enter pytest's 0700 tmp_path.
        self.dir = Path(tempfile.gettempdir()) / f"mailvoice-dovecot-{os.getpid()}-{secrets.token_hex(4)}"
        self.dir.mkdir(mode=0o755)
        self.dir.chmod(0o755)
        self.conf = self.dir / "dovecot.conf"
        self.users_dir = self.dir / "users"
        self.users_dir.mkdir(mode=0o755)
        self.mail_root = self.dir / "mail"
        self.mail_root.mkdir(mode=0o755)
        pw = pwd.getpwnam(MAIL_USER)
        self.uid, self.gid = pw.pw_uid, grp.getgrgid(pw.pw_gid).gr_gid
        os.chown(self.mail_root, self.uid, self.gid)
        self.proc: subprocess.Popen[bytes] | None = None
        self.imap_port = self.imaps_port = self.lmtp_port = 0
        self._lock = threading.Lock()

    def start(self, *, same_ports: bool = False) -> None:
        """Start with a fresh base_dir (a stale anvil socket makes logins hang) and wait for the greeting."""
        run = self.dir / "run"
        shutil.rmtree(run, ignore_errors=True)
        if not same_ports:
            self.imap_port, self.imaps_port, self.lmtp_port = free_port(), free_port(), free_port()
        self.conf.write_text(
            _CONF.format(
                tag=secrets.token_hex(3),
                dir=self.dir,
                cert=self.cert,
                key=self.key,
                uid=self.uid,
                gid=self.gid,
                imap=self.imap_port,
                imaps=self.imaps_port,
                lmtp=self.lmtp_port,
            )
        )
        self.proc = subprocess.Popen(
            ["dovecot", "-F", "-c", str(self.conf)],
            preexec_fn=_die_with_parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        atexit.register(self.stop)
        try:
            wait_for_greeting(self.host, self.imap_port, b"* OK")
        except RuntimeError as exc:
            log = (
                (self.dir / "dovecot.log").read_text(errors="replace")[-2000:]
                if (self.dir / "dovecot.log").exists()
                else ""
            )
            self.stop()
            raise RuntimeError(f"{exc}\ndovecot.log tail:\n{log}") from exc

    def _children(self, pid: int) -> list[int]:
        """Pids whose parent is `pid` (from /proc), so they can be ended by id."""
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == pid:
                    out.append(int(entry.name))
        return out

    def stop(self) -> None:
        """SIGTERM and reap. Mail processes serving open sessions outlive the master: end them by pid too."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        children = self._children(proc.pid)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if proc.stderr:
            proc.stderr.close()

    def restart(self) -> None:
        """Stop and start again on the same ports; every open client connection is dropped."""
        self.stop()
        self.start(same_ports=True)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def add_user(self, name: str, password: str) -> None:
        if not name.isalnum():
            raise ValueError(f"test user names are alphanumeric, got {name!r}")
        with self._lock:
            (self.users_dir / name).write_text(f"{name}:{{PLAIN}}{password}::::::\n")

    def doveadm(self, *args: str) -> str:
        """Run doveadm against this instance; raises with its stderr on failure."""
        res = subprocess.run(
            ["doveadm", "-c", str(self.conf), *args], capture_output=True, text=True, timeout=30, check=False
        )
        if res.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}")
        return res.stdout

    def client(self, user: str, password: str, cafile: Path) -> Any:
        """A logged-in IMAPClient over IMAPS, verified against the test CA."""
        from imapclient import IMAPClient

        ctx = ssl.create_default_context(cafile=str(cafile))
        client = IMAPClient(self.host, self.imaps_port, ssl=True, ssl_context=ctx, timeout=30)
        client.login(user, password)
        return client

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        base = self.mail_root / user / "Maildir"
        return base if folder == "INBOX" else base / f".{folder}"
