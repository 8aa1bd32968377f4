"""Piper TTS (the default engine): one ONNX call per sentence, so the first plays while the rest renders."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mailvoice.engines.base import drop_content_logs
from mailvoice.errors import ModelNotFoundError, SynthesisError
from mailvoice.models import resolve_piper
from mailvoice.textsplit import iter_sentences
from mailvoice.types import AudioClip, SpeechChunk

if TYPE_CHECKING:
    from mailvoice.config import GeneralSettings, TtsSettings

log = logging.getLogger(__name__)


class PiperEngine:
    """A Piper voice with an onnxruntime session whose thread count we choose."""

    name = "piper"

    def __init__(self, settings: TtsSettings, general: GeneralSettings) -> None:
        import numpy as np
        import onnxruntime
        from piper.config import PiperConfig, SynthesisConfig
        from piper.voice import PiperVoice

        drop_content_logs("piper.voice", "text=")  # piper logs each input text at DEBUG
        files = resolve_piper(settings.voice, general)
        try:
            config = PiperConfig.from_dict(json.loads(files.config.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelNotFoundError(
                f"Piper voice config {files.config} (setting tts.voice = {settings.voice!r}) is unreadable: {exc}"
            ) from exc
        self.threads = settings.threads or os.cpu_count() or 1
        # PiperVoice.load builds its session with default options (all cores): build it ourselves instead.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(
                str(files.model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelNotFoundError(
                f"Piper voice {files.model} (setting tts.voice = {settings.voice!r}) failed to load: {exc}"
            ) from exc
        # download_dir defaults to the CWD (used only by the Chinese phonemizer): keep it under our data dir.
        self.voice = PiperVoice(session=session, config=config, download_dir=general.data_dir / "piper")
        self.sample_rate = int(config.sample_rate)
        self.settings = settings
        self._syn_config = SynthesisConfig(length_scale=config.length_scale * settings.length_scale)
        self._np = np
        log.info("loaded Piper voice %s (%d Hz) with %d threads", settings.voice, self.sample_rate, self.threads)

    def synthesize(self, text: str) -> Iterator[SpeechChunk]:
        """One chunk per sentence, computed only when the consumer asks for it."""
        np = self._np
        for sentence in iter_sentences(text):
            try:
                pieces = [c.audio_float_array for c in self.voice.synthesize(sentence.text, self._syn_config)]
            except (RuntimeError, ValueError) as exc:
                raise SynthesisError(f"Piper failed on a sentence of {len(sentence.text)} chars: {exc}") from exc
            if not pieces:
                continue  # nothing pronounceable ("...", emoji)
            samples = np.concatenate(pieces).astype(np.float32, copy=False)
            pause = sentence.pause(self.settings.sentence_pause, self.settings.paragraph_pause)
            yield SpeechChunk(sentence.text, AudioClip(samples, self.sample_rate, "piper"), pause)
