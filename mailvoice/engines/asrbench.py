"""`mailvoice bench asr`: our transcribe path against bare faster-whisper on real speech, side by side in one run.

The clips are real recordings (tests/data/real, manifest.json with reference transcripts), joined by short pauses
into three length groups (3-10 s, 10-30 s, 2-5 min), each also as a telephone-band copy made here (8 kHz mu-law WAV,
what PBXs send). Per group: wall time of our path (bytes -> load_for_asr -> engine) and of bare
``WhisperModel.transcribe`` (same model, beam 5, same options) on the same decoded arrays, the throughput ratio, the
word error rate of both (same normaliser), the fast variant (greedy first, input cut to 15 s: the beam-on-demand and
truncation evidence), and the
peak resident memory sampled while each path runs.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from mailvoice.config import Settings
    from mailvoice.engines.whisper import WhisperEngine
    from mailvoice.types import AudioClip

GROUPS = (("3-10 s", 3.0, 10.0), ("10-30 s", 10.0, 30.0), ("2-5 min", 120.0, 300.0))
GAP_S = 0.6
FAST_WINDOW_S = 15.0
"""The fast variant measured beside the default: greedy first, encoder input cut to the audio (15 s floor)."""
_PUNCT = re.compile(r"[^\w\s']")
_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
_UNITS += "seventeen eighteen nineteen"
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


@dataclass(frozen=True)
class AsrGroupBench:
    group: str
    band: str
    """"wide" (the recordings as they are) or "phone" (8 kHz mu-law WAV)."""
    clips: int
    audio_seconds: float
    ours_seconds: float
    bare_seconds: float
    throughput_ratio: float
    """bare / ours wall time: how many times faster our path is."""
    ours_wer: float
    bare_wer: float
    fast_seconds: float
    """Our path with asr.greedy_first = true and asr.min_window = 15 (beam only on demand, truncated input)."""
    fast_wer: float
    fast_throughput_ratio: float
    ours_peak_rss_mb: float
    bare_peak_rss_mb: float


def _spoken_number(token: str) -> str:
    n = int(token)
    units = _UNITS.split()
    if n < 20:
        return units[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + units[n % 10])
    return token


def normalise(text: str) -> list[str]:
    """Lowercase, punctuation dropped, numbers under 100 spelt out: '4 of clubs' and 'four of clubs' match."""
    words = _PUNCT.sub(" ", text.lower()).split()
    return " ".join(_spoken_number(w) if w.isdigit() else w for w in words).split()


def edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edit distance, reference length) after normalisation."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


def _default_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "tests" / "data" / "real"


def load_real(directory: Path | None = None) -> list[tuple[npt.NDArray[np.float32], str]]:
    """(16 kHz samples, reference) of every recording with an English reference transcript."""
    from mailvoice.audio.decode import decode_audio
    from mailvoice.config import AudioSettings
    from mailvoice.errors import ConfigError

    directory = directory or _default_dir()
    manifest = directory / "manifest.json"
    if not manifest.is_file():
        raise ConfigError(f"{manifest} not found: the ASR bench needs the real recordings (run it from a checkout)")
    out = []
    for entry in json.loads(manifest.read_text()):
        if entry.get("lang") != "en" or not entry.get("ref"):
            continue
        clip = decode_audio((directory / entry["file"]).read_bytes(), name=entry["file"], settings=AudioSettings())
        out.append((clip.samples, str(entry["ref"])))
    return out


def compose(
    real: list[tuple[npt.NDArray[np.float32], str]], low: float, high: float, count: int
) -> list[tuple[npt.NDArray[np.float32], str]]:
    """``count`` clips of low..high seconds: recordings joined by short pauses, each pass starting elsewhere."""
    import numpy as np

    gap = np.zeros(round(GAP_S * 16000), dtype=np.float32)
    target = low if high <= 30 else (low + high) / 2
    clips: list[tuple[npt.NDArray[np.float32], str]] = []
    k = 0
    while len(clips) < count:
        parts: list[npt.NDArray[np.float32]] = []
        refs: list[str] = []
        seconds = 0.0
        while seconds < target:
            samples, ref = real[k % len(real)]
            k += 1 + (k // len(real)) % 2  # vary the neighbours from pass to pass
            if parts and seconds + GAP_S + len(samples) / 16000 > high:
                break
            parts += [gap, samples] if parts else [samples]
            refs.append(ref)
            seconds = sum(len(p) for p in parts) / 16000
        clips.append((np.concatenate(parts), " ".join(refs)))
    return clips


def _wav(samples: npt.NDArray[np.float32], *, phone: bool) -> bytes:
    """16 kHz PCM WAV, or the telephone copy: 300-3,400 Hz, 8 kHz, mu-law."""
    import io

    import av
    import numpy as np

    rate = 16000
    x: npt.NDArray[Any] = samples
    if phone:
        spectrum = np.fft.rfft(x)
        freqs = np.fft.rfftfreq(len(x), 1 / 16000)
        spectrum[(freqs < 300) | (freqs > 3400)] = 0
        x = np.fft.irfft(spectrum[: len(x) // 4 + 1], len(x) // 2) * 0.5
        rate = 8000
    buf = io.BytesIO()
    with av.open(buf, "w", format="wav") as out:
        stream = out.add_stream("pcm_mulaw" if phone else "pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            (np.clip(x, -1, 1) * 32767).astype("<i2")[None, :], format="s16", layout="mono"
        )
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buf.getvalue()


class _RssSampler:
    """Highest current RSS seen while running (sampled every 5 ms from /proc/self/statm)."""

    def __init__(self) -> None:
        import os

        self._page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _read(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self._page

    def _loop(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._read())

    def __enter__(self) -> _RssSampler:
        self.peak = self._read()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._read())


def _run_group(
    ours: WhisperEngine, settings: Settings, group: str, band: str, clips: list[tuple[bytes, str]]
) -> AsrGroupBench:
    from mailvoice.audio import load_for_asr

    arrays = [load_for_asr(data, name="bench.wav", settings=settings.audio) for data, _ref in clips]
    times = {"ours": 0.0, "bare": 0.0, "beam": 0.0}
    errs = {"ours": 0, "bare": 0, "beam": 0}
    words = 0
    peaks = {"ours": 0, "bare": 0}
    for k, ((data, ref), clip) in enumerate(zip(clips, arrays, strict=True)):
        words += edits(ref, "")[1]

        def ours_run(data: bytes = data) -> str:
            return ours.transcribe(load_for_asr(data, name="bench.wav", settings=settings.audio)).text

        def bare_run(clip: AudioClip = clip) -> str:
            segments, _info = ours.model.transcribe(clip.samples, **ours.options.kwargs())
            return " ".join(s.text.strip() for s in segments)

        def fast_run(data: bytes = data) -> str:
            fast_clip = load_for_asr(data, name="bench.wav", settings=settings.audio)
            return ours.transcribe_many([fast_clip], greedy_first=True, min_window=FAST_WINDOW_S)[0].text

        runs: list[tuple[str, Callable[[], str]]] = [("ours", ours_run), ("bare", bare_run), ("beam", fast_run)]
        for name, run in runs if k % 2 == 0 else runs[::-1]:  # alternate the order: background load drifts
            with _RssSampler() as rss:
                t0 = time.perf_counter()
                text = run()
                times[name] += time.perf_counter() - t0
            if name in peaks:
                peaks[name] = max(peaks[name], rss.peak)
            errs[name] += edits(ref, text)[0]
    return AsrGroupBench(
        group=group,
        band=band,
        clips=len(clips),
        audio_seconds=sum(c.duration for c in arrays),
        ours_seconds=times["ours"],
        bare_seconds=times["bare"],
        throughput_ratio=times["bare"] / times["ours"],
        ours_wer=errs["ours"] / max(words, 1),
        bare_wer=errs["bare"] / max(words, 1),
        fast_seconds=times["beam"],
        fast_wer=errs["beam"] / max(words, 1),
        fast_throughput_ratio=times["bare"] / times["beam"],
        ours_peak_rss_mb=peaks["ours"] / 2**20,
        bare_peak_rss_mb=peaks["bare"] / 2**20,
    )


def bench_asr_real(settings: Settings, *, quick: bool = False, directory: Path | None = None) -> list[AsrGroupBench]:
    """Every group in both bands; ``quick`` takes one or two clips per group (for development)."""
    from mailvoice.engines import load_asr
    from mailvoice.engines.whisper import WhisperEngine

    ours = load_asr(settings.asr, settings.general)
    if not isinstance(ours, WhisperEngine):
        raise TypeError(f"the ASR bench compares against faster-whisper; asr.engine is {settings.asr.engine!r}")
    real = load_real(directory)
    counts = (2, 1, 1) if quick else (12, 6, 2)
    results = []
    warm = _wav(real[0][0], phone=False)
    from mailvoice.audio import load_for_asr

    ours.transcribe(load_for_asr(warm, settings=settings.audio))  # first-call allocations are not per-mail costs
    ours.model.transcribe(load_for_asr(warm, settings=settings.audio).samples, **ours.options.kwargs())
    for (group, low, high), count in zip(GROUPS, counts, strict=True):
        clips = compose(real, low, high, count)
        for band in ("wide", "phone"):
            data = [(_wav(samples, phone=band == "phone"), ref) for samples, ref in clips]
            results.append(_run_group(ours, settings, group, band, data))
    return results
