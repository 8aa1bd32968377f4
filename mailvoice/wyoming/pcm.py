"""Raw PCM as Wyoming carries it: validated formats, a bounded buffer, and float samples to 16-bit chunks."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailvoice.errors import AudioTooLongError, UnsupportedAudioError

if TYPE_CHECKING:
    from mailvoice.types import FloatArray

_WIDTHS = (2, 4)
"""Signed little-endian 16- or 32-bit samples (8-bit is unsigned in WAV but not in Wyoming: refused)."""
_RATES = (8_000, 96_000)
_MAX_CHANNELS = 8


@dataclass(frozen=True, slots=True)
class PcmFormat:
    """The shape of the raw audio a client announced in audio-start."""

    rate: int
    """Samples per second per channel."""
    width: int
    """Bytes per sample."""
    channels: int

    @classmethod
    def checked(cls, rate: object, width: object, channels: object) -> PcmFormat:
        """The format, or UnsupportedAudioError naming the field and the accepted range."""
        if not isinstance(rate, int) or isinstance(rate, bool) or not _RATES[0] <= rate <= _RATES[1]:
            raise UnsupportedAudioError(f"audio-start rate={rate!r}: expected {_RATES[0]}..{_RATES[1]} Hz")
        if width not in _WIDTHS or isinstance(width, bool):
            raise UnsupportedAudioError(f"audio-start width={width!r}: expected 2 (16-bit) or 4 (32-bit) bytes")
        if not isinstance(channels, int) or isinstance(channels, bool) or not 1 <= channels <= _MAX_CHANNELS:
            raise UnsupportedAudioError(f"audio-start channels={channels!r}: expected 1..{_MAX_CHANNELS}")
        return cls(rate, int(width), channels)

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.width * self.channels


class PcmBuffer:
    """Audio of one utterance, refused as soon as it would pass the duration cap (never buffered past it)."""

    def __init__(self, fmt: PcmFormat, max_seconds: float) -> None:
        self.format = fmt
        self.max_seconds = max_seconds
        self._limit = int(max_seconds * fmt.bytes_per_second)
        self._data = bytearray()

    def add(self, chunk: bytes) -> None:
        if len(self._data) + len(chunk) > self._limit:
            raise AudioTooLongError(
                f"utterance is longer than {self.max_seconds:g} s (setting wyoming.max_audio_seconds); "
                "send shorter audio"
            )
        self._data += chunk

    def __len__(self) -> int:
        return len(self._data)

    def wav(self) -> bytes:
        """The audio as a WAV file in memory, so the allowlisted decoder (limits, resampling) reads it."""
        fmt = self.format
        usable = len(self._data) - len(self._data) % (fmt.width * fmt.channels)
        data = bytes(self._data[:usable])
        block = fmt.width * fmt.channels
        header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
        header += b"fmt " + struct.pack(
            "<IHHIIHH", 16, 1, fmt.channels, fmt.rate, fmt.bytes_per_second, block, 8 * fmt.width
        )
        return header + b"data" + struct.pack("<I", len(data)) + data


def to_pcm16(samples: FloatArray) -> bytes:
    """Float samples in [-1, 1] as signed 16-bit little-endian bytes."""
    import numpy as np

    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in pieces of at most ``size`` bytes."""
    for start in range(0, len(data), size):
        yield data[start : start + size]
