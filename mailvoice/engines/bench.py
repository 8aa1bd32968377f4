"""Speed and memory figures for `mailvoice bench asr|tts`, measured against a bare baseline in the same process."""

from __future__ import annotations

import logging
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.engines.base import TtsEngine

log = logging.getLogger(__name__)

BENCH_TEXT = (
    "Good morning, this is Maria from the accounting office. I am calling about the invoice you sent last "
    "week for the garden work at the north building. The total looks right, but the purchase order number "
    "is missing, and our system will not release the payment without it. Could you send a corrected copy "
    "by email before Friday? If that is difficult, please call me back and we can sort it out over the "
    "phone.\n\nAlso, the manager asked whether your team could return next month to trim the hedges along "
    "the parking lot. She would like a quote for that work, with the materials listed separately. Thank "
    "you, and have a pleasant day."
)
"""About forty seconds of speech: long enough for stable figures, short enough to run in seconds."""


@dataclass(frozen=True)
class AsrBench:
    """Our whole transcribe path (decode, preprocess, VAD gate, decode, filters) against bare faster-whisper."""

    model: str
    compute_type: str
    threads: int
    audio_seconds: float
    ours_seconds: float
    """Median wall time of bytes -> mailvoice.audio.load_for_asr -> our engine."""
    bare_seconds: float
    """Median wall time of WhisperModel.transcribe on the same array, same options, generator consumed."""
    speed: float
    """Audio seconds per wall second on our path (x real time; 1 / real-time factor)."""
    overhead_ratio: float
    """ours / bare: the cost of everything we add around faster-whisper."""
    peak_rss_mb: float


@dataclass(frozen=True)
class TtsBench:
    """Synthesis speed, latency to the first sentence, and memory with both models loaded."""

    engine: str
    voice: str
    threads: int
    audio_seconds: float
    synth_seconds: float
    speed: float
    """Audio seconds per wall second (x real time)."""
    first_sentence_seconds: float
    """From the synthesize() call to the first chunk in hand (median)."""
    peak_rss_mb: float
    """Peak resident memory of this process with the ASR model and the voice both loaded."""


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def wav_bytes(tts: TtsEngine, text: str) -> bytes:
    """Speak ``text`` into an in-memory 16-bit WAV (pauses included): the input the ASR bench decodes."""
    from mailvoice.audio import assemble, encode_audio

    return encode_audio(assemble(tts.synthesize(text)), "wav")


def bench_asr(settings: Settings, data: bytes | None = None, *, name: str = "bench.wav", repeats: int = 3) -> AsrBench:
    """Time our transcribe path and bare faster-whisper on the same audio (Piper speech when none is given)."""
    from mailvoice.audio import load_for_asr
    from mailvoice.engines import load_asr, load_tts
    from mailvoice.engines.whisper import WhisperEngine

    if data is None:
        data = wav_bytes(load_tts(settings.tts, settings.general), BENCH_TEXT)
    engine = load_asr(settings.asr, settings.general)
    if not isinstance(engine, WhisperEngine):
        raise TypeError(f"the ASR bench compares against faster-whisper; asr.engine is {settings.asr.engine!r}")

    def ours() -> object:
        return engine.transcribe(load_for_asr(data, name=name, settings=settings.audio))

    clip = load_for_asr(data, name=name, settings=settings.audio)

    def bare() -> object:
        segments, _info = engine.model.transcribe(clip.samples, **engine.options.kwargs())
        return list(segments)

    ours()  # warm-up: first-call allocations and lazy imports are not what users wait for per mail
    bare()
    ours_s = _median_time(ours, repeats)
    bare_s = _median_time(bare, repeats)
    return AsrBench(
        model=settings.asr.model,
        compute_type=settings.asr.compute_type,
        threads=engine.threads,
        audio_seconds=clip.duration,
        ours_seconds=ours_s,
        bare_seconds=bare_s,
        speed=clip.duration / ours_s,
        overhead_ratio=ours_s / bare_s,
        peak_rss_mb=peak_rss_mb(),
    )


def bench_tts(settings: Settings, text: str | None = None, *, repeats: int = 3) -> TtsBench:
    """Time synthesis of ``text`` (BENCH_TEXT by default) sentence by sentence, with the ASR model loaded too."""
    from mailvoice.engines import load_asr, load_tts

    text = text or BENCH_TEXT
    tts = load_tts(settings.tts, settings.general)
    asr = load_asr(settings.asr, settings.general)  # the RSS figure is for a process holding both
    next(iter(tts.synthesize("Warm up.")))
    firsts: list[float] = []
    totals: list[float] = []
    audio_seconds = 0.0
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        chunks = iter(tts.synthesize(text))
        first = next(chunks)
        firsts.append(time.perf_counter() - start)
        rest = list(chunks)
        totals.append(time.perf_counter() - start)
        audio_seconds = sum(c.audio.duration for c in (first, *rest))
    synth_s = statistics.median(totals)
    log.debug("bench held %s and %s", asr.name, tts.name)
    return TtsBench(
        engine=tts.name,
        voice=settings.tts.voice,
        threads=int(getattr(tts, "threads", 0)),
        audio_seconds=audio_seconds,
        synth_seconds=synth_s,
        speed=audio_seconds / synth_s,
        first_sentence_seconds=statistics.median(firsts),
        peak_rss_mb=peak_rss_mb(),
    )
