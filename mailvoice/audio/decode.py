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
    AudioBudgetError,
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

MIN_RATE, MAX_RATE = 1000, 384_000
"""Sample rates a real recording can have."""
MAX_CHANNELS = 16
TRUNCATED_FRACTION = 0.9
"""Less than this share of the duration a header declares (minus half a second) means the file was cut short."""

# No protocol may be opened from inside a demuxer: the input is already in memory.
_OPEN_OPTIONS = {"protocol_whitelist": "none", "enable_drefs": "0", "use_absolute_path": "0"}


def _label(name: str) -> str:
    return repr(name) if name else "audio"


class _Limits:
    """The three decoder limits of one call, with messages that name the file and the setting."""

    def __init__(self, name: str, settings: AudioSettings, budget: float | None = None) -> None:
        self.name = _label(name)
        self.settings = settings
        self.budget = budget
        self.deadline = time.monotonic() + settings.decode_timeout

    def check_bytes(self, size: int) -> None:
        if size > self.settings.max_bytes:
            raise AudioTooLargeError(
                f"{self.name}: {size} bytes is over the limit of {self.settings.max_bytes} bytes "
                f"(raise audio.max_bytes to accept it)"
            )

    def check_duration(self, seconds: float, *, declared: bool = False) -> None:
        how = "declares" if declared else "decodes to more than"
        if seconds > self.settings.max_duration:
            raise AudioTooLongError(
                f"{self.name}: {how} {seconds:.0f} s of audio, over the limit of "
                f"{self.settings.max_duration:.0f} s (raise audio.max_duration to accept it)"
            )
        if self.budget is not None and seconds > self.budget:
            raise AudioBudgetError(
                f"{self.name}: {how} {seconds:.0f} s of audio, over the {max(self.budget, 0.0):.0f} s left in "
                f"the per-mail budget of {self.settings.max_mail_duration:.0f} s (audio.max_mail_duration)",
                declared=declared,
            )

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise DecodeTimeoutError(
                f"{self.name}: decoding took longer than {self.settings.decode_timeout:g} s "
                f"(raise audio.decode_timeout, or the file may be hostile)"
            )


def decode_audio(
    data: bytes,
    *,
    name: str = "",
    settings: AudioSettings | None = None,
    sample_rate: int = 16000,
    budget: float | None = None,
) -> AudioClip:
    """Decode allowlisted audio from memory to mono float32 at sample_rate, or raise the AudioError that says why.

    budget: seconds the caller's mail may still decode (AudioBudgetError past it), on top of audio.max_duration.
    """
    import av

    limits = _Limits(name, settings or AudioSettings(), budget)
    limits.check_bytes(len(data))
    if not data:
        raise CorruptAudioError(f"{limits.name}: the file is empty (0 bytes)")
    kind = sniff_format(data)
    if kind is None:
        raise UnsupportedAudioError(
            f"{limits.name}: not a supported audio format ({len(data)} bytes, no known audio signature); accepted: "
            + ", ".join(sorted(CONTAINERS))
        )
    container = CONTAINERS[kind]
    if kind == "wav":
        data = _riff_fit(data)
    try:
        with av.open(
            io.BytesIO(data), mode="r", format=container.demuxer, options=dict(_OPEN_OPTIONS), metadata_errors="replace"
        ) as demuxed:
            samples = _decode_container(demuxed, data, container, limits, sample_rate)
    except AudioError:
        raise
    except (av.FFmpegError, ValueError, OSError, EOFError, MemoryError) as exc:
        raise CorruptAudioError(f"{limits.name}: damaged or truncated {kind} audio ({exc})") from exc
    clip = AudioClip(samples=samples, sample_rate=sample_rate, name=name)
    log.debug("decoded %s: %s, %.2f s", limits.name, kind, clip.duration)
    return clip


