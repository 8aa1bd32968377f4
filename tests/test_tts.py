"""TTS engines: Piper sentence streaming, espeak-ng fallback, sentence splitting, and the engine registry."""

from __future__ import annotations

import inspect
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from speech import general, piper_engine, resample, speak, wer, whisper_engine

from mailvoice.config import TtsSettings
from mailvoice.engines import TTS_ENGINES, load_tts
from mailvoice.engines.base import TtsEngine
from mailvoice.engines.piper import PiperEngine
from mailvoice.errors import MissingExtraError, UnknownEngineError
from mailvoice.textsplit import iter_sentences, split_paragraphs, split_sentences
from mailvoice.types import AudioClip

LETTER = (
    "Dear Sam. The meeting moved to room four. Dr. Lee will join us at noon.\n\nPlease bring the budget. See you there!"
)


# --- sentence splitting (no models) -------------------------------------------------------------------------


def test_split_keeps_abbreviations_and_initials() -> None:
    text = 'Hello Dr. Smith, see e.g. the memo. J. R. Tolkien wrote it. Is it late? Yes! "Quoted." Next'
    assert split_sentences(text) == [
        "Hello Dr. Smith, see e.g. the memo.",
        "J. R. Tolkien wrote it.",
        "Is it late?",
        "Yes!",
        '"Quoted."',
        "Next",
    ]


def test_paragraphs_and_pauses() -> None:
    assert split_paragraphs("One.\nstill one.\n\n  \n Two.  ") == ["One. still one.", "Two."]
    sentences = list(iter_sentences(LETTER))
    assert [s.text for s in sentences] == [
        "Dear Sam.",
        "The meeting moved to room four.",
        "Dr. Lee will join us at noon.",
        "Please bring the budget.",
        "See you there!",
    ]
    pauses = [s.pause(0.3, 0.8) for s in sentences]
    assert pauses == [0.3, 0.3, 0.8, 0.3, 0.0]


def test_long_sentence_is_cut_at_clauses() -> None:
    clause = "we checked the pumps, the valves and the gauges in the north yard"
    pieces = split_sentences("; ".join([clause] * 8) + ".", max_chars=150)
    assert len(pieces) > 1
    assert all(len(p) <= 150 for p in pieces)
    assert " ".join(pieces).split() == ("; ".join([clause] * 8) + ".").split()


# --- Piper ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def piper() -> PiperEngine:
    return piper_engine()


@pytest.mark.slow
def test_piper_chunks_per_sentence(piper: PiperEngine) -> None:
    assert isinstance(piper, TtsEngine)
    chunks = list(piper.synthesize(LETTER))
    assert [c.text for c in chunks] == [s.text for s in iter_sentences(LETTER)]
    assert [c.pause_after for c in chunks] == [0.35, 0.35, 0.8, 0.35, 0.0]
    for chunk in chunks:
        assert chunk.audio.sample_rate == piper.sample_rate == 22_050
        assert chunk.audio.samples.dtype == np.float32 and chunk.audio.samples.ndim == 1
        assert 0.3 < chunk.audio.duration < 6.0
        assert 0.05 < float(np.abs(chunk.audio.samples).max()) <= 1.0


