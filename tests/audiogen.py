"""Test audio made at test time: a known signal, encoded into every format mailvoice must read.

Encoding goes through PyAV directly (not mailvoice.audio.encode) so that decoder tests do not lean on our own
encoder. PyAV has no GSM 6.10 or AMR-WB encoder: GSM comes from the `sox` command (Debian `sox`), AMR-WB from
the VisualOn encoder library (Debian `libvo-amrwbenc0`) through ctypes; each returns None when its tool is absent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from av.audio.stream import AudioStream

from mailvoice.types import AudioClip

FloatArray = npt.NDArray[np.float32]

TONE_HZ = 600.0
SECONDS = 2.0
BURSTS = ((0.25, 0.75), (1.15, 1.75))
"""Where the tone sounds; silence elsewhere. A decoder that shifts, stretches or drops audio moves these."""
ON_WINDOWS = ((0.35, 0.65), (1.25, 1.65))
OFF_WINDOWS = ((0.85, 1.05), (1.85, 1.95))


def tone_bursts(rate: int, *, seconds: float = SECONDS, freq: float = TONE_HZ, level: float = 0.5) -> FloatArray:
    """Two tone bursts with 10 ms ramps and silence around them."""
    t = np.arange(int(seconds * rate)) / rate
    env = np.zeros_like(t)
    for start, end in BURSTS:
        ramp = np.clip(np.minimum(t - start, end - t) / 0.01, 0.0, 1.0)
        env = np.maximum(env, ramp)
    return (level * env * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def window(samples: FloatArray, rate: int, span: tuple[float, float]) -> FloatArray:
    return samples[int(span[0] * rate) : int(span[1] * rate)]


def rms_db(samples: FloatArray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(samples, np.float64) ** 2) + 1e-20))


def dominant_hz(samples: FloatArray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def assert_tone_bursts(clip: AudioClip, *, name: str) -> None:
    """The decoded clip is 16 kHz mono float32, as long as the source, with the bursts where they were."""
    assert clip.sample_rate == 16000
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert clip.name == name
    assert abs(clip.duration - SECONDS) < 0.15, clip.duration
    assert np.all(np.isfinite(clip.samples)) and np.max(np.abs(clip.samples)) <= 1.5
    on = [window(clip.samples, 16000, span) for span in ON_WINDOWS]
    off = [window(clip.samples, 16000, span) for span in OFF_WINDOWS]
    for part in on:
        assert abs(dominant_hz(part, 16000) - TONE_HZ) < 15
        assert rms_db(part) > -20  # a 0.5 tone is -9 dBFS; lossy speech codecs lose a few dB
    for part in off:
        assert rms_db(part) < min(rms_db(p) for p in on) - 25


def encode_pyav(
    samples: FloatArray,
    rate: int,
    *,
    muxer: str,
    codec: str,
    out_rate: int | None = None,
    layout: str = "mono",
    bit_rate: int | None = None,
    options: dict[str, str] | None = None,
) -> bytes:
    """Encode mono float samples with PyAV into an in-memory file (stereo layouts duplicate the channel)."""
    out_rate = out_rate or rate
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=muxer) as out:
        stream = out.add_stream(codec, rate=out_rate, options=options or {})
        assert isinstance(stream, AudioStream)
        stream.codec_context.layout = layout
        if bit_rate:
            stream.codec_context.bit_rate = bit_rate
        formats = stream.codec_context.codec.audio_formats
        assert formats
        fmt = formats[0].name
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=out_rate)
        for start in range(0, len(samples), 4000):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 4000], format="flt", layout="mono")
            frame.sample_rate = rate
            for resampled in resampler.resample(frame):
                out.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            out.mux(stream.encode(resampled))
        out.mux(stream.encode(None))
    return buf.getvalue()


def silence_pyav(
    muxer: str, codec: str, rate: int, seconds: float, *, frame: int, options: dict[str, str] | None = None
) -> bytes:
    """A long stretch of digital silence; codecs make it tiny (two hours of FLAC is about 30 KB)."""
    buf = io.BytesIO()
    zeros = np.zeros((1, frame), np.int16)
    with av.open(buf, mode="w", format=muxer) as out:
        stream = out.add_stream(codec, rate=rate, options=options or {})
        assert isinstance(stream, AudioStream)
        stream.codec_context.layout = "mono"
        for pts in range(0, int(seconds * rate), frame):
            f = av.AudioFrame.from_ndarray(zeros, format="s16", layout="mono")
            f.sample_rate = rate
            f.pts = pts
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    return buf.getvalue()


def wav_pcm16(samples: FloatArray, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def gsm_wav(samples: FloatArray, rate: int) -> bytes | None:
    """WAV with GSM 6.10 (format 0x31, what PBXs write), made by sox; None when sox is not installed."""
    sox = shutil.which("sox")
    if sox is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        src.write_bytes(wav_pcm16(samples, rate))
        subprocess.run(
            [sox, str(src), "-r", "8000", "-e", "gsm-full-rate", str(dst)], check=True, capture_output=True, timeout=60
        )
        return dst.read_bytes()


def amr_wb(samples: FloatArray, rate: int) -> bytes | None:
    """AMR-WB storage format ("#!AMR-WB\\n", 23.85 kbit/s) via libvo-amrwbenc; None when it is not installed."""
    if rate != 16000:
        raise ValueError("AMR-WB takes 16 kHz input")
    path = ctypes.util.find_library("vo-amrwbenc")
    if path is None:
        return None
    lib = ctypes.CDLL(path)
    lib.E_IF_init.restype = ctypes.c_void_p
    lib.E_IF_encode.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_short),
        ctypes.POINTER(ctypes.c_ubyte),
        ctypes.c_int,
    ]
    lib.E_IF_encode.restype = ctypes.c_int
    lib.E_IF_exit.argtypes = [ctypes.c_void_p]
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    pcm = np.concatenate([pcm, np.zeros(-len(pcm) % 320, np.int16)])
    state = lib.E_IF_init()
    out = bytearray(b"#!AMR-WB\n")
    buf = (ctypes.c_ubyte * 64)()
    try:
        for start in range(0, len(pcm), 320):
            frame = np.ascontiguousarray(pcm[start : start + 320])
            n = lib.E_IF_encode(state, 8, frame.ctypes.data_as(ctypes.POINTER(ctypes.c_short)), buf, 0)
            out += bytes(buf[:n])
    finally:
        lib.E_IF_exit(state)
    return bytes(out)


@dataclass(frozen=True)
class Case:
    """One input format: how to make it, what sniff_format must call it, and what makes it."""

    make: Callable[[], bytes | None]
    container: str
    needs: str = ""
    """The system package a None from make means is missing."""


def _pyav(rate: int, **kw: object) -> Callable[[], bytes | None]:
    return lambda: encode_pyav(tone_bursts(rate), rate, **kw)  # type: ignore[arg-type]


CASES: dict[str, Case] = {
    "wav-u8": Case(_pyav(16000, muxer="wav", codec="pcm_u8"), "wav"),
    "wav-s16": Case(lambda: wav_pcm16(tone_bursts(16000), 16000), "wav"),
    "wav-s24": Case(_pyav(44100, muxer="wav", codec="pcm_s24le"), "wav"),
    "wav-s32": Case(_pyav(48000, muxer="wav", codec="pcm_s32le"), "wav"),
    "wav-f32": Case(_pyav(22050, muxer="wav", codec="pcm_f32le"), "wav"),
    "wav-mulaw": Case(_pyav(8000, muxer="wav", codec="pcm_mulaw"), "wav"),
    "wav-alaw": Case(_pyav(8000, muxer="wav", codec="pcm_alaw"), "wav"),
    "wav-gsm": Case(lambda: gsm_wav(tone_bursts(8000), 8000), "wav", needs="sox"),
    "mp3": Case(_pyav(22050, muxer="mp3", codec="libmp3lame", bit_rate=48000), "mp3"),
    "mp3-8k": Case(_pyav(8000, muxer="mp3", codec="libmp3lame", bit_rate=16000), "mp3"),
    "ogg-opus": Case(_pyav(16000, muxer="ogg", codec="libopus", out_rate=48000, bit_rate=24000), "ogg"),
    "ogg-vorbis": Case(
        _pyav(44100, muxer="ogg", codec="vorbis", layout="stereo", options={"strict": "experimental"}), "ogg"
    ),
    "m4a-aac": Case(_pyav(44100, muxer="ipod", codec="aac", bit_rate=64000), "mp4"),
    "3gp-amr-nb": Case(_pyav(8000, muxer="3gp", codec="libopencore_amrnb", bit_rate=12200), "mp4"),
    "adts-aac": Case(_pyav(16000, muxer="adts", codec="aac", bit_rate=32000), "adts"),
    "amr-nb": Case(_pyav(8000, muxer="amr", codec="libopencore_amrnb", bit_rate=12200), "amr"),
    "amr-wb": Case(lambda: amr_wb(tone_bursts(16000), 16000), "amr", needs="libvo-amrwbenc0"),
    "flac": Case(_pyav(16000, muxer="flac", codec="flac"), "flac"),
    "webm-opus": Case(_pyav(48000, muxer="webm", codec="libopus", bit_rate=32000), "webm"),
    "webm-vorbis": Case(
        _pyav(44100, muxer="webm", codec="vorbis", layout="stereo", options={"strict": "experimental"}), "webm"
    ),
    "mka-opus": Case(_pyav(16000, muxer="matroska", codec="libopus", out_rate=48000), "matroska"),
}
"""Every input format mailvoice accepts, keyed by a test id."""


def video_mp4(*, with_audio: bool) -> bytes:
    """An MP4 with a 2 s MPEG-4 video track (grey frames) and, optionally, the tone bursts as AAC audio."""
    from av.video.stream import VideoStream

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=10)
        assert isinstance(video, VideoStream)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 128, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    plain = buf.getvalue()
    if not with_audio:
        return plain
    buf = io.BytesIO()
    with av.open(io.BytesIO(plain), mode="r") as src, av.open(buf, mode="w", format="mp4") as out:
        copied = out.add_stream_from_template(src.streams.video[0])
        audio = out.add_stream("aac", rate=16000)
        assert isinstance(audio, AudioStream)
        audio.codec_context.layout = "mono"
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = copied
                out.mux(packet)
        samples = tone_bursts(16000)
        for start in range(0, len(samples), 4000):
            chunk = av.AudioFrame.from_ndarray(samples[None, start : start + 4000], format="flt", layout="mono")
            chunk.sample_rate = 16000
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
    return buf.getvalue()
