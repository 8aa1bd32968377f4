"""Recipients' OpenPGP public keys: the managed folder <data_dir>/pgp-keys plus files and folders from the config.

Only public keys are read or kept (a file holding a secret key is refused); nothing is ever fetched from a key
server. A key that is revoked, expired or has no valid encryption subkey is refused with the reason, by name.
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailvoice.errors import PgpKeyError

if TYPE_CHECKING:
    from mailvoice.config import Settings

log = logging.getLogger(__name__)

KEY_SUFFIXES = (".asc", ".gpg", ".pgp", ".key", ".pub")
MAX_KEY_FILE = 4 * 1024 * 1024
_SECRET_TAGS = (5, 7)  # Secret-Key, Secret-Subkey packets
NO_KEY = "no OpenPGP key for this address"


@dataclass(frozen=True, slots=True)
class PgpKey:
    """One recipient certificate (public part only) and where it came from."""

    fingerprint: str
    user_ids: tuple[str, ...]
    addresses: tuple[str, ...]
    """Lower-case addr-specs of the user IDs."""
    expires: datetime.datetime | None
    revoked: bool
    can_encrypt: bool
    source: Path
    cert: Any = field(repr=False, compare=False)
    """The pysequoia Cert."""

    def problem(self, now: datetime.datetime | None = None) -> str | None:
        """Why this key must not be used, or None when it is usable for encryption."""
        now = now or datetime.datetime.now(datetime.UTC)
        if self.revoked:
            return f"key {self.fingerprint.upper()} is revoked"
        if self.expires is not None and self.expires <= now:
            return f"key {self.fingerprint.upper()} expired on {self.expires:%Y-%m-%d}"
        if not self.can_encrypt:
            return f"key {self.fingerprint.upper()} has no valid encryption subkey (a sign-only key?)"
        return None


def managed_dir(settings: Settings) -> Path:
    """Where `mailvoice keys pgp import` keeps keys."""
    return settings.general.data_dir / "pgp-keys"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def holds_secret_key(data: bytes) -> bool:
    """True when the data is (or starts with) secret key material, armored or binary."""
    if b"PRIVATE KEY BLOCK" in data[:4096]:
        return True
    if not data or not data[0] & 0x80:
        return False
    tag = data[0] & 0x3F if data[0] & 0x40 else (data[0] >> 2) & 0x0F
    return tag in _SECRET_TAGS


def parse_keys(data: bytes, source: Path) -> list[PgpKey]:
    """Every certificate in one key file or blob; a secret key or unreadable data is a PgpKeyError."""
    import pysequoia

    if holds_secret_key(data):
        raise PgpKeyError(
            f"{source} holds a secret key; give mailvoice the public key only (gpg --export --armor ADDRESS)"
        )
    try:
        certs = pysequoia.Cert.split_bytes(data)
    except Exception as exc:  # pysequoia raises bare exceptions from Rust
        raise PgpKeyError(f"{source} is not an OpenPGP public key ({_first_line(exc)})") from exc
    if not certs:
        raise PgpKeyError(f"{source} holds no OpenPGP public key")
    keys: list[PgpKey] = []
    for cert in certs:
        try:
            pysequoia.encrypt(b"", recipients=[cert])
            can_encrypt = True
        except Exception:  # "No suitable encryption subkey": sign-only or all encryption subkeys invalid
            can_encrypt = False
        uids = tuple(str(u) for u in cert.user_ids)
        addresses = tuple(dict.fromkeys(a.lower() for _, a in (parseaddr(u) for u in uids) if "@" in a))
        keys.append(
            PgpKey(
                fingerprint=cert.fingerprint.lower(),
                user_ids=uids,
                addresses=addresses,
                expires=cert.expiration,
                revoked=cert.is_revoked,
                can_encrypt=can_encrypt,
                source=source,
                cert=cert,
            )
        )
    return keys


def _read(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_KEY_FILE:
        raise PgpKeyError(f"{path} is {size} bytes: too large for a public key file (limit {MAX_KEY_FILE})")
    return path.read_bytes()


def _files(settings: Settings) -> list[Path]:
    managed = managed_dir(settings)
    out: list[Path] = []
    for path in (managed, *settings.delivery.pgp_keys):
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in KEY_SUFFIXES)
        elif path.exists():
            out.append(path)
        elif path != managed:
            log.warning("pgp: configured key path %s does not exist", path)
    return out


def load_keys(settings: Settings) -> list[PgpKey]:
    """Every key mailvoice knows; an unreadable file is skipped with a warning naming it."""
    keys: list[PgpKey] = []
    for path in _files(settings):
        try:
            keys += parse_keys(_read(path), path)
        except (PgpKeyError, OSError) as exc:
            log.warning("pgp: skipping key file %s: %s", path, exc)
    return keys


def any_keys(settings: Settings) -> bool:
    """Cheap test: is any key file there at all (so plain mail needs no OpenPGP work)."""
    return bool(_files(settings))


@dataclass(frozen=True, slots=True)
class Lookup:
    """The usable keys for a set of addresses, and why the others have none."""

    keys: tuple[PgpKey, ...]
    missing: tuple[tuple[str, str], ...]
    """(address, reason) for each address without a usable key."""


def lookup(keys: Iterable[PgpKey], addresses: Iterable[str], now: datetime.datetime | None = None) -> Lookup:
    """Usable keys per address (every usable key of an address is used); the refusal reason otherwise."""
    pool = list(keys)
    found: dict[str, PgpKey] = {}
    missing: list[tuple[str, str]] = []
    for raw in addresses:
        address = parseaddr(raw)[1].lower() or raw.lower()
        mine = [k for k in pool if address in k.addresses]
        usable = [k for k in mine if k.problem(now) is None]
        if usable:
            found.update((k.fingerprint, k) for k in usable)
        elif mine:
            missing.append((address, "; ".join(str(k.problem(now)) for k in mine)))
        else:
            missing.append((address, NO_KEY))
    return Lookup(tuple(found.values()), tuple(missing))


def import_key(settings: Settings, data: bytes, source: Path) -> list[PgpKey]:
    """Check and store public keys in the managed folder as <fingerprint>.asc (0600, atomic); returns them."""
    keys = parse_keys(data, source)
    for key in keys:
        if (why := key.problem()) is not None:
            raise PgpKeyError(f"{source}: {why}; mailvoice will not encrypt to it. Nothing was imported.")
        if not key.addresses:
            raise PgpKeyError(f"{source}: key {key.fingerprint.upper()} has no user ID with an email address")
    folder = managed_dir(settings)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for key in keys:
        _write_atomic(folder / f"{key.fingerprint}.asc", str(key.cert).encode("ascii"))
    return keys


def remove_key(settings: Settings, what: str) -> list[Path]:
    """Delete managed keys whose fingerprint (or its tail) or address matches; returns the files removed."""
    wanted = what.replace(" ", "").lower()
    removed: list[Path] = []
    for key in load_keys(settings):
        if key.source.parent != managed_dir(settings):
            continue
        if (len(wanted) >= 16 and key.fingerprint.endswith(wanted)) or wanted in key.addresses:
            key.source.unlink(missing_ok=True)
            removed.append(key.source)
    return removed


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
