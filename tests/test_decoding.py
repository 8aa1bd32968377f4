"""The shared truncated-input decoder: loop guards, windows of long real speech, batches of clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from speech import ASR_RATE, whisper_engine

from mailvoice.audio.decode import decode_audio
from mailvoice.config import AudioSettings
from mailvoice.engines.asrbench import edits
from mailvoice.engines.decoding import (
    MAX_WINDOW_S,
    compression_ratio,
    echoes,
    looped,
    repeats,
    silent,
    token_budget,
)
from mailvoice.types import AudioClip

REAL = Path(__file__).parent / "data" / "real"


def test_guards_reject_decoder_loops_and_keep_speech() -> None:
    assert repeats(["distribute", "distribute", "distribute", "distribute"])
    assert repeats(["hi", "bob", "hi", "bob"])
    assert not repeats(["no,", "no,", "no,", "I", "said", "Tuesday"])
    assert echoes(["call", "me", "back", "about", "the", "invoice", "and", "call", "me", "back", "about"])
    looping = "thank you for calling " * 12
    assert compression_ratio(looping) > 2.4 > compression_ratio("He began a confused complaint against the wizard.")
    assert looped(looping, 60, 20.0)  # gzip squeezes it like a loop
    assert looped("t t t t t t", 6, 3.0)
    assert looped("words " * 30, 30, 2.0)  # more than 6 words per second
    assert looped("fine", token_budget(2.0), 2.0)  # the length cap was hit
    assert not looped("We must find a new home in the stars.", 11, 3.6)
    assert token_budget(10.0, timestamps=True) > token_budget(10.0)
    assert silent(0.9, -1.5) and not silent(0.9, -0.3) and not silent(0.1, -1.5)


def _real() -> list[tuple[np.ndarray, str]]:
    out = []
    for entry in json.loads((REAL / "manifest.json").read_text()):
        if entry["lang"] == "en" and entry["ref"]:
            clip = decode_audio((REAL / entry["file"]).read_bytes(), name=entry["file"], settings=AudioSettings())
            out.append((clip.samples, entry["ref"]))
    return out


def _wer(ref: str, hyp: str) -> float:
    e, n = edits(ref, hyp)
    return e / n


@pytest.mark.slow
def test_long_real_speech_is_cut_into_windows_and_kept_whole() -> None:
    """Over 28 s of real speech (recordings joined by pauses): several windows, no words lost or invented at the
    cuts, segments in order with word times inside them, and no worse than bare faster-whisper on the same array."""
    engine = whisper_engine()
    real = _real()
    gap = np.zeros(ASR_RATE // 2, dtype=np.float32)
    order = [5, 6, 7, 0, 4, 1, 5, 2, 6, 3, 7, 4, 5, 6]
    samples = np.concatenate([x for i in order for x in (real[i][0], gap)])
    reference = " ".join(real[i][1] for i in order)
    clip = AudioClip(samples, ASR_RATE, "long-real")
    assert clip.duration > 2 * MAX_WINDOW_S
    assert len(engine._windows(clip)) >= 2
    result = engine.transcribe(clip)
    segments, _info = engine.model.transcribe(samples, **engine.options.kwargs())
    bare = " ".join(s.text for s in segments)
    assert _wer(reference, result.text) <= _wer(reference, bare) + 0.05, (result.text, bare)
    previous = 0.0
    for seg in result.segments:
        assert previous - 0.05 <= seg.start <= seg.end <= clip.duration + 0.5
        previous = seg.end
        for w in seg.words:
            assert seg.start - 0.05 <= w.start <= w.end <= seg.end + 0.05
    assert result.segments[-1].end > clip.duration - 10.0  # the last window was decoded too


@pytest.mark.slow
def test_a_batch_of_clips_gives_each_clip_its_own_text() -> None:
    engine = whisper_engine()
    real = _real()
    picks = [5, 6, 7]  # three different sentences, decoded in one batch
    clips = [AudioClip(real[i][0], ASR_RATE, f"clip{i}") for i in picks]
    results = engine.transcribe_many([*clips, AudioClip(np.zeros(ASR_RATE * 3, np.float32), ASR_RATE, "silence")])
    for i, result in zip(picks, results, strict=False):
        assert _wer(real[i][1], result.text) <= 0.2, result.text
    assert results[-1].no_speech and results[-1].text == ""
    alone = engine.transcribe(clips[0])
    assert _wer(real[picks[0]][1], alone.text) == _wer(real[picks[0]][1], results[0].text)


def test_batching_worker_gives_each_caller_its_own_result_and_error() -> None:
    import threading

    from mailvoice.engines.executor import BatchingWorker

    batches: list[list[int]] = []
    gate = threading.Event()

    def run_many(items: list[int]) -> list[int]:
        gate.wait(5)
        batches.append(items)
        if 13 in items:
            raise ValueError("unlucky")
        return [i * 10 for i in items]

    worker: BatchingWorker[int, int] = BatchingWorker("test", run_many)
    futures = [worker.submit(i) for i in (1, 2, 13, 4)]  # queued while the first call waits: later ones batch
    gate.set()
    assert futures[0].result(5) == 10 and futures[1].result(5) == 20 and futures[3].result(5) == 40
    with pytest.raises(ValueError, match="unlucky"):
        futures[2].result(5)
    assert any(len(b) > 1 for b in batches)  # several waiting items ran as one batch
    worker.close()
    with pytest.raises(RuntimeError):
        worker.submit(5)


@pytest.mark.slow
def test_transcriber_batches_concurrent_voicemails() -> None:
    """Two sources hand in voicemails at once: each gets its own transcript (real recordings through the runner's
    Transcriber and the engine's batch path)."""
    from concurrent.futures import ThreadPoolExecutor

    from speech import general

    from mailvoice.config import Settings
    from mailvoice.runner import Transcriber

    transcriber = Transcriber(Settings(general=general()), whisper_engine())
    files = {"wizard-left.wav": 5, "horizon-right.wav": 6, "new-home-in-the-stars.wav": 7}
    real = _real()
    try:
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda f: transcriber((REAL / f).read_bytes(), f), files))
    finally:
        transcriber.close()
    for result, index in zip(results, files.values(), strict=True):
        assert _wer(real[index][1], result.text) <= 0.2, result.text
