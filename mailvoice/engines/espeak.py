"""espeak-ng as the last-resort voice: robotic but tiny, and present on most Linux systems."""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
import wave
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mailvoice.errors import MissingExtraError, SynthesisError
from mailvoice.models import manifest_entry
from mailvoice.textsplit import iter_sentences
from mailvoice.types import AudioClip, SpeechChunk

if TYPE_CHECKING:
    from mailvoice.config import GeneralSettings, TtsSettings

log = logging.getLogger(__name__)

SAMPLE_RATE = 22_050
"""espeak-ng's native output rate."""
_WORDS_PER_MINUTE = 175
_TIMEOUT_S = 60.0
_VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+-]{0,39}$")
"""A voice name that cannot be mistaken for an option or a path."""


class EspeakEngine:
    """Runs ``espeak-ng --stdout`` once per sentence, text on stdin, with a minimal environment."""

    name = "espeak-ng"
    sample_rate = SAMPLE_RATE

    def __init__(self, settings: TtsSettings, general: GeneralSettings) -> None:
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise MissingExtraError(
                "TTS engine 'espeak-ng' (setting tts.engine) needs the espeak-ng program: "
                'apt-get install espeak-ng (or choose tts.engine = "piper")'
            )
        entry = manifest_entry("tts", settings.voice)
        voice = entry.language if entry is not None and entry.language else settings.voice
        if not _VOICE_NAME.match(voice):
            log.warning("tts.voice %r is not an espeak-ng voice name: using en-us", voice)
            voice = "en-us"
        self.binary = binary
        self.voice = voice
        self.settings = settings
        self.rate = max(80, min(450, round(_WORDS_PER_MINUTE / max(settings.length_scale, 0.1))))
        # No secrets reach the child: only what espeak-ng needs to run and find its data.
        self._env = {"PATH": os.defpath, "LANG": "C.UTF-8", "HOME": "/nonexistent"}

    def _speak(self, text: str) -> AudioClip:
        """One espeak-ng run; its WAV header says 0x7fffffff frames (streamed), so read what is there."""
        try:
            result = subprocess.run(
                [self.binary, "--stdout", "--stdin", "-b", "1", "-v", self.voice, "-s", str(self.rate)],
                input=text.encode("utf-8"),
                capture_output=True,
                env=self._env,
                timeout=_TIMEOUT_S,
                check=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise SynthesisError(f"espeak-ng took longer than {_TIMEOUT_S:.0f} s on one sentence") from exc
        except subprocess.CalledProcessError as exc:
            detail = exc.stderr.decode("utf-8", "replace").strip()[:200]
            raise SynthesisError(f"espeak-ng failed (voice {self.voice!r}, exit {exc.returncode}): {detail}") from exc
        import numpy as np

        try:
            with wave.open(io.BytesIO(result.stdout)) as wav:
                rate, width = wav.getframerate(), wav.getsampwidth()
                frames = wav.readframes(wav.getnframes())
        except (wave.Error, EOFError) as exc:
            raise SynthesisError(f"espeak-ng returned no valid WAV audio (voice {self.voice!r}): {exc}") from exc
        if width != 2:
            raise SynthesisError(f"espeak-ng returned {8 * width}-bit audio; expected 16-bit")
        samples = np.frombuffer(frames[: len(frames) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
        return AudioClip(samples, rate, "espeak-ng")

    def synthesize(self, text: str) -> Iterator[SpeechChunk]:
        """One chunk per sentence, each spoken only when the consumer asks for it."""
        for sentence in iter_sentences(text):
            clip = self._speak(sentence.text)
            pause = sentence.pause(self.settings.sentence_pause, self.settings.paragraph_pause)
            if clip.samples.size:
                yield SpeechChunk(sentence.text, clip, pause)