@pytest.mark.slow
def test_piper_streams_lazily(piper: PiperEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    text = " ".join(
        f"This is sentence number {n} of a rather long message."
        for n in ("one", "two", "three", "four", "five", "six", "seven", "eight")
    )
    assert inspect.isgenerator(piper.synthesize(text))
    calls: list[str] = []
    real = piper.voice.synthesize

    def counting(sentence: str, *args: object) -> object:
        calls.append(sentence)
        return real(sentence, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(piper.voice, "synthesize", counting)
    stream = piper.synthesize(text)
    first = next(stream)
    assert first.text == "This is sentence number one of a rather long message."
    assert len(calls) == 1  # the first sentence did not wait for the other seven to be synthesized
    rest = list(stream)
    assert len(rest) == 7 and len(calls) == 8


@pytest.mark.slow
def test_piper_speech_is_intelligible(piper: PiperEngine) -> None:
    text = "The delivery will arrive on Monday afternoon. Please leave the gate open."
    result = whisper_engine().transcribe(speak(text))
    assert wer(text, result.text) <= 0.15, result.text


@pytest.mark.slow
def test_piper_length_scale_threads_and_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    slow = load_tts(TtsSettings(length_scale=1.5, threads=1), general())
    assert isinstance(slow, PiperEngine)
    assert slow.voice.session.get_session_options().intra_op_num_threads == 1
    text = "Slow and steady wins the race."
    slow_s = sum(c.audio.duration for c in slow.synthesize(text))
    normal_s = sum(c.audio.duration for c in piper_engine().synthesize(text))
    assert slow_s > normal_s * 1.25
    assert list(tmp_path.iterdir()) == []  # nothing written or downloaded into the working directory


@pytest.mark.slow
def test_piper_nothing_to_say(piper: PiperEngine) -> None:
    assert list(piper.synthesize("")) == []
    assert list(piper.synthesize("  \n\n  ")) == []
    assert list(piper.synthesize("...")) == []


# --- espeak-ng ------------------------------------------------------------------------------------------------

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)"
)


@needs_espeak
@pytest.mark.slow
def test_espeak_speaks_sentences() -> None:
    engine = load_tts(TtsSettings(engine="espeak-ng"), general())
    assert engine.name == "espeak-ng" and engine.sample_rate == 22_050
    text = "Hello there. Please call me back tomorrow."
    chunks = list(engine.synthesize(text))
    assert [c.text for c in chunks] == ["Hello there.", "Please call me back tomorrow."]
    assert [c.pause_after for c in chunks] == [0.35, 0.0]
    assert all(c.audio.duration > 0.4 and np.abs(c.audio.samples).max() > 0.05 for c in chunks)
    audio = np.concatenate([resample(c.audio.samples, c.audio.sample_rate) for c in chunks])
    result = whisper_engine().transcribe(AudioClip(np.concatenate([np.zeros(8000, np.float32), audio]), 16_000))
    assert wer(text, result.text) <= 0.35, result.text


@needs_espeak
def test_espeak_takes_text_as_data_not_options() -> None:
    engine = load_tts(TtsSettings(engine="espeak-ng", voice="--help"), general())
    chunks = list(engine.synthesize("--version"))
    assert len(chunks) == 1 and chunks[0].audio.duration > 0.3  # spoken, not run as an option


def test_espeak_missing_names_the_apt_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingExtraError, match="apt-get install espeak-ng"):
        load_tts(TtsSettings(engine="espeak-ng"), general())


# --- registry -------------------------------------------------------------------------------------------------


def test_unknown_tts_engine_lists_known_names() -> None:
    with pytest.raises(UnknownEngineError) as err:
        load_tts(TtsSettings(engine="festival"), general())
    for name in TTS_ENGINES:
        assert name in str(err.value)
    assert "tts.engine" in str(err.value)


@pytest.mark.slow
def test_bench_tts_reports_first_sentence_latency() -> None:
    from mailvoice.config import Settings
    from mailvoice.engines.bench import bench_tts

    figures = bench_tts(
        Settings(general=general()),
        "Hello there. This second sentence is a good deal longer than the first one, so it takes longer to render.",
        repeats=1,
    )
    assert figures.engine == "piper" and figures.voice == "joe"
    assert figures.audio_seconds > 3.0  # no speed asserted: figures are for `mailvoice bench tts`
    assert figures.speed == pytest.approx(figures.audio_seconds / figures.synth_seconds)
    assert 0.0 < figures.first_sentence_seconds <= figures.synth_seconds  # the first sentence is part of the whole
    assert figures.peak_rss_mb > 100


@pytest.mark.slow
def test_piper_never_logs_the_text(piper: PiperEngine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert list(piper.synthesize("The canary word is zebrafish."))
    assert "zebrafish" not in caplog.text
