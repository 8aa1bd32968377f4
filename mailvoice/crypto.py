"""Keys and sealing: every secret the store holds is AES-GCM sealed to its record's identity.

Key file (``keys.json``, mode 0600, made by ``mailvoice init``)::

    {"version": 1, "active": "<key id>", "keys": {"<key id>": "<base64 of 32 bytes>", ...}}

For containers the key may come from the environment instead: ``MAILVOICE_KEY`` holds one base64 32-byte key
(or several, comma-separated, the first active); its key id is derived from a hash of the key. The CLI
calls :func:`scrub_environment` at start-up, which moves the value out of ``os.environ`` so that no child
process (ffmpeg, a mail hook, ...) inherits it. The kernel's copy in ``/proc/<pid>/environ`` cannot be
scrubbed and stays readable by the same user and root: prefer the key file where you can.

Sealed blob: ``0x01 | len(key id) | key id | 96-bit nonce | ciphertext+tag``. The associated data is the blob
header plus the caller's record identity (see :func:`record_aad`), so a ciphertext moved to another row or
field, a flipped bit, or a key id that is not in the keyring all raise UnsealError: never wrong text.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import secrets
import stat
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailvoice.errors import KeyFileError, UnsealError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

KEY_ENV = "MAILVOICE_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
BLOB_VERSION = 1
_TAG_BYTES = 16
_captured_env_key: str | None = None


def key_id_for(key: bytes) -> str:
    """A stable, non-secret name for a key, so records can say which key sealed them."""
    return hashlib.sha256(b"mailvoice/key-id|" + key).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class Keyring:
    """The keys that can open records, and the one that seals new ones."""

    active: str
    """Key id used for sealing."""
    keys: Mapping[str, bytes] = field(repr=False)
    """Every known key by id (old ones stay until all records are re-sealed)."""
    source: Path | None = None
    """The key file it came from; None for a key from the environment."""

    def key(self, key_id: str) -> bytes | None:
        """The key with that id, or None."""
        return self.keys.get(key_id)

    def rotate(self, path: Path) -> Keyring:
        """Add a fresh key, make it active and write the key file atomically; returns the new keyring."""
        key = secrets.token_bytes(KEY_BYTES)
        new_id = key_id_for(key)
        ring = Keyring(active=new_id, keys={**self.keys, new_id: key}, source=path)
        _write_atomic(path, ring)
        log.info("key file %s: new active key %s (%d keys)", path, new_id, len(ring.keys))
        return ring

    def retire(self, path: Path, key_ids: Iterable[str]) -> Keyring:
        """Drop keys no record uses any more and write the key file atomically; the active key stays."""
        drop = set(key_ids) - {self.active}
        ring = Keyring(active=self.active, keys={k: v for k, v in self.keys.items() if k not in drop}, source=path)
        _write_atomic(path, ring)
        log.info("key file %s: retired %d key(s)", path, len(self.keys) - len(ring.keys))
        return ring


def _encode(ring: Keyring) -> bytes:
    doc = {
        "version": 1,
        "active": ring.active,
        "keys": {k: base64.b64encode(v).decode("ascii") for k, v in ring.keys.items()},
    }
    return json.dumps(doc, indent=2).encode("utf-8") + b"\n"


def _make_private_dir(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_fd(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def create_keyring(path: Path) -> Keyring:
    """Create a new key file holding one fresh key; mode 0600 from the first byte, never overwriting."""
    path = Path(path)
    _make_private_dir(path.parent)
    key = secrets.token_bytes(KEY_BYTES)
    ring = Keyring(active=key_id_for(key), keys={key_id_for(key): key}, source=path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(
            f"key file {path} already exists; refusing to overwrite it (it may hold the only copy of your keys)"
        ) from exc
    try:
        os.fchmod(fd, 0o600)
        _write_fd(fd, _encode(ring))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    log.info("created key file %s with key %s", path, ring.active)
    return ring


def _write_atomic(path: Path, ring: Keyring) -> None:
    """Temp file 0600 beside the target, fsync, rename, fsync the directory: old or new file, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        _write_fd(fd, _encode(ring))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _decode_key(text: object, where: str) -> bytes:
    try:
        key = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError(f"{where}: a key is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{where}: a key is {len(key)} bytes, expected {KEY_BYTES}")
    return key


