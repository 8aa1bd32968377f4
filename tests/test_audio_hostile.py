"""Hostile and broken audio: each refusal is the right AudioError, names the file and setting, and comes fast."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from audiogen import CASES, silence_pyav, tone_bursts, wav_pcm16
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailvoice.audio import decode_audio, encode_audio, is_probably_audio, load_for_asr, sniff_format
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


def refuse(data: bytes, error: type[AudioError], match: str | None = None, **kw: object) -> AudioError:
    """Decode must raise exactly this error class; the message names the file (decode_timeout bounds the time)."""
    with pytest.raises(error, match=match) as info:
        decode_audio(data, name="voicemail.bin", **kw)  # type: ignore[arg-type]
    assert "voicemail.bin" in str(info.value)
    return info.value


@cache
def sample(key: str) -> bytes:
    data = CASES[key].make()
    assert data is not None
    return data


def png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", bytes.fromhex("00000001000000010800000000"))
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def test_zero_bytes_is_corrupt() -> None:
    refuse(b"", CorruptAudioError, "empty")


@pytest.mark.parametrize(
    "make",
    [
        lambda: os.urandom(4096),
        png,
        lambda: b"Hi Bob,\r\nplease find my voicemail attached.\r\n" * 20,
        lambda: b"%PDF-1.7\n" + os.urandom(1000),
        lambda: b"\x00" * 10000,
    ],
    ids=["random", "png", "text", "pdf", "zeros"],
)
def test_wrong_magic_is_unsupported(make: Callable[[], bytes]) -> None:
    data = make()
    assert sniff_format(data) is None
    refuse(data, UnsupportedAudioError, "not a supported audio format")


@pytest.mark.parametrize(
    ("key", "cut"),
    [
        ("wav-s16", 30),
        ("wav-s16", 100),
        ("wav-gsm", 32000),
        ("mp3", 20),
        ("ogg-opus", 120),
        ("m4a-aac", 0.5),
        ("3gp-amr-nb", 0.7),
        ("flac", 0.4),
        ("webm-opus", 100),
    ],
)
def test_truncated_files_are_corrupt(key: str, cut: float) -> None:
    """Cut inside the header, or short of what the header declares; formats without a length header (mp3
    frames, ADTS, AMR, Ogg pages) keep what is there, which the format tests cover."""
    if CASES[key].make() is None:
        pytest.skip(f"needs {CASES[key].needs}")
    data = sample(key)
    size = int(cut if cut >= 1 else cut * len(data))
    refuse(data[: min(size, len(data) // 2)], CorruptAudioError)


def test_truncated_wav_error_says_what_is_missing() -> None:
    data = sample("wav-s16")
    err = refuse(data[: len(data) // 2], CorruptAudioError, "truncated")
    assert "declares 2.0 s" in str(err)


def test_two_hours_of_silence_in_30_kb_of_flac_is_refused_before_decoding() -> None:
    data = silence_pyav("flac", "flac", 8000, 2 * 3600, frame=32768, options={"frame_size": "32768"})
    assert len(data) < 100_000
    refuse(data, AudioTooLongError, r"declares 7\d\d\d s.*audio\.max_duration")


def test_silence_bomb_without_a_declared_length_stops_at_the_limit() -> None:
    """STREAMINFO's total-samples field zeroed: nothing declares the length, so the sample count must stop it."""
    data = bytearray(silence_pyav("flac", "flac", 8000, 2 * 3600, frame=32768, options={"frame_size": "32768"}))
    fields = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
    data[18:26] = fields.to_bytes(8, "big")
    err = refuse(bytes(data), AudioTooLongError, "decodes to more than")
    assert "audio.max_duration" in str(err)
    refuse(bytes(data), AudioTooLongError, "over the limit of 60 s", settings=AudioSettings(max_duration=60))


def test_long_silent_ogg_opus_is_refused() -> None:
    data = silence_pyav("ogg", "libopus", 48000, 180, frame=5760, options={"frame_duration": "120"})
    assert len(data) < 40_000
    refuse(
        data,
        AudioTooLongError,
        "declares 180 s.*limit of 60 s.*audio.max_duration",
        settings=AudioSettings(max_duration=60),
    )
    clip = decode_audio(data, name="ok.ogg")  # the same file under the default 15 minutes is fine
    assert abs(clip.duration - 180) < 1 and np.max(np.abs(clip.samples)) < 1e-3


