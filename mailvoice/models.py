"""Resolve model names to files: a configured path, then an installed model package, then (if allowed) a hub.

The manifest (``mailvoice/data/manifest.toml``, also ``models/manifest.toml``) says what each name means; this
module never downloads anything itself and never writes outside ``<data_dir>/models``.
"""

from __future__ import annotations

import importlib
import importlib.resources
import importlib.util
import logging
import os
import shutil
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mailvoice.errors import ModelNotFoundError

if TYPE_CHECKING:
    from mailvoice.config import GeneralSettings

log = logging.getLogger(__name__)

Kind = Literal["asr", "tts"]
WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json")
"""A CTranslate2 Whisper directory needs these (without tokenizer.json faster-whisper fetches one online)."""
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One named model from the manifest."""

    name: str
    kind: Kind
    engine: str
    description: str = ""
    packages: tuple[str, ...] = ()
    locate: str = ""
    """"module:function" returning the model directory or file."""
    config: str = ""
    parts: tuple[str, ...] = ()
    """"module:relative/path" pieces concatenated into model.bin."""
    files: str = ""
    hub: str = ""
    language: str = ""
    sha256: tuple[tuple[str, str], ...] = ()
    """("module:relative/path", hex digest) of every file the engine reads (mailvoice.modelcheck)."""


@dataclass(frozen=True, slots=True)
class WhisperModelRef:
    """Where a Whisper model comes from: a local directory, or a hub name (only if downloads are allowed)."""

    name: str
    source: Literal["path", "package", "hub"]
    location: str
    """A directory for "path"/"package", a faster-whisper hub name for "hub"."""
    language: str = ""
    """The only language the model speaks ("en" for .en models); empty when multilingual or unknown."""


@dataclass(frozen=True, slots=True)
class PiperVoiceFiles:
    """A Piper voice: the ONNX model and its JSON config."""

    name: str
    model: Path
    config: Path


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One manifest model as `mailvoice doctor` reports it."""

    name: str
    kind: Kind
    engine: str
    available: bool
    path: Path | None
    packages: tuple[str, ...]
    description: str