def load_keyring(path: Path) -> Keyring:
    """Read the key file, refusing one that group or others could read."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO planted there must not hang us
    except FileNotFoundError as exc:
        raise KeyFileError(
            f"key file {path} does not exist: run `mailvoice init` to create it (or set {KEY_ENV})"
        ) from exc
    except OSError as exc:
        raise KeyFileError(f"key file {path} cannot be read ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        if mode & 0o077:
            raise KeyFileError(
                f"key file {path} has mode {stat.S_IMODE(mode):04o}, readable by others; run: chmod 600 {path}"
            )
        data = fh.read()
    where = f"key file {path} is malformed"
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyFileError(f"{where} (not JSON); restore it from your backup") from exc
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("keys"), dict):
        raise KeyFileError(f'{where}: expected {{"version": 1, "active": ..., "keys": {{...}}}}')
    keys = {str(k): _decode_key(v, where) for k, v in doc["keys"].items()}
    active = doc.get("active")
    if not isinstance(active, str) or active not in keys:
        raise KeyFileError(f"{where}: the active key id {active!r} is not among its keys")
    return Keyring(active=active, keys=keys, source=path)


def scrub_environment(environ: MutableMapping[str, str] | None = None) -> bool:
    """Move MAILVOICE_KEY out of the environment so no child process inherits it; True if it was set."""
    global _captured_env_key
    env = os.environ if environ is None else environ
    value = env.pop(KEY_ENV, None)
    if value is None:
        return False
    _captured_env_key = value
    return True


def env_keyring(environ: Mapping[str, str] | None = None) -> Keyring | None:
    """The keyring given by MAILVOICE_KEY (still set, or captured by scrub_environment), or None."""
    env = os.environ if environ is None else environ
    value = env.get(KEY_ENV) or _captured_env_key
    if not value:
        return None
    where = f"environment variable {KEY_ENV} is malformed (expected base64 of {KEY_BYTES} random bytes)"
    keys = [_decode_key(part.strip(), where) for part in value.split(",") if part.strip()]
    if not keys:
        raise KeyFileError(where)
    return Keyring(active=key_id_for(keys[0]), keys={key_id_for(k): k for k in keys})


def load_key(path: Path, environ: Mapping[str, str] | None = None) -> Keyring:
    """The keyring from MAILVOICE_KEY when given, else from the key file."""
    return env_keyring(environ) or load_keyring(path)


def record_aad(table: str, record_id: str, field_name: str) -> bytes:
    """The identity a sealed value is bound to: moved to another row or field, it will not open."""
    return f"mailvoice/v1|{table}|{record_id}|{field_name}".encode()


def _header(key_id: str) -> bytes:
    kid = key_id.encode("ascii")
    return bytes([BLOB_VERSION, len(kid)]) + kid


def blob_key_id(blob: bytes) -> str:
    """The id of the key that sealed this blob (raises UnsealError if the header is broken)."""
    if len(blob) < 2 or blob[0] != BLOB_VERSION:
        raise UnsealError(f"sealed record has unknown format version {blob[:1].hex() or 'none'}")
    end = 2 + blob[1]
    if len(blob) < end + NONCE_BYTES + _TAG_BYTES:
        raise UnsealError("sealed record is truncated")
    try:
        return blob[2:end].decode("ascii")
    except UnicodeDecodeError as exc:
        raise UnsealError("sealed record has a corrupt key id") from exc


class Sealer:
    """Seals and opens records with a keyring; thread-safe."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._aeads: dict[str, AESGCM] = {}
        self._lock = threading.Lock()

    @property
    def keyring(self) -> Keyring:
        """The keyring in use (replaced when the key file gained the key a record needs)."""
        return self._keyring

    @property
    def active_key_id(self) -> str:
        """The key id new records are sealed with."""
        return self._keyring.active

    def _aead(self, key_id: str) -> AESGCM:
        aead = self._aeads.get(key_id)
        if aead is not None:
            return aead
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = self._keyring.key(key_id) or self._reload(key_id)
        aead = AESGCM(key)
        self._aeads[key_id] = aead
        return aead

    def _reload(self, key_id: str) -> bytes:
        """Another process may have rotated the key file: re-read it once before giving up."""
        ring = self._keyring
        with self._lock, contextlib.suppress(KeyFileError):
            if ring.source is not None:
                fresh = load_keyring(ring.source)
                key = fresh.key(key_id)
                if key is not None:
                    self._keyring = fresh
                    log.info("key file %s re-read: key %s found, active key now %s", ring.source, key_id, fresh.active)
                    return key
        where = f"key file {ring.source}" if ring.source else f"{KEY_ENV}"
        raise UnsealError(
            f"record sealed with key id {key_id!r}, which is not in {where} "
            f"(known: {', '.join(sorted(ring.keys))}); restore the key file that holds it"
        )

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt and authenticate plaintext, bound to aad, under the active key."""
        key_id = self._keyring.active
        header = _header(key_id)
        nonce = secrets.token_bytes(NONCE_BYTES)
        return header + nonce + self._aead(key_id).encrypt(nonce, bytes(plaintext), header + aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a sealed blob; UnsealError if tampered, moved, truncated or sealed with an unknown key."""
        from cryptography.exceptions import InvalidTag

        blob = bytes(blob)
        key_id = blob_key_id(blob)
        start = 2 + blob[1]
        header, nonce = blob[:start], blob[start : start + NONCE_BYTES]
        try:
            return self._aead(key_id).decrypt(nonce, blob[start + NONCE_BYTES :], header + aad)
        except InvalidTag as exc:
            raise UnsealError(
                f"sealed record ({key_id=}, {len(blob)} bytes) failed authentication: "
                "tampered, or moved from another record"
            ) from exc

    def seal_json(self, value: Any, aad: bytes) -> bytes:
        """Seal a JSON-ready value."""
        return self.seal(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), aad)

    def open_json(self, blob: bytes, aad: bytes) -> Any:
        """Open a blob sealed by seal_json."""
        return json.loads(self.open(blob, aad).decode("utf-8"))