def test_oversize_input_is_refused_before_it_is_parsed() -> None:
    refuse(
        sample("wav-s16"),
        AudioTooLargeError,
        "over the limit of 1000 bytes.*audio.max_bytes",
        settings=AudioSettings(max_bytes=1000),
    )
    refuse(b"#EXTM3U\n" * 500, AudioTooLargeError, settings=AudioSettings(max_bytes=1000))


def test_wall_time_limit_is_checked_while_decoding() -> None:
    fourteen_minutes = wav_pcm16(np.random.default_rng(0).standard_normal(8000 * 840).astype(np.float32) * 0.1, 8000)
    refuse(
        fourteen_minutes,
        DecodeTimeoutError,
        "longer than 0.05 s.*audio.decode_timeout",
        settings=AudioSettings(decode_timeout=0.05),
    )
    err = refuse(sample("flac"), DecodeTimeoutError, settings=AudioSettings(decode_timeout=1e-9))
    assert isinstance(err, TimeoutError)


@pytest.mark.parametrize(
    ("offset", "value", "match"),
    [
        (24, 805_322_368, "sample rate of 805322368 Hz"),
        (24, 0, None),
        (22, 200, "200 channels"),
    ],
)
def test_absurd_header_fields_are_corrupt_not_slow(offset: int, value: int, match: str | None) -> None:
    """A mutated WAV header once made the resampler spend 12 s on 5 KB (found by fuzzing)."""
    data = bytearray(sample("wav-s16"))
    width = 4 if offset == 24 else 2
    data[offset : offset + width] = value.to_bytes(width, "little")
    refuse(bytes(data), CorruptAudioError, match)


@pytest.fixture
def real_audio_file(tmp_path: Path) -> Path:
    """A local file a playlist or concat script would make FFmpeg read: real audio, so reading it would succeed."""
    path = tmp_path / "secret-recording.wav"
    path.write_bytes(wav_pcm16(tone_bursts(16000), 16000))
    decode_audio(path.read_bytes(), name="direct")  # it is good audio when read on purpose
    return path


@pytest.mark.parametrize(
    "script",
    [
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{path}\n#EXT-X-ENDLIST\n",
        "#EXTM3U\n#EXTINF:2.0,\nfile://{path}\n",
        "\ufeff#EXTM3U\n#EXTINF:2,\n{path}\n",
        "ffconcat version 1.0\nfile '{path}'\n",
        "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\n",
        '<?xml version="1.0"?><MPD><Period><AdaptationSet><Representation><BaseURL>{path}</BaseURL>'
        "</Representation></AdaptationSet></Period></MPD>",
    ],
    ids=["hls", "hls-file-url", "hls-bom", "ffconcat", "sdp", "dash"],
)
def test_playlists_named_like_audio_never_read_other_files(script: str, real_audio_file: Path) -> None:
    data = script.format(path=real_audio_file).encode()
    assert is_probably_audio(data, "voicemail.mp3", "audio/mpeg")  # the mail code will hand it over
    assert sniff_format(data) is None
    refuse(data, UnsupportedAudioError)


@pytest.fixture
def watched_fifo(tmp_path: Path) -> Iterator[tuple[Path, threading.Event]]:
    """A named pipe whose event is set the moment anything opens it for reading."""
    fifo = tmp_path / "voicemail.wav"
    os.mkfifo(fifo)
    opened, releasing = threading.Event(), threading.Event()

    def writer() -> None:
        with open(fifo, "wb") as pipe:  # blocks until a reader opens the other end
            if not releasing.is_set():
                opened.set()
                pipe.write(wav_pcm16(tone_bursts(16000), 16000))

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    yield fifo, opened
    releasing.set()
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer's open return
    thread.join(timeout=5)
    os.close(reader)


