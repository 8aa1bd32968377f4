"""Dictation on real human speech (tests/data/real): paused sentences stay whole and match batch transcription."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import jiwer
import numpy as np
import pytest
from realspeech import english, paused, real_clip
from speech import general, silence, speak, whisper_engine

from mailvoice.config import Settings
from mailvoice.dictation.decoder import repeats
from mailvoice.dictation.events import Final, Partial
from mailvoice.dictation.recognizer import StreamSettings, ends_sentence
from mailvoice.dictation.runtime import Pipeline
from mailvoice.dictation.session import DictationSession
from mailvoice.dictation.sources import PacedSource
from mailvoice.engines.whisper import HALLUCINATIONS

pytestmark = pytest.mark.slow
SENTENCES = [m for m in english() if len(m["ref"].split()) >= 5]


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    # Fed as fast as possible with degrading off, so the words under test do not depend on the machine's load.
    p = Pipeline(Settings(general=general()), StreamSettings(degrade_above=float("inf")))
    yield p
    p.close()


def dictate(pipeline: Pipeline, samples: np.ndarray) -> list[object]:
    async def go() -> list[object]:
        session = DictationSession(pipeline.recognizer(), pipeline.worker, catch_up=False)
        return [e async for e in session.run(PacedSource(samples, realtime=False).frames())]

    return asyncio.run(go())


def _norm(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def stock_or_loop(text: str) -> bool:
    return _norm(text) in HALLUCINATIONS or repeats(text.split())


def test_ends_sentence() -> None:
    assert ends_sentence("we must find a new home.") and ends_sentence('He said "stop!"')
    assert not ends_sentence("He began a confused complaint") and not ends_sentence("against the wizard,")


def test_paused_real_sentences_stay_whole_and_match_batch(pipeline: Pipeline) -> None:
    assert SENTENCES, "tests/data/real/manifest.json lists no English sentence"
    refs, batch, dictated, problems = [], [], [], []
    for m in SENTENCES:
        clip = paused(real_clip(m["file"]), pause_s=0.75)
        samples = np.concatenate([clip.samples, silence(1.5)])
        events = dictate(pipeline, samples)
        finals = [e for e in events if isinstance(e, Final) and e.text]
        # A pause (0.75 s, longer than the endpoint silence) never finalises a fragment on its own: every final
        # but the last closes a sentence (a list like "eight of spades, four of clubs." may close one early).
        fragments = [e.text for e in finals[:-1] if not ends_sentence(e.text)]
        if fragments or not finals:
            problems.append(f"{m['file']}: the paused sentence came out as fragments: {[e.text for e in finals]}")
        texts = [e.text for e in finals] + [f"{e.stable} {e.unstable}" for e in events if isinstance(e, Partial)]
        problems += [f"{m['file']}: loop or stock phrase {t!r}" for t in texts if stock_or_loop(t)]
        refs.append(m["ref"])
        batch.append(whisper_engine().transcribe(clip).text)
        dictated.append(" ".join(e.text for e in finals))
    batch_wer = jiwer.wer([_norm(r) for r in refs], [_norm(b) for b in batch])
    dictation_wer = jiwer.wer([_norm(r) for r in refs], [_norm(d) for d in dictated])
    assert not problems, problems
    assert dictation_wer <= batch_wer + 0.01, "\n".join([f"{dictation_wer=} {batch_wer=}", *dictated, *batch])


def test_fragment_before_a_pause_is_not_decoded_alone(pipeline: Pipeline) -> None:
    # One real sentence cut after its first words with a pause longer than the endpoint silence: the first words
    # alone are not a sentence, so they wait for the rest instead of becoming a final of their own.
    pause = pipeline.stream.vad.silence_s + 0.3
    assert pause < pipeline.stream.hold_s
    clip = paused(real_clip("wizard-left.wav"), pause_s=pause, every=5)
    events = dictate(pipeline, np.concatenate([clip.samples, silence(1.5)]))
    finals = [e for e in events if isinstance(e, Final) and e.text]
    assert len(finals) == 1, finals
    assert jiwer.wer(_norm(real_clip_ref("wizard-left.wav")), _norm(finals[0].text)) <= 0.15, finals[0].text


def real_clip_ref(name: str) -> str:
    return next(m["ref"] for m in english() if m["file"] == name)


def test_spoken_command_after_a_sentence_adds_no_words(pipeline: Pipeline) -> None:
    # A real sentence, then the command said on its own: the command's short window must not invent words.
    sentence = real_clip("new-home-in-the-stars.wav").samples
    samples = np.concatenate([sentence, silence(1.0), speak("Period.").samples, silence(1.5)])
    events = dictate(pipeline, samples)
    finals = [e.text for e in events if isinstance(e, Final) and e.text]
    assert len(finals) == 2, finals
    assert _norm(finals[1]) == "period", finals
    assert not any(stock_or_loop(t) for t in finals)


def test_long_silence_ends_a_held_utterance_even_when_audio_comes_in_one_lump(pipeline: Pipeline) -> None:
    # A loaded machine hands the recognizer seconds of audio at once: a short utterance (held, it may be a fragment)
    # then a silence longer than the hold and the next recording must still be two utterances, not one.
    first, second = real_clip("cards-003.wav").samples, real_clip("horizon-right.wav").samples
    gap = silence(pipeline.stream.hold_s + 0.8)
    rec = pipeline.recognizer()
    lump = np.concatenate([first, gap, second, silence(1.0)])
    events = [*rec.feed(lump), *rec.flush()]  # called from this thread: no other stream uses the model now
    finals = [e.text for e in events if isinstance(e, Final) and e.text]
    assert len(finals) == 2, finals
    assert "horizon" in finals[1].lower() and "horizon" not in finals[0].lower(), finals


def test_a_repeated_sentence_is_kept_once() -> None:
    from mailvoice.dictation.recognizer import dedupe_sentences

    assert dedupe_sentences("The horizon seems distant. The horizon seems distant.") == "The horizon seems distant."
    assert dedupe_sentences("We must go now.", "Hi. We must go now.") == ""
    assert dedupe_sentences("New paragraph.", "Dear Bob. New paragraph.") == "New paragraph."
    assert dedupe_sentences("No. No, I said no.") == "No. No, I said no."
    assert dedupe_sentences("See you soon.", "Dear Bob.") == "See you soon."