def _decode_container(
    demuxed: Any, data: bytes, container: Container, limits: _Limits, rate: int
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
    _check_shape(limits, stream.codec_context.sample_rate, stream.codec_context.channels)
    declared = _declared_seconds(demuxed, stream, data) if container.header_duration else 0.0
    limits.check_duration(declared, declared=True)

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
            if frame.samples <= 0:
                continue
            _check_shape(limits, frame.sample_rate, frame.layout.nb_channels)
            decoded_seconds += frame.samples / frame.sample_rate
            limits.check_duration(decoded_seconds)
            resampler = _resample(resampler, frame, chunks, rate)
    _take(resampler.resample(None), chunks)
    if bad_packets:
        log.info("%s: skipped %d damaged packet(s)", limits.name, bad_packets)
    if not chunks or decoded_seconds <= 0:
        raise CorruptAudioError(f"{limits.name}: the {container.name} file decodes to no audio samples")
    if decoded_seconds < declared * TRUNCATED_FRACTION - 0.5:
        raise CorruptAudioError(
            f"{limits.name}: truncated: the {container.name} header declares {declared:.1f} s "
            f"but only {decoded_seconds:.1f} s of audio is there"
        )
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    np.nan_to_num(samples, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(samples, -1.0, 1.0, out=samples)


def _check_shape(limits: _Limits, rate: int, channels: int) -> None:
    """Refuse a sample rate or channel count no recording has: a mutated header (800 MHz) stalls the resampler."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise CorruptAudioError(
            f"{limits.name}: declares a sample rate of {rate} Hz; audio is {MIN_RATE} to {MAX_RATE} Hz"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise CorruptAudioError(f"{limits.name}: declares {channels} channels; at most {MAX_CHANNELS} are read")


def _resample(resampler: Any, frame: Any, chunks: list[npt.NDArray[np.float32]], rate: int) -> Any:
    """Resample one frame into chunks; a mid-stream format change (rate, layout) flushes and starts afresh."""
    import av

    try:
        outs = resampler.resample(frame)
    except ValueError:
        _take(resampler.resample(None), chunks)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        outs = resampler.resample(frame)
    _take(outs, chunks)
    return resampler


def _take(frames: Any, chunks: list[npt.NDArray[np.float32]]) -> None:
    """Copy resampled mono float frames out of FFmpeg's buffers."""
    import numpy as np

    for out in frames:
        chunks.append(np.array(out.to_ndarray(), dtype=np.float32).reshape(-1))


def _declared_seconds(demuxed: Any, stream: Any, data: bytes) -> float:
    """The duration the container claims, in seconds (0 when it claims none)."""
    seconds = 0.0
    if demuxed.duration and demuxed.duration > 0:
        seconds = float(demuxed.duration) / 1_000_000.0
    elif stream.duration and stream.time_base and stream.duration > 0:
        seconds = float(stream.duration * stream.time_base)
    return max(seconds, _riff_declared_seconds(data))


def _riff_fit(data: bytes) -> bytes:
    """The WAV cut before the first chunk other than `data` that claims more bytes than the file holds.

    FFmpeg allocates (and zeroes) what a LIST/INFO chunk declares before reading it: a 4 KB file whose trailing LIST
    claims 2 GB cost 2 GB of memory and seconds of CPU (found by fuzzing). The audio before such a chunk stays.
    """
    offset = 12
    while offset + 8 <= len(data):
        chunk, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        end = offset + 8 + size
        if chunk == b"data":
            if size in (0, 0xFFFFFFFF) or end >= len(data):
                return data  # open-ended or cut short: the samples run to the end of the file
        elif end > len(data):
            return data[:offset]
        offset = end + (size & 1)
    return data


def _riff_declared_seconds(data: bytes) -> float:
    """The length a WAV's data chunk header claims; FFmpeg clamps it to the bytes present, hiding truncation."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return 0.0
    offset, byte_rate = 12, 0
    while offset + 8 <= min(len(data), 1 << 20):
        chunk, size = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
        if chunk == b"fmt " and size >= 16 and offset + 20 <= len(data):
            byte_rate = int.from_bytes(data[offset + 16 : offset + 20], "little")
        elif chunk == b"data":
            unknown = size in (0, 0xFFFFFFFF)  # streaming writers leave the size open
            return 0.0 if unknown or byte_rate <= 0 else size / byte_rate
        offset += 8 + size + (size & 1)
    return 0.0
