"""The bot's Matrix session (device, access token, sync token), kept across restarts in a 0600 file."""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mailvoice.errors import KeyFileError


@dataclass(frozen=True, slots=True)
class Session:
    """What a restart needs to carry on as the same device from where it stopped."""

    user_id: str
    device_id: str
    access_token: str
    next_batch: str = ""
    """The sync token after the last batch whose events are all handled (empty: none yet)."""

    def with_batch(self, token: str) -> Session:
        return replace(self, next_batch=token)


def session_path(data_dir: Path, name: str) -> Path:
    return data_dir / "matrix" / f"{name}.json"


def load_session(path: Path) -> Session | None:
    """The saved session, None when there is none; a file others can read is refused with the chmod to run."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_IMODE(mode) & 0o077:
        raise KeyFileError(
            f"Matrix session file {path} has mode {stat.S_IMODE(mode):04o} and holds an access token; "
            f"run: chmod 600 {path}"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return Session(
            str(doc["user_id"]), str(doc["device_id"]), str(doc["access_token"]), str(doc.get("next_batch", ""))
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(
            f"Matrix session file {path} is unreadable ({type(exc).__name__}); delete it to log in again"
        ) from exc


def save_session(path: Path, session: Session) -> None:
    """Temp file 0600 beside the target, fsync, rename: the old session or the new one, never half of one."""
    path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps(asdict(session)).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
