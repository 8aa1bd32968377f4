"""faster-whisper engine on real speech (Piper-spoken at test time) and on the non-speech a voicemail line carries."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from speech import ASR_RATE, general, silence, speak, wer, whisper_engine

from mailvoice.config import AsrSettings
from mailvoice.engines import load_asr
from mailvoice.engines.base import AsrEngine
from mailvoice.engines.whisper import WhisperEngine
from mailvoice.errors import TranscriptionError
from mailvoice.types import AudioClip, Segment, Transcript, Word

pytestmark = pytest.mark.slow

SCRIPT = (
    "Hello, this is Anna from the dental clinic. Your appointment has moved to Thursday morning. "
    "Please call us back when you have a moment, and bring your insurance card."
)


@pytest.fixture(scope="module")
def engine() -> WhisperEngine:
    return whisper_engine()


@pytest.fixture(scope="module")
def spoken() -> AudioClip:
    return speak(SCRIPT)


@pytest.fixture(scope="module")
def transcript(engine: WhisperEngine, spoken: AudioClip) -> Transcript:
    return engine.transcribe(spoken)


def test_engine_satisfies_protocol(engine: WhisperEngine) -> None:
    assert isinstance(engine, AsrEngine)
    assert engine.name == "faster-whisper"
    assert engine.options.language == "en"  # tiny.en forces English even with language = "auto"


def test_roundtrip_word_error_rate(transcript: Transcript) -> None:
    assert not transcript.no_speech
    assert wer(SCRIPT, transcript.text) <= 0.15, transcript.text
    assert transcript.language == "en"


def test_segments_and_words_have_sane_timings(transcript: Transcript, spoken: AudioClip) -> None:
    assert transcript.duration == pytest.approx(spoken.duration)
    assert transcript.segments
    previous_end = 0.0
    for seg in transcript.segments:
        assert 0.0 <= seg.start < seg.end <= spoken.duration + 0.5
        assert seg.start >= previous_end - 0.05
        previous_end = seg.end
        assert seg.avg_logprob < 0.0
        assert 0.0 <= seg.no_speech_prob <= 1.0
        assert seg.text and seg.words
        for word in seg.words:
            assert seg.start - 0.05 <= word.start <= word.end <= seg.end + 0.05
            assert 0.0 <= word.probability <= 1.0
    words = transcript.words
    assert len(words) >= 20
    assert sum(w.probability for w in words) / len(words) > 0.6
    json = transcript.to_json()
    assert json["text"] == transcript.text and json["no_speech"] is False


def _tone(freqs: tuple[float, ...], seconds: float, amp: float = 0.3) -> npt.NDArray[np.float32]:
    t = np.arange(round(seconds * ASR_RATE)) / ASR_RATE
    waves = np.stack([np.sin(2 * np.pi * f * t) for f in freqs])
    return np.asarray(amp * waves.mean(axis=0), dtype=np.float32)


def _coloured(seconds: float, exponent: float, seed: int) -> npt.NDArray[np.float32]:
    """Noise with a 1/f**exponent power spectrum (0 white, 1 pink, 2 brown)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * ASR_RATE)
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]
    spectrum = (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)) / freqs ** (exponent / 2)
    x = np.fft.irfft(spectrum, n)
    return np.asarray(0.3 * x / np.abs(x).max(), dtype=np.float32)


def _hang_up() -> npt.NDArray[np.float32]:
    click = np.zeros(round(0.01 * ASR_RATE), dtype=np.float32)
    click[:40] = 0.9
    return np.concatenate([silence(1.0), click, silence(1.5), _tone((480.0, 620.0), 0.5)])  # click + busy tone


NON_SPEECH = {
    "digital silence": lambda: silence(4.0),
    "white noise": lambda: _coloured(4.0, 0.0, seed=1),
    "pink noise": lambda: _coloured(4.0, 1.0, seed=2),
    "brown noise": lambda: _coloured(4.0, 2.0, seed=3),
    "dtmf digits": lambda: np.concatenate(
        [
            np.concatenate([_tone((697.0, 1209.0), 0.2), silence(0.1), _tone((852.0, 1477.0), 0.2), silence(0.1)])
            for _ in range(4)
        ]
    ),
    "beep": lambda: np.concatenate([silence(1.0), _tone((1000.0,), 0.5, amp=0.5), silence(1.0)]),
    "mains hum": lambda: _tone((50.0, 150.0, 250.0), 4.0, amp=0.2),
    "hang-up click and busy tone": _hang_up,
}


