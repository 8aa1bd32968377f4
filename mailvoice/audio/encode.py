"""Encode speech for mail and files: Ogg/Opus (small, the default), MP3 (plays everywhere), M4A/AAC (podcast apps)
or 16-bit WAV.

Everything happens in memory with an explicit muxer: no temp files, no format guessed from a file name.
"""

from __future__ import annotations

import io
import logging
import struct
import wave
from typing import TYPE_CHECKING, Literal, get_args

from mailvoice.errors import AudioError, UnsupportedAudioError
from mailvoice.types import AudioClip

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

AudioFormat = Literal["ogg", "mp3", "wav", "m4a"]
FORMATS: tuple[AudioFormat, ...] = get_args(AudioFormat)

_CONTENT_TYPES: dict[str, str] = {"ogg": "audio/ogg", "mp3": "audio/mpeg", "wav": "audio/wav", "m4a": "audio/mp4"}
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_CHUNK = 16384  # samples handed to the encoder at a time

OPUS_BITRATE = 24000
"""Opus in VoIP mode is clear speech at 24 kbit/s: a minute is about 180 KB."""
MP3_BITRATE = 48000
"""MP3 needs about twice Opus's rate for the same clarity."""
AAC_BITRATE = 48000
_AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def _check(fmt: str) -> AudioFormat:
    if fmt not in FORMATS:
        raise UnsupportedAudioError(
            f"audio format {fmt!r} cannot be written: expected one of {', '.join(FORMATS)} (tts.format)"
        )
    return fmt


def content_type_for(fmt: str) -> str:
    """The MIME type a mail attachment of this format carries."""
    return _CONTENT_TYPES[_check(fmt)]


def extension_for(fmt: str) -> str:
    """The file name ending, with its dot, that players expect for this format."""
    return "." + _check(fmt)


def encode_audio(clip: AudioClip, fmt: str = "ogg", *, bitrate: int | None = None) -> bytes:
    """The clip as an ogg (Opus), mp3, m4a (AAC in MP4) or wav file, in memory."""
    import numpy as np

    kind = _check(fmt)
    samples = np.clip(np.asarray(clip.samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    if kind == "wav":
        return _wav(samples, clip.sample_rate)
    if kind == "ogg":
        data = _lossy(
            samples, clip.sample_rate, "ogg", "libopus", 48000, bitrate or OPUS_BITRATE, {"application": "voip"}
        )
    elif kind == "m4a":
        # the "ipod" muxer writes the M4A brand; its own faststart reopens a file, so the index is moved here
        rate = clip.sample_rate if clip.sample_rate in _AAC_RATES else 24000
        data = faststart(_lossy(samples, clip.sample_rate, "ipod", "aac", rate, bitrate or AAC_BITRATE, {}))
    else:
        rate = clip.sample_rate if clip.sample_rate in _MP3_RATES else 24000
        data = _lossy(samples, clip.sample_rate, "mp3", "libmp3lame", rate, bitrate or MP3_BITRATE, {})
    log.debug("encoded %s: %.2f s as %s, %d bytes", clip.name or "clip", clip.duration, kind, len(data))
    return data


def _wav(samples: npt.NDArray[np.float32], rate: int) -> bytes:
    """16-bit PCM mono WAV via the standard library."""
    import numpy as np

    pcm = np.round(samples * 32767.0).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buf.getvalue()


def _lossy(
    samples: npt.NDArray[np.float32],
    in_rate: int,
    muxer: str,
    codec: str,
    out_rate: int,
    bitrate: int,
    options: dict[str, str],
) -> bytes:
    """Encode through PyAV; the codec context resamples and re-frames what it is given."""
    import av
    from av.audio.stream import AudioStream

    buf = io.BytesIO()
    try:
        with av.open(buf, mode="w", format=muxer) as out:
            stream = out.add_stream(codec, rate=out_rate, options=options)
            assert isinstance(stream, AudioStream)
            stream.codec_context.layout = "mono"
            stream.codec_context.bit_rate = bitrate
            for start in range(0, len(samples), _CHUNK):
                frame = av.AudioFrame.from_ndarray(samples[None, start : start + _CHUNK], format="flt", layout="mono")
                frame.sample_rate = in_rate
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    except (av.FFmpegError, ValueError) as exc:
        raise AudioError(f"could not encode audio as {muxer} with {codec}: {exc}") from exc
    return buf.getvalue()


_CONTAINERS = (b"moov", b"trak", b"mdia", b"minf", b"stbl")


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the MP4 boxes between start and end; [] when they do not tile it exactly."""
    out, pos = [], start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1 and pos + 16 <= end:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        elif size == 0:
            size = end - pos
        if size < 8 or pos + size > end:
            return []
        out.append((kind, pos, size))
        pos += size
    return out if pos == end else []


def _shift_offsets(moov: bytearray, start: int, end: int, delta: int) -> bool:
    """Add delta to every chunk offset (stco / co64) inside moov; False when one would not fit."""
    for kind, pos, size in _boxes(bytes(moov), start, end):
        if kind in _CONTAINERS[1:]:
            if not _shift_offsets(moov, pos + 8, pos + size, delta):
                return False
        elif kind in (b"stco", b"co64"):
            count = struct.unpack_from(">I", moov, pos + 12)[0]
            width, fmt = (4, ">I") if kind == b"stco" else (8, ">Q")
            for i in range(count):
                at = pos + 16 + i * width
                value = struct.unpack_from(fmt, moov, at)[0] + delta
                if value >= 1 << (8 * width):
                    return False
                struct.pack_into(fmt, moov, at, value)
    return True


def faststart(data: bytes) -> bytes:
    """An MP4 with its index (moov) before the media data, so a player can start before the whole file arrives;
    the input unchanged when it is laid out otherwise."""
    top = _boxes(data, 0, len(data))
    kinds = [k for k, _, _ in top]
    if b"moov" not in kinds or b"mdat" not in kinds or kinds.index(b"moov") < kinds.index(b"mdat"):
        return data
    _, moov_at, moov_size = top[kinds.index(b"moov")]
    moov = bytearray(data[moov_at : moov_at + moov_size])
    if not _shift_offsets(moov, 8, moov_size, moov_size):
        return data
    head = b"".join(data[p : p + n] for k, p, n in top if k == b"ftyp")
    rest = b"".join(data[p : p + n] for k, p, n in top if k not in (b"ftyp", b"moov"))
    return head + bytes(moov) + rest
