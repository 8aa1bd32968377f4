"""Coqui TTS (the optional ``coqui`` extra, package coqui-tts): loads a model directory as a user who downloaded one.

Torchaudio guard: PyPI's torchaudio wheels are CUDA builds; beside a CPU torch, ``import torchaudio`` raises
``OSError: libc10_cuda.so: cannot open shared object file`` while loading its compiled extension, and
``TTS.api`` imports torchaudio through its VITS model. Synthesis uses none of torchaudio's compiled ops, and
torchaudio itself supports running without its extension (its loader returns False when the library file is
absent). Only when that exact OSError occurs, ``_import_torchaudio`` retries the import with the loader
reporting the extension absent. No installed file is edited, and a CPU-matching torchaudio skips the guard.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailvoice.engines.base import drop_content_logs
from mailvoice.errors import MissingExtraError, ModelNotFoundError, SynthesisError
from mailvoice.textsplit import iter_sentences
from mailvoice.types import AudioClip, SpeechChunk

if TYPE_CHECKING:
    from mailvoice.config import GeneralSettings, TtsSettings

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'mailvoice[coqui]'"
CHECKPOINT_NAMES = ("model.pth", "best_model.pth", "model_file.pth", "checkpoint.pth")
_CUDA_LIBS = ("libc10_cuda", "libcudart", "libcuda.", "libtorch_cuda", "libnvrtc")


def _missing_cuda_library(exc: OSError) -> bool:
    """True for torchaudio's "CUDA build beside CPU torch" failure, and only that."""
    texts = [str(exc), str(exc.__cause__ or "")]
    return "torchaudio" in texts[0] and any(lib in t for t in texts for lib in _CUDA_LIBS)


def _import_torchaudio() -> None:
    """Import torchaudio; if its CUDA-built extension cannot load beside CPU torch, import it without the extension."""
    try:
        importlib.import_module("torchaudio")
    except OSError as exc:
        utils = sys.modules.get("torchaudio._extension.utils")
        if not _missing_cuda_library(exc) or utils is None:
            raise
        log.info(
            "torchaudio's compiled extension needs CUDA libraries (%s): importing it without the extension",
            exc.__cause__ or exc,
        )

        def _extension_absent(_lib: str) -> bool:
            return False  # what torchaudio's own loader answers when the library file is not shipped

        utils._load_lib = _extension_absent  # type: ignore[attr-defined]
        importlib.import_module("torchaudio")


def _import_tts_api() -> Any:
    """``TTS.api`` with the optional dependency errors turned into MissingExtraError."""
    try:
        _import_torchaudio()
        import TTS.api
    except ImportError as exc:
        raise MissingExtraError(
            f"TTS engine 'coqui' (setting tts.engine) needs the coqui extra ({exc.name or exc}): {INSTALL_HINT}"
        ) from exc
    return TTS.api


def resolve_coqui(voice: str) -> tuple[Path, Path]:
    """(checkpoint, config.json) from a model directory, or from a checkpoint path with config.json beside it."""
    path = Path(voice).expanduser()
    if path.is_file():
        checkpoint, config = path, path.with_name("config.json")
    else:
        config = path / "config.json"
        named = [path / n for n in CHECKPOINT_NAMES if (path / n).is_file()]
        others = sorted(path.glob("*.pth"), key=lambda p: p.stat().st_mtime) if path.is_dir() else []
        found = named or others[-1:]
        checkpoint = found[0] if found else path / CHECKPOINT_NAMES[0]
    if not (checkpoint.is_file() and config.is_file()):
        raise ModelNotFoundError(
            f"Coqui model {voice!r} (setting tts.voice) not found: set tts.voice to a model directory holding "
            f"config.json and a checkpoint ({', '.join(CHECKPOINT_NAMES)} or *.pth); looked for {checkpoint} "
            f"and {config}"
        )
    return checkpoint, config


class CoquiEngine:
    """A Coqui model on CPU; one instance per loaded model, used from one worker thread."""

    name = "coqui"

    def __init__(self, settings: TtsSettings, general: GeneralSettings) -> None:
        drop_content_logs("TTS.utils.synthesizer", "Input:")  # Coqui logs each input text at INFO
        drop_content_logs("TTS.tts.utils.text.tokenizer")  # ... and again (even as a WARNING) when tokenizing
        checkpoint, config = resolve_coqui(settings.voice)
        api = _import_tts_api()
        import numpy as np
        import torch

        self.threads = settings.threads or os.cpu_count() or 1
        torch.set_num_threads(self.threads)
        try:
            self.tts = api.TTS(model_path=str(checkpoint), config_path=str(config), progress_bar=False, gpu=False)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise ModelNotFoundError(
                f"Coqui model {checkpoint} with {config} (setting tts.voice) failed to load: {exc}"
            ) from exc
        self.sample_rate = int(self.tts.synthesizer.output_sample_rate)
        model = self.tts.synthesizer.tts_model
        if settings.length_scale != 1.0 and hasattr(model, "length_scale"):
            model.length_scale = float(model.length_scale) * settings.length_scale  # VITS: slower speech above 1
        self.settings = settings
        self._np = np
        self._torch = torch
        # The text normaliser imports its number expander lazily: pay that once here, not on the first mail.
        self._speak("1")
        log.info("loaded Coqui model %s (%d Hz) with %d threads", checkpoint, self.sample_rate, self.threads)

    def _speak(self, text: str) -> Any:
        np = self._np
        try:
            with self._torch.inference_mode():
                wav = self.tts.tts(text=text, split_sentences=False)
        except (RuntimeError, ValueError, KeyError, IndexError) as exc:
            raise SynthesisError(f"Coqui failed on a sentence of {len(text)} chars: {exc}") from exc
        return np.asarray(wav, dtype=np.float32).reshape(-1)

    def synthesize(self, text: str) -> Iterator[SpeechChunk]:
        """One chunk per sentence, computed only when the consumer asks for it."""
        for sentence in iter_sentences(text):
            samples = self._speak(sentence.text)
            if samples.size:
                pause = sentence.pause(self.settings.sentence_pause, self.settings.paragraph_pause)
                yield SpeechChunk(sentence.text, AudioClip(samples, self.sample_rate, "coqui"), pause)
