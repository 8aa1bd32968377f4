"""Test helpers: real speech synthesized at test time (never audio files in the repo) and word error rate.

Import from tests as ``from speech import speak, wer, piper_engine, whisper_engine``. The engines load once per
test process (cached), so every test module shares them.

- ``speak(text)``: our Piper engine speaks the text; returns a 16 kHz mono float32 AudioClip (what ASR takes),
  with the engine's sentence/paragraph pauses and a little silence around it.
- ``wer(reference, hypothesis)``: word error rate after lowercasing and stripping punctuation (jiwer).
- ``resample(samples, rate_in, rate_out)``: band-limited FFT resampling (tests must not depend on mailvoice.audio).
"""

from __future__ import annotations

import re
import tempfile
from functools import cache
from pathlib import Path

import jiwer
import numpy as np
import numpy.typing as npt

from mailvoice.config import AsrSettings, GeneralSettings, TtsSettings
from mailvoice.engines.piper import PiperEngine
from mailvoice.engines.whisper import WhisperEngine
from mailvoice.types import AudioClip

ASR_RATE = 16_000
_PUNCT = re.compile(r"[^\w\s']")


@cache
def general() -> GeneralSettings:
    """Settings whose data dir is a private temp dir (downloads off: the tests never touch the network)."""
    return GeneralSettings(data_dir=Path(tempfile.mkdtemp(prefix="mailvoice-test-")), allow_downloads=False)


@cache
def piper_engine() -> PiperEngine:
    """The default Piper voice (joe), loaded once per process."""
    return PiperEngine(TtsSettings(), general())


@cache
def whisper_engine() -> WhisperEngine:
    """The default Whisper model (tiny.en, int8), loaded once per process."""
    return WhisperEngine(AsrSettings(), general())


def resample(samples: npt.NDArray[np.float32], rate_in: int, rate_out: int = ASR_RATE) -> npt.NDArray[np.float32]:
    """Band-limited resampling through the spectrum: exact enough for speech, no extra dependency."""
    if rate_in == rate_out or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    n_out = round(len(samples) * rate_out / rate_in)
    spectrum = np.fft.rfft(samples)[: n_out // 2 + 1]
    return (np.fft.irfft(spectrum, n_out) * (n_out / len(samples))).astype(np.float32)


def silence(seconds: float, rate: int = ASR_RATE) -> npt.NDArray[np.float32]:
    return np.zeros(round(seconds * rate), dtype=np.float32)


def speak(text: str, *, lead: float = 0.3, tail: float = 0.5) -> AudioClip:
    """Piper speaks ``text``; the result is 16 kHz mono, ready for ASR."""
    parts = [silence(lead)]
    for chunk in piper_engine().synthesize(text):
        parts.append(resample(chunk.audio.samples, chunk.audio.sample_rate))
        parts.append(silence(chunk.pause_after))
    parts.append(silence(tail))
    return AudioClip(np.concatenate(parts), ASR_RATE, "piper-test")


def normalise(text: str) -> str:
    """Lowercase, punctuation stripped, single spaces: what WER compares."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of the hypothesis against the reference, after normalisation."""
    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))
