"""`--record`: speech from the microphone (sounddevice) until Enter, a silence timeout or a length limit.

There is no sound card on CI machines: the tests feed audio files instead, and only the missing-device error
path runs there.
"""

from __future__ import annotations

import logging
import select
import sys
import time
from typing import Any

from mailvoice.errors import AudioError, MissingExtraError

log = logging.getLogger(__name__)

RATE = 16_000
BLOCK_S = 0.1
SPEECH_RMS = 0.015
"""A block louder than this (full scale 1.0) counts as speech."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError as exc:
        raise MissingExtraError(
            "--record needs the sounddevice package: pip install sounddevice (and the "
            "PortAudio library: apt-get install libportaudio2); or give --audio FILE"
        ) from exc
    except OSError as exc:  # the module imports, but PortAudio itself is missing
        raise MissingExtraError(
            f"--record: the PortAudio library is missing ({exc}): apt-get install libportaudio2; or give --audio FILE"
        ) from exc
    return sounddevice


def _enter_pressed() -> bool:
    if not sys.stdin.isatty():
        return False
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    if ready:
        sys.stdin.readline()
        return True
    return False


def record_wav(*, max_seconds: float = 300.0, silence_seconds: float = 3.0) -> bytes:
    """Record mono 16 kHz until Enter, `silence_seconds` of quiet after speech, or `max_seconds`; WAV bytes."""
    import numpy as np

    from mailvoice.audio import encode_audio
    from mailvoice.types import AudioClip

    sd = _sounddevice()
    blocks: list[Any] = []
    quiet_since: float | None = None
    heard = False
    try:
        with sd.InputStream(samplerate=RATE, channels=1, dtype="float32", blocksize=int(RATE * BLOCK_S)) as stream:
            start = time.monotonic()
            while time.monotonic() - start < max_seconds:
                data, _overflowed = stream.read(int(RATE * BLOCK_S))
                block = np.asarray(data, dtype=np.float32).reshape(-1)
                blocks.append(block)
                loud = float(np.sqrt(np.mean(block * block))) > SPEECH_RMS if block.size else False
                heard = heard or loud
                quiet_since = None if loud else (quiet_since or time.monotonic())
                if _enter_pressed() or (heard and quiet_since and time.monotonic() - quiet_since > silence_seconds):
                    break
    except sd.PortAudioError as exc:
        raise AudioError(
            f"--record: no usable microphone ({exc}); check the input device, or give --audio FILE"
        ) from exc
    if not heard:
        raise AudioError("--record: nothing but silence was recorded; check the microphone level")
    samples = np.concatenate(blocks).astype(np.float32)
    log.info("recorded %.1f s from the microphone", samples.size / RATE)
    return encode_audio(AudioClip(samples, RATE, "microphone"), "wav")
