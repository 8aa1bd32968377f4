"""Decode untrusted audio bytes in memory to mono float32 at 16 kHz, with every limit enforced inside the loop.

Hazards this module exists for: a demuxer left to guess the format will follow a playlist or a concat script
to other local files; a small file can decode to hours (a 30 KB FLAC of silence is two hours); a hostile file
can keep a decoder busy. So: sniff and allowlist first, open only from memory with an explicit demuxer and no
protocols, check the codec, refuse a declared duration over the limit, count samples while decoding and stop
at the limit, check a deadline between packets, and resample each frame as it comes (no full-rate copy).
"""

from __future__ import annotations

import io
import logging
import time
from typing import TYPE_CHECKING, Any

from mailvoice.audio.sniff import CONTAINERS, Container, sniff_format
from mailvoice.config import AudioSettings
from mailvoice.errors import (
    AudioError,
    AudioTooLargeError,
    AudioTooLongError,
    CorruptAudioError,
    DecodeTimeoutError,
    UnsupportedAudioError,
)
from mailvoice.types import AudioClip

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

MAX_BAD_PACKETS = 50
"""Damaged packets skipped (phones send slightly broken files) before the whole file counts as corrupt."""

# No protocol may be opened from inside a demuxer: the input is already in memory.
_OPEN_OPTIONS = {"protocol_whitelist": "none", "enable_drefs": "0", "use_absolute_path": "0"}


def _label(name: str) -> str:
    return repr(name) if name else "audio"


class _Limits:
    """The three decoder limits of one call, with messages that name the file and the setting."""

    def __init__(self, name: str, settings: AudioSettings) -> None:
        self.name = _label(name)
        self.settings = settings
        self.deadline = time.monotonic() + settings.decode_timeout

    def check_bytes(self, size: int) -> None:
        if size > self.settings.max_bytes:
            raise AudioTooLargeError(
                f"{self.name}: {size} bytes is over the limit of {self.settings.max_bytes} bytes "
                f"(raise audio.max_bytes to accept it)"
            )

    def check_duration(self, seconds: float, *, declared: bool = False) -> None:
        if seconds > self.settings.max_duration:
            how = "declares" if declared else "decodes to more than"
            raise AudioTooLongError(
                f"{self.name}: {how} {seconds:.0f} s of audio, over the limit of "
                f"{self.settings.max_duration:.0f} s (raise audio.max_duration to accept it)"
            )

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise DecodeTimeoutError(
                f"{self.name}: decoding took longer than {self.settings.decode_timeout:g} s "
                f"(raise audio.decode_timeout, or the file may be hostile)"
            )


def decode_audio(
    data: bytes, *, name: str = "", settings: AudioSettings | None = None, sample_rate: int = 16000
) -> AudioClip:
    """Decode allowlisted audio from memory to mono float32 at sample_rate, or raise the AudioError that says why."""
    import av

    limits = _Limits(name, settings or AudioSettings())
    limits.check_bytes(len(data))
    if not data:
        raise CorruptAudioError(f"{limits.name}: the file is empty (0 bytes)")
    kind = sniff_format(data)
    if kind is None:
        raise UnsupportedAudioError(
            f"{limits.name}: not a supported audio format (first bytes {bytes(data[:8])!r}); accepted: "
            + ", ".join(sorted(CONTAINERS))
        )
    container = CONTAINERS[kind]
    try:
        with av.open(io.BytesIO(data), mode="r", format=container.demuxer, options=dict(_OPEN_OPTIONS),
                     metadata_errors="replace") as demuxed:
            samples = _decode_container(demuxed, container, limits, sample_rate)
    except AudioError:
        raise
    except (av.FFmpegError, ValueError, OSError, EOFError, MemoryError) as exc:
        raise CorruptAudioError(f"{limits.name}: damaged or truncated {kind} audio ({exc})") from exc
    clip = AudioClip(samples=samples, sample_rate=sample_rate, name=name)
    log.debug("decoded %s: %s, %.2f s", limits.name, kind, clip.duration)
    return clip


def _decode_container(
    demuxed: Any, container: Container, limits: _Limits, rate: int
) -> npt.NDArray[np.float32]:
    """Decode the first audio stream of an opened container under the limits."""
    import av
    import numpy as np

    limits.check_time()
    streams = demuxed.streams.audio
    if not streams:
        raise UnsupportedAudioError(f"{limits.name}: the {container.name} file holds no audio stream")
    stream = streams[0]
    codec = stream.codec_context.codec.canonical_name if stream.codec_context else "unknown"
    if codec not in container.codecs:
        raise UnsupportedAudioError(
            f"{limits.name}: codec {codec!r} is not accepted in {container.name}; accepted: "
            + ", ".join(sorted(container.codecs))
        )
    if not stream.codec_context.sample_rate or stream.codec_context.sample_rate <= 0:
        raise CorruptAudioError(f"{limits.name}: the audio stream declares no sample rate")
    if container.header_duration:
        limits.check_duration(_declared_seconds(demuxed, stream), declared=True)

    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    chunks: list[npt.NDArray[np.float32]] = []
    decoded_seconds = 0.0
    bad_packets = 0
    for packet in demuxed.demux(stream):
        limits.check_time()
        try:
            frames = packet.decode()
        except av.InvalidDataError:
            bad_packets += 1
            if bad_packets > MAX_BAD_PACKETS:
                raise
            continue
        for frame in frames:
            if not frame.sample_rate or frame.samples <= 0:
                continue
            decoded_seconds += frame.samples / frame.sample_rate
            limits.check_duration(decoded_seconds)
            resampler = _resample(resampler, frame, chunks, rate)
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1).copy())
    if bad_packets:
        log.info("%s: skipped %d damaged packet(s)", limits.name, bad_packets)
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise CorruptAudioError(f"{limits.name}: the {container.name} file decodes to no audio samples")
    return samples


def _resample(resampler: Any, frame: Any, chunks: list[npt.NDArray[np.float32]], rate: int) -> Any:
    """Resample one frame into chunks; a mid-stream format change (rate, layout) flushes and starts afresh."""
    import av

    try:
        outs = resampler.resample(frame)
    except ValueError:
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1).copy())
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        outs = resampler.resample(frame)
    for out in outs:
        chunks.append(out.to_ndarray().reshape(-1).copy())
    return resampler


def _declared_seconds(demuxed: Any, stream: Any) -> float:
    """The duration the container claims, in seconds (0 when it claims none)."""
    if demuxed.duration and demuxed.duration > 0:
        return float(demuxed.duration) / 1_000_000.0
    if stream.duration and stream.time_base and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    return 0.0