@cache
def load_manifest() -> tuple[ManifestEntry, ...]:
    """Parse the manifest shipped inside the package (read once per process)."""
    text = importlib.resources.files("mailvoice").joinpath("data/manifest.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    entries: list[ManifestEntry] = []
    for kind in ("asr", "tts"):
        for name, table in raw.get(kind, {}).items():
            entries.append(
                ManifestEntry(
                    name=name,
                    kind=kind,
                    engine=table["engine"],
                    description=table.get("description", ""),
                    packages=tuple(table.get("packages", ())),
                    locate=table.get("locate", ""),
                    config=table.get("config", ""),
                    parts=tuple(table.get("parts", ())),
                    files=table.get("files", ""),
                    hub=table.get("hub", ""),
                    language=table.get("language", ""),
                    sha256=tuple(sorted((str(k), str(v).lower()) for k, v in table.get("sha256", {}).items())),
                )
            )
    return tuple(entries)


def manifest_entry(kind: Kind, name: str) -> ManifestEntry | None:
    """The manifest entry for a name, or None."""
    return next((e for e in load_manifest() if e.kind == kind and e.name == name), None)


def _known(kind: Kind) -> str:
    return ", ".join(e.name for e in load_manifest() if e.kind == kind)


def _looks_like_path(value: str) -> bool:
    return os.sep in value or "/" in value or value.startswith(("~", ".")) or value.endswith(".onnx")


def _module_of(ref: str) -> str:
    return ref.partition(":")[0]


def _refs(entry: ManifestEntry) -> list[str]:
    return [r for r in (entry.locate, entry.config, entry.files, *entry.parts) if r]


def is_installed(entry: ManifestEntry) -> bool:
    """True when every module the entry needs is importable (checked without importing it)."""
    refs = _refs(entry)
    return bool(refs) and all(importlib.util.find_spec(_module_of(r)) is not None for r in refs)


def _call_locator(ref: str) -> Path:
    """Run a "module:function" locator from a model package."""
    module_name, _, func = ref.partition(":")
    return Path(getattr(importlib.import_module(module_name), func)())


def _package_file(ref: str) -> Path:
    """A "module:relative/path" reference to a file inside an installed package."""
    module_name, _, rel = ref.partition(":")
    return Path(str(importlib.resources.files(module_name).joinpath(rel)))


def verify_pins(entry: ManifestEntry, general: GeneralSettings | None) -> None:
    """Refuse a packaged model whose files differ from the manifest's sha256 pins (cached per package version)."""
    from mailvoice.modelcheck import verify_entry

    files = {ref: _package_file(ref) for ref, _ in entry.sha256}
    verify_entry(entry, files, general.data_dir / "models" if general is not None else None)


def _install_hint(entry: ManifestEntry) -> str:
    return "pip install " + " ".join(entry.packages)


def assemble_parts(parts: Sequence[Path], files_dir: Path | None, dest: Path) -> Path:
    """Concatenate split model.bin parts (plus sibling files) into ``dest``; reused while the parts are unchanged."""
    stamp = "\n".join(f"{p.resolve()} {p.stat().st_size} {p.stat().st_mtime_ns}" for p in parts)
    target, stamp_file = dest / "model.bin", dest / "parts.stamp"
    if (
        stamp_file.is_file()
        and stamp_file.read_text("utf-8") == stamp
        and all((dest / f).is_file() for f in WHISPER_FILES)
    ):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    log.info("assembling %d model parts into %s", len(parts), dest)
    if files_dir is not None:
        for item in files_dir.iterdir():
            if item.is_file() and ".part" not in item.name:
                shutil.copyfile(item, dest / item.name)
    partial = dest / f"model.bin.{os.getpid()}.tmp"
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    stamp_file.write_text(stamp, "utf-8")
    return dest


def _check_whisper_dir(path: Path, name: str) -> Path:
    missing = [f for f in WHISPER_FILES if not (path / f).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"ASR model directory {path} (setting asr.model = {name!r}) lacks {', '.join(missing)}: point "
            "asr.model at a CTranslate2 Whisper directory holding model.bin, config.json and tokenizer.json"
        )
    return path


def resolve_whisper(name: str, general: GeneralSettings) -> WhisperModelRef:
    """A configured directory, an installed package, or (only if allowed) a hub name; else an error."""
    entry = manifest_entry("asr", name)
    language = entry.language if entry else ("en" if name.endswith(".en") else "")
    if _looks_like_path(name) or (entry is None and Path(name).expanduser().is_dir()):
        path = Path(name).expanduser()
        return WhisperModelRef(name, "path", str(_check_whisper_dir(path, name)), language)
    if entry is not None and is_installed(entry):
        verify_pins(entry, general)
        if entry.parts:
            files_dir = _package_file(entry.files) if entry.files else None
            path = assemble_parts(
                [_package_file(p) for p in entry.parts], files_dir, general.data_dir / "models" / name
            )
        else:
            path = _call_locator(entry.locate)
        return WhisperModelRef(name, "package", str(_check_whisper_dir(path, name)), language)
    if general.allow_downloads:
        hub = entry.hub if entry and entry.hub else name
        log.warning("ASR model %s is not installed: faster-whisper will download %s", name, hub)
        return WhisperModelRef(name, "hub", hub, language)
    how = f"install it with `{_install_hint(entry)}`" if entry else f"use a known name ({_known('asr')})"
    raise ModelNotFoundError(
        f"ASR model {name!r} (setting asr.model) is not available: {how}, or set asr.model to a directory "
        "holding a CTranslate2 Whisper model (model.bin, config.json, tokenizer.json), or set "
        "general.allow_downloads = true to let faster-whisper fetch it"
    )


def resolve_piper(name: str, general: GeneralSettings | None = None) -> PiperVoiceFiles:
    """An .onnx path (config beside it as .onnx.json) or an installed voice package."""
    entry = manifest_entry("tts", name)
    if _looks_like_path(name) or entry is None:
        model = Path(name).expanduser()
        config = model.with_name(model.name + ".json")
        if not model.is_file() or not config.is_file():
            raise ModelNotFoundError(
                f"Piper voice {name!r} (setting tts.voice) not found: give a known voice name "
                f"({_known('tts')}) or the path of an .onnx voice with its .onnx.json beside it "
                f"(looked for {model} and {config})"
            )
        return PiperVoiceFiles(name, model, config)
    if not is_installed(entry):
        raise ModelNotFoundError(
            f"Piper voice {name!r} (setting tts.voice) is not installed: {_install_hint(entry)}, "
            "or set tts.voice to the path of an .onnx voice"
        )
    verify_pins(entry, general)
    model = _call_locator(entry.locate)
    config = _call_locator(entry.config) if entry.config else model.with_name(model.name + ".json")
    return PiperVoiceFiles(name, model, config)


def list_models(general: GeneralSettings | None = None) -> list[ModelInfo]:
    """Every manifest model with whether it is installed and where (for `mailvoice doctor`)."""
    infos: list[ModelInfo] = []
    for entry in load_manifest():
        available = is_installed(entry)
        path: Path | None = None
        if available and entry.locate:
            path = _call_locator(entry.locate)
        elif available and entry.parts:
            path = _package_file(entry.parts[0]).parent
            if general is not None and (general.data_dir / "models" / entry.name / "model.bin").is_file():
                path = general.data_dir / "models" / entry.name
        infos.append(
            ModelInfo(entry.name, entry.kind, entry.engine, available, path, entry.packages, entry.description)
        )
    return infos
