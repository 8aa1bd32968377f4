"""`mailvoice bench dictation`: real recordings (or, without any, synthesized speech) fed at real-time pace.

The recordings come from a folder with a manifest.json (``--data``; the repository's tests/data/real by default),
English ones with a reference transcript, one after the other with GAP_S of silence between them.

Measured on the wall clock against the pace of the fake microphone: endpoint to final text (the endpoint is the
moment the VAD's silence had elapsed), end of speech to final text, the gap between partials while someone speaks,
and compute seconds per audio second.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from mailvoice.config import Settings

GAP_S = 2.0
"""Silence between recordings: longer than the longest hold, so each is one utterance."""
TARGET_FINAL_P95_S = 0.3
TARGET_PARTIAL_S = 0.3
TARGET_RATIO = 0.5


@dataclass(frozen=True)
class DictationBench:
    """Latency and cost of live dictation on this machine."""

    audio_seconds: float
    utterances: int
    final_p50_s: float
    """Endpoint (speech end + endpoint silence) to final text, median."""
    final_p95_s: float
    speech_end_to_final_p50_s: float
    """True end of speech to final text (includes the endpoint silence), median."""
    partial_interval_p50_s: float
    """Time between consecutive partials within an utterance, median."""
    partial_interval_p95_s: float
    compute_ratio: float
    """Compute seconds per audio second over the whole run."""
    degraded: bool
    """The recognizer slowed itself down at some point to keep up."""
    wer: float
    """Word error rate of the finals against the script."""
    source: str
    """Where the speech came from: the recordings folder, or "piper" (synthesized)."""
    endpoint_silence_s: float
    step_s: float
    final_beam: int

    @property
    def meets_targets(self) -> bool:
        return (
            self.final_p95_s <= TARGET_FINAL_P95_S
            and self.partial_interval_p95_s <= TARGET_PARTIAL_S
            and self.compute_ratio <= TARGET_RATIO
        )


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _real(settings: Settings, folder: Path, seconds: float) -> tuple[npt.NDArray[np.float32], str]:
    """English recordings from the folder's manifest, GAP_S apart, until about ``seconds`` (at least one)."""
    import numpy as np

    from mailvoice.dictation.sources import load_file
    from mailvoice.quality import load_manifest

    gap = np.zeros(round(GAP_S * 16_000), dtype=np.float32)
    parts, spoken, total = [gap], [], 0.0
    for entry in load_manifest(folder):
        samples = load_file(folder / entry["file"], settings.audio)
        parts += [samples, gap]
        spoken.append(entry["ref"])
        total += len(samples) / 16_000 + GAP_S
        if total >= seconds:
            break
    return np.concatenate(parts), " ".join(spoken)


def _script(settings: Settings, seconds: float) -> tuple[npt.NDArray[np.float32], str]:
    """BENCH_TEXT spoken sentence by sentence with GAP_S between, cut to about ``seconds``; 16 kHz."""
    import numpy as np

    from mailvoice.audio import encode_audio, load_for_asr
    from mailvoice.engines import load_tts
    from mailvoice.engines.bench import BENCH_TEXT
    from mailvoice.types import AudioClip

    tts = load_tts(settings.tts, settings.general)
    parts: list[npt.NDArray[np.float32]] = [np.zeros(round(0.5 * tts.sample_rate), dtype=np.float32)]
    spoken: list[str] = []
    total = 0.0
    for chunk in tts.synthesize(BENCH_TEXT):
        parts += [chunk.audio.samples, np.zeros(round(GAP_S * tts.sample_rate), dtype=np.float32)]
        spoken.append(chunk.text)
        total += chunk.audio.duration + GAP_S
        if total >= seconds:
            break
    wav = encode_audio(AudioClip(np.concatenate(parts), tts.sample_rate), "wav")
    clip = load_for_asr(wav, name="bench-dictation.wav", settings=settings.audio)
    return clip.samples, " ".join(spoken)


def _wer(reference: str, hypothesis: str) -> float:
    """Word-level edit distance / reference length, case and punctuation ignored."""

    def norm(t: str) -> list[str]:
        return re.sub(r"[^\w\s']", " ", t.lower()).split()

    ref, hyp = norm(reference), norm(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


async def _run(settings: Settings, samples: npt.NDArray[np.float32]) -> tuple[list[tuple[float, object]], object]:
    from mailvoice.dictation.runtime import Pipeline
    from mailvoice.dictation.session import DictationSession
    from mailvoice.dictation.sources import PacedSource

    pipeline = await asyncio.to_thread(Pipeline, settings)
    try:
        recognizer = pipeline.recognizer()
        # Warm the model (first calls allocate) so the figures are the steady state.
        await pipeline.worker.run(pipeline.decoder.decode, samples[: 16_000 * 2])
        source = PacedSource(samples, realtime=True)
        session = DictationSession(recognizer, pipeline.worker)
        timed: list[tuple[float, object]] = []
        async for event in session.run(source.frames()):
            timed.append((time.monotonic() - source.t0, event))
        return timed, recognizer
    finally:
        await asyncio.to_thread(pipeline.close)


def bench_dictation(settings: Settings, seconds: float = 30.0, folder: Path | None = None) -> DictationBench:
    """Run the benchmark (blocking; about ``seconds`` of wall time plus model loading)."""
    from mailvoice.dictation.events import Final, Partial, Status
    from mailvoice.dictation.recognizer import StreamingRecognizer
    from mailvoice.quality import default_folder

    folder = folder or (default_folder() if (default_folder() / "manifest.json").is_file() else None)
    if folder is not None:
        samples, script = _real(settings, folder, seconds)
    else:
        samples, script = _script(settings, seconds)
    timed, rec = asyncio.run(_run(settings, samples))
    assert isinstance(rec, StreamingRecognizer)
    finals = [(t, e) for t, e in timed if isinstance(e, Final)]
    final_lat = [t - e.endpoint for t, e in finals]
    speech_lat = [t - e.speech_end for t, e in finals]
    intervals: list[float] = []
    last: dict[int, float] = {}
    for t, e in timed:
        if isinstance(e, Partial):
            if e.utterance in last:
                intervals.append(t - last[e.utterance])
            last[e.utterance] = t
    return DictationBench(
        audio_seconds=len(samples) / 16_000,
        utterances=len(finals),
        final_p50_s=statistics.median(final_lat) if final_lat else float("nan"),
        final_p95_s=_pct(final_lat, 0.95),
        speech_end_to_final_p50_s=statistics.median(speech_lat) if speech_lat else float("nan"),
        partial_interval_p50_s=statistics.median(intervals) if intervals else float("nan"),
        partial_interval_p95_s=_pct(intervals, 0.95),
        compute_ratio=rec.ratio,
        degraded=any(isinstance(e, Status) and e.degraded for _, e in timed),
        wer=_wer(script, " ".join(e.text for _, e in finals)),
        source=str(folder) if folder is not None else "piper",
        endpoint_silence_s=rec.settings.vad.silence_s,
        step_s=rec.settings.step_s,
        final_beam=rec.settings.final_beam,
    )