@pytest.mark.parametrize("kind", sorted(NON_SPEECH))
def test_non_speech_gives_empty_no_speech_transcript(engine: WhisperEngine, kind: str) -> None:
    clip = AudioClip(NON_SPEECH[kind](), ASR_RATE, kind)
    result = engine.transcribe(clip)
    assert result.no_speech, result.text
    assert result.text == ""
    assert result.segments == ()
    assert result.duration == pytest.approx(clip.duration)


@pytest.fixture(scope="module")
def engine_without_vad() -> WhisperEngine:
    return WhisperEngine(AsrSettings(vad_filter=False), general())


@pytest.mark.parametrize("kind", ["digital silence", "white noise", "pink noise", "mains hum"])
def test_non_speech_without_vad_is_caught_by_segment_scores(engine_without_vad: WhisperEngine, kind: str) -> None:
    """With the VAD gate off, Whisper's classic no-speech rule and the stock-phrase filter still hold."""
    result = engine_without_vad.transcribe(AudioClip(NON_SPEECH[kind](), ASR_RATE, kind))
    assert result.no_speech and result.text == "", result.text


@pytest.mark.parametrize("phrase", ["Thank you.", "Yes.", "Bye."])
def test_real_short_speech_is_kept(engine: WhisperEngine, phrase: str) -> None:
    result = engine.transcribe(speak(phrase))
    assert not result.no_speech
    assert wer(phrase, result.text) == 0.0, result.text


def test_speech_in_background_noise_is_kept(engine: WhisperEngine, spoken: AudioClip) -> None:
    noisy = spoken.samples + 0.02 * np.random.default_rng(7).standard_normal(spoken.samples.size)
    result = engine.transcribe(AudioClip(noisy.astype(np.float32), ASR_RATE, "noisy"))
    assert not result.no_speech
    assert wer(SCRIPT, result.text) <= 0.25, result.text


def _seg(text: str, logprob: float, no_speech: float, prob: float) -> Segment:
    return Segment(0.0, 1.0, text, logprob, no_speech, (Word(0.0, 1.0, text, prob),))


def test_stock_phrase_dropped_only_when_scores_are_weak(engine: WhisperEngine) -> None:
    assert engine._filter([_seg("Thank you.", -1.2, 0.5, 0.3)]) == []
    assert engine._filter([_seg("Thanks for watching!", -0.4, 0.6, 0.9)]) == []
    strong = [_seg("Thank you.", -0.4, 0.1, 0.9)]
    assert engine._filter(strong) == strong
    longer = [_seg("Thank you for the flowers.", -1.2, 0.5, 0.3)]
    assert engine._filter(longer) == longer
    # Whisper's classic rule: silent-looking AND unsure goes, whatever the text.
    assert engine._filter([_seg("Meet me at noon.", -1.5, 0.9, 0.2)]) == []


def test_wrong_rate_is_refused(engine: WhisperEngine) -> None:
    with pytest.raises(TranscriptionError, match="16 kHz"):
        engine.transcribe(AudioClip(np.zeros(44_100, dtype=np.float32), 44_100, "cd.wav"))


def test_empty_clip_is_no_speech(engine: WhisperEngine) -> None:
    result = engine.transcribe(AudioClip(np.zeros(0, dtype=np.float32), ASR_RATE, "empty"))
    assert result.no_speech and result.text == "" and result.duration == 0.0


def test_registry_loads_whisper_with_options() -> None:
    engine = load_asr(AsrSettings(beam_size=1, threads=1, word_timestamps=False, language="de"), general())
    assert isinstance(engine, WhisperEngine)
    assert engine.threads == 1
    assert engine.options.language == "en"  # an English-only model ignores a configured other language
    result = engine.transcribe(speak("Please call me back."))
    assert wer("Please call me back.", result.text) <= 0.25
    assert all(not s.words for s in result.segments)


def test_bench_asr_compares_with_bare_faster_whisper() -> None:
    from speech import piper_engine

    from mailvoice.config import Settings
    from mailvoice.engines.bench import bench_asr, wav_bytes

    data = wav_bytes(piper_engine(), "Please call me back tomorrow morning.")
    figures = bench_asr(Settings(general=general()), data, repeats=1)
    assert figures.model == "tiny.en" and figures.compute_type == "int8"
    assert 1.5 < figures.audio_seconds < 6.0
    # No speed is asserted (a loaded machine makes any bound flaky): the figures are consistent ratios of the
    # two paths timed on the same audio in the same process; `mailvoice bench asr` reports them.
    assert figures.ours_seconds > 0 and figures.bare_seconds > 0
    assert figures.speed == pytest.approx(figures.audio_seconds / figures.ours_seconds)
    assert figures.overhead_ratio == pytest.approx(figures.ours_seconds / figures.bare_seconds)
    assert figures.peak_rss_mb > 100
