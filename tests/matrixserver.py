"""A real Synapse homeserver on 127.0.0.1 for the Matrix tests, and a tiny client-server API client for the
second (human) side of the conversation.

Synapse runs from its own venv (.venv-synapse, made by scripts/setup.sh with the dev extras: its pins would fight
ours): SQLite, a generated config and signing key in a temp dir, registration by shared secret only (the admin
API's HMAC nonce flow, as `register_new_matrix_user` does), rate limits lifted for the test users.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
_LIFTED = "{per_second: 1000, burst_count: 1000}"


def synapse_python() -> Path | None:
    configured = os.environ.get("MAILVOICE_SYNAPSE_PYTHON")
    path = Path(configured) if configured else ROOT / ".venv-synapse" / "bin" / "python"
    return path if path.exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Client:
    """The client-server API over plain HTTP to 127.0.0.1, as any Matrix client speaks it."""

    base: str
    user_id: str = ""
    token: str = ""

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, ctype: str = "") -> Any:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", ctype or "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from exc

    def create_room(self, invite: str, *, encrypted: bool = False) -> str:
        body: dict[str, Any] = {"invite": [invite], "preset": "private_chat"}
        if encrypted:
            body["initial_state"] = [
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
            ]
        return str(self.call("POST", "/_matrix/client/v3/createRoom", body)["room_id"])

    def upload(self, data: bytes, ctype: str) -> str:
        return str(
            self.call("POST", "/_matrix/media/v3/upload?filename=voice.ogg", raw=data, ctype=ctype)["content_uri"]
        )

    def send(self, room: str, content: dict[str, Any]) -> str:
        txn = secrets.token_hex(8)
        path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/send/m.room.message/{txn}"
        return str(self.call("PUT", path, content)["event_id"])

    def messages(self, room: str) -> list[dict[str, Any]]:
        path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/messages?dir=b&limit=200"
        return list(self.call("GET", path)["chunk"])

    def membership(self, room: str, user: str) -> str:
        path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/state/m.room.member/{urllib.parse.quote(user)}"
        try:
            return str(self.call("GET", path).get("membership", ""))
        except AssertionError:
            return ""


class Synapse:
    def __init__(self, workdir: Path, python: Path) -> None:
        self.dir = workdir
        self.python = python
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> Path:
        d = self.dir
        seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        (d / "signing.key").write_text(f"ed25519 a_test {seed}\n", encoding="utf-8")
        config = d / "homeserver.yaml"
        config.write_text(
            f"""server_name: "localhost"
pid_file: {d}/homeserver.pid
listeners:
  - port: {self.port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources: [{{names: [client], compress: false}}]
database: {{name: sqlite3, args: {{database: {d}/homeserver.db}}}}
media_store_path: {d}/media
registration_shared_secret: "{self.secret}"
enable_registration: false
report_stats: false
macaroon_secret_key: "{secrets.token_hex(16)}"
form_secret: "{secrets.token_hex(16)}"
signing_key_path: {d}/signing.key
trusted_key_servers: []
suppress_key_server_warning: true
url_preview_enabled: false
presence: {{enabled: false}}
rc_message: {_LIFTED}
rc_login: {{address: {_LIFTED}, account: {_LIFTED}, failed_attempts: {_LIFTED}}}
rc_joins: {{local: {_LIFTED}}}
rc_invites: {{per_room: {_LIFTED}, per_user: {_LIFTED}}}
""",
            encoding="utf-8",
        )
        return config

    def start(self) -> None:
        config = self._config()
        with (self.dir / "synapse.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [str(self.python), "-m", "synapse.app.homeserver", "-c", str(config)],
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 240
        while True:
            assert self.proc.poll() is None, (self.dir / "synapse.log").read_text(errors="replace")[-3000:]
            try:
                with urllib.request.urlopen(f"{self.base}/_matrix/client/versions", timeout=5):
                    return
            except OSError:
                assert time.monotonic() < deadline, "Synapse did not start"
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def register(self, name: str, password: str) -> Client:
        """A user made by shared secret (HMAC over nonce, name, password), then logged in."""
        anon = Client(self.base)
        nonce = anon.call("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(self.secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), name.encode(), password.encode(), b"notadmin"]))
        body = {"nonce": nonce, "username": name, "password": password, "admin": False, "mac": mac.hexdigest()}
        done = anon.call("POST", "/_synapse/admin/v1/register", body)
        return Client(self.base, str(done["user_id"]), str(done["access_token"]))


def require_synapse() -> Path:
    python = synapse_python()
    if python is None:
        message = "Synapse is not installed (.venv-synapse): run bash scripts/setup.sh dev"
        if os.environ.get("MAILVOICE_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return python
