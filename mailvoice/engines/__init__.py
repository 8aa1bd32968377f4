"""Engine registry: names map to "module:Class" strings so that only the chosen engine is ever imported."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mailvoice.errors import MissingExtraError, UnknownEngineError

if TYPE_CHECKING:
    from mailvoice.config import AsrSettings, GeneralSettings, TtsSettings
    from mailvoice.engines.base import AsrEngine, TtsEngine

ASR_ENGINES: dict[str, str] = {
    "faster-whisper": "mailvoice.engines.whisper:WhisperEngine",
}
TTS_ENGINES: dict[str, str] = {
    "piper": "mailvoice.engines.piper:PiperEngine",
    "coqui": "mailvoice.engines.coqui:CoquiEngine",
    "espeak-ng": "mailvoice.engines.espeak:EspeakEngine",
}

__all__ = ["ASR_ENGINES", "TTS_ENGINES", "load_asr", "load_tts"]


def _engine_class(kind: str, name: str, registry: dict[str, str]) -> Any:
    """Import the class registered under ``name``; the error lists the known names and the setting to fix."""
    try:
        target = registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise UnknownEngineError(
            f"unknown {kind} engine {name!r} (setting {kind}.engine): known engines are {known}"
        ) from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except MissingExtraError:
        raise
    except ImportError as exc:
        raise MissingExtraError(
            f"{kind} engine {name!r} cannot be imported ({exc}); reinstall mailvoice: pip install mailvoice"
        ) from exc
    return getattr(module, class_name)


def load_asr(settings: AsrSettings, general: GeneralSettings) -> AsrEngine:
    """Build the configured ASR engine (loads its model: slow, call it once)."""
    engine: AsrEngine = _engine_class("asr", settings.engine, ASR_ENGINES)(settings, general)
    return engine


def load_tts(settings: TtsSettings, general: GeneralSettings) -> TtsEngine:
    """Build the configured TTS engine (loads its voice: slow, call it once)."""
    engine: TtsEngine = _engine_class("tts", settings.engine, TTS_ENGINES)(settings, general)
    return engine


def voice_for_language(language: str, configured: str) -> tuple[str, str]:
    """(voice name, note) for speaking text in ``language`` (ISO 639-1): an installed manifest voice for that
    language, the configured voice when it already fits; otherwise the configured voice and a note saying so."""
    from mailvoice.engines.language import language_name
    from mailvoice.models import is_installed, load_manifest

    lang = language.lower().split("-")[0]
    voices = [e for e in load_manifest() if e.kind == "tts"]
    fits = [e for e in voices if e.language.lower().split("-")[0] == lang]
    if any(e.name == configured for e in fits) or not lang:
        return configured, ""
    installed = [e for e in fits if is_installed(e)]
    if installed:
        return installed[0].name, ""
    hint = f": pip install {' '.join(fits[0].packages)}" if fits else ""
    return configured, f"no {language_name(lang)} voice is installed{hint}; reading with the {configured!r} voice"