def test_hls_playlist_never_opens_the_file_it_names(watched_fifo: tuple[Path, threading.Event]) -> None:
    fifo, opened = watched_fifo
    refuse(f"#EXTM3U\n#EXTINF:2.0,\n{fifo}\n#EXT-X-ENDLIST\n".encode(), UnsupportedAudioError)
    refuse(f"ffconcat version 1.0\nfile '{fifo}'\n".encode(), UnsupportedAudioError)
    time.sleep(0.05)
    assert not opened.is_set()


def test_second_wall_no_protocols_even_if_a_script_reached_ffmpeg(real_audio_file: Path) -> None:
    """Defence in depth: the open options decode_audio uses stop a concat script that FFmpeg did parse."""
    import av

    from mailvoice.audio.decode import _OPEN_OPTIONS

    script = f"ffconcat version 1.0\nfile '{real_audio_file}'\n".encode()
    with av.open(io.BytesIO(script), mode="r", format="concat", options={"safe": "0"}) as unguarded:
        assert sum(int(f.samples) for f in unguarded.decode(audio=0)) > 0  # without them the file IS read
    guarded_options = {**_OPEN_OPTIONS, "safe": "0"}
    with (
        pytest.raises(av.FFmpegError),
        av.open(io.BytesIO(script), mode="r", format="concat", options=guarded_options) as guarded,
    ):
        sum(int(f.samples) for f in guarded.decode(audio=0))


def test_video_track_is_ignored_and_video_only_is_unsupported() -> None:
    from audiogen import assert_tone_bursts, video_mp4

    assert_tone_bursts(decode_audio(video_mp4(with_audio=True), name="clip.mp4"), name="clip.mp4")
    refuse(video_mp4(with_audio=False), UnsupportedAudioError, "holds no audio stream")


def test_disallowed_codec_is_unsupported() -> None:
    from audiogen import encode_pyav

    mp2 = encode_pyav(tone_bursts(16000), 16000, muxer="matroska", codec="mp2")
    refuse(mp2, UnsupportedAudioError, "codec 'mp2' is not accepted in matroska")
    wav_in_mkv = encode_pyav(tone_bursts(16000), 16000, muxer="matroska", codec="pcm_s16le")
    refuse(wav_in_mkv, UnsupportedAudioError, "pcm_s16le")


def test_our_own_opus_reads_back_through_the_guarded_decoder() -> None:
    clip = AudioClip(samples=tone_bursts(24000), sample_rate=24000, name="reply")
    back = load_for_asr(encode_audio(clip, "ogg"), name="reply.ogg")
    assert back.sample_rate == 16000 and abs(back.duration - 2.0) < 0.05


SEEDS = ("wav-s16", "wav-mulaw", "mp3", "ogg-opus", "flac", "m4a-aac", "amr-nb", "adts-aac", "webm-opus")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=8),
)
def test_fuzz_mutated_audio_only_raises_audio_errors(seed: str, cut: float, flips: list[tuple[float, int]]) -> None:
    data = bytearray(sample(seed)[: max(1, int(len(sample(seed)) * cut))])
    for where, value in flips:
        data[min(len(data) - 1, int(where * len(data)))] = value
    try:
        clip = decode_audio(bytes(data), name="fuzz", settings=AudioSettings(max_duration=30, decode_timeout=5))
    except AudioError:
        pass
    else:
        assert clip.sample_rate == 16000 and clip.samples.dtype == np.float32
        assert np.all(np.isfinite(clip.samples)) and clip.samples.size > 0


@settings(max_examples=100, deadline=None)
@given(
    st.binary(max_size=512),
    st.sampled_from(
        [
            b"",
            b"RIFF\x00\x00\x00\x00WAVE",
            b"OggS",
            b"fLaC",
            b"ID3\x04",
            b"\xff\xfb\x90",
            b"\xff\xf1",
            b"#!AMR\n",
            b"\x1a\x45\xdf\xa3",
            b"\x00\x00\x00\x18ftypM4A ",
        ]
    ),
)
def test_fuzz_random_bytes_behind_real_magic_only_raise_audio_errors(body: bytes, magic: bytes) -> None:
    with contextlib.suppress(AudioError):
        decode_audio(magic + body, name="fuzz")
