"""`mailvoice bench quality`: word error rate on real recordings, through our path and bare faster-whisper.

Any folder with a ``manifest.json`` (a list of {"file", "ref", "lang"}) will do; the default is the repository's
tests/data/real. Each file is also made telephone-band at run time (8 kHz GSM 06.10 WAV, 8 kHz mu-law WAV and
AMR-NB through sox, 32 kbit/s 8 kHz MP3 through PyAV) and every variant is transcribed twice in the same run: by
our path (bytes -> mailvoice.audio -> WhisperEngine) and by bare faster-whisper (its own decode_audio, the same
loaded model, the same options). Dictation WER is measured on the original files played at real-time pace.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailvoice.errors import ConfigError

if TYPE_CHECKING:
    from mailvoice.config import GeneralSettings, Settings

log = logging.getLogger(__name__)
VARIANTS = ("original", "gsm-wav", "mulaw-wav", "amr-nb", "mp3-32k")
_SOX = {"gsm-wav": ("wav", ["-e", "gsm-full-rate"]), "mulaw-wav": ("wav", ["-e", "u-law"]), "amr-nb": ("amr", [])}
DICTATION_GAP_S = 2.5
"""Silence between files fed to dictation: longer than any hold, so each file is its own utterance."""


@dataclass(frozen=True)
class QualityBench:
    """WER (0-1, case and punctuation ignored) per telephone variant, ours against bare, and dictation."""

    model: str
    folder: str
    files: int
    words: int
    wer_ours: dict[str, float]
    wer_bare: dict[str, float]
    rtf_ours: dict[str, float]
    """Wall seconds per audio second on our path, per variant."""
    rtf_bare: dict[str, float]
    dictation_wer: float
    """The original files played at real-time pace through the streaming recognizer."""
    dictation_batch_wer: float
    """Our batch WER on the same files (the original variant), for comparison with dictation_wer."""
    other_language_flags: int
    """English recordings (any variant) whose speech was taken for another language: should be 0."""
    decode_errors: dict[str, int]
    """Files of each variant our path could not decode (counted as all words missed in its WER)."""


def _figures_path(general: GeneralSettings, model: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in model)
    return general.data_dir / "bench" / f"quality-{safe}.json"


def save_figures(general: GeneralSettings, bench: QualityBench) -> None:
    """Keep the figures (numbers only, no text) for `mailvoice models`."""
    import dataclasses

    path = _figures_path(general, bench.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(bench)), "utf-8")


def saved_figures(general: GeneralSettings, model: str) -> dict[str, Any] | None:
    """The last bench quality figures for the model on this machine, if any."""
    try:
        doc: dict[str, Any] = json.loads(_figures_path(general, model).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return doc


def load_manifest(folder: Path) -> list[dict[str, Any]]:
    path = folder / "manifest.json"
    try:
        entries = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: cannot read the recordings manifest ({exc}); give --data a folder with one"
        ) from exc
    usable = [e for e in entries if e.get("ref") and e.get("lang") == "en" and (folder / e["file"]).is_file()]
    if not usable:
        raise ConfigError(f"{path}: no English recording with a reference transcript (keys file, ref, lang)")
    return usable


def default_folder() -> Path:
    return Path("tests/data/real")


def telephone(src: Path, variant: str, tmp: Path) -> bytes:
    """The recording as a telephone system would deliver it."""
    if variant == "original":
        return src.read_bytes()
    if variant == "mp3-32k":
        return _mp3_8k(src)
    if shutil.which("sox") is None:
        raise ConfigError("bench quality needs sox for the telephone variants: apt-get install sox libsox-fmt-all")
    ext, enc = _SOX[variant]
    out = tmp / f"{src.stem}.{variant}.{ext}"
    kind = ["-t", "amr-nb"] if variant == "amr-nb" else []
    subprocess.run(["sox", str(src), "-r", "8000", "-c", "1", *enc, *kind, str(out)], check=True, capture_output=True)
    return out.read_bytes()


def _mp3_8k(src: Path) -> bytes:
    import av
    import numpy as np

    from mailvoice.audio import load_for_asr
    from mailvoice.config import AudioSettings

    clip = load_for_asr(src.read_bytes(), name=src.name, settings=AudioSettings(highpass_hz=0, normalize=False))
    x8 = np.convolve(clip.samples, np.ones(3, dtype=np.float32) / 3, mode="same")[::2]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        stream: Any = out.add_stream("libmp3lame", rate=8000)
        stream.bit_rate = 32_000
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((np.clip(x8, -1, 1) * 32767).astype("<i2")[None, :], "s16", "mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buf.getvalue()


def _wer(refs: list[str], hyps: list[str]) -> float:
    from mailvoice.dictation.bench import _wer as one

    words = sum(len(r.split()) for r in refs)
    return sum(one(r, h) * len(r.split()) for r, h in zip(refs, hyps, strict=True)) / max(1, words)


def _bare(model: Any, data: bytes, kwargs: dict[str, Any]) -> str:
    from faster_whisper import decode_audio

    samples = decode_audio(io.BytesIO(data), sampling_rate=16_000)
    segments, _ = model.transcribe(samples, **kwargs)
    return " ".join(str(s.text).strip() for s in segments).strip()


def bench_quality(settings: Settings, folder: Path | None = None) -> QualityBench:
    """Run the benchmark (blocking; a few seconds per file and variant, plus real time for dictation)."""
    from mailvoice.audio import load_for_asr
    from mailvoice.engines.whisper import WhisperEngine
    from mailvoice.errors import AudioError
    from mailvoice.types import Transcript

    folder = folder or default_folder()
    entries = load_manifest(folder)
    engine = WhisperEngine(settings.asr, settings.general)
    kwargs = engine.options.kwargs()
    refs = [e["ref"] for e in entries]
    audio_s = 0.0
    ours: dict[str, list[str]] = {}
    bare: dict[str, list[str]] = {}
    t_ours: dict[str, float] = {}
    t_bare: dict[str, float] = {}
    flags = 0
    errors = dict.fromkeys(VARIANTS, 0)
    with tempfile.TemporaryDirectory(prefix="mailvoice-quality-") as tmp:
        for variant in VARIANTS:
            ours[variant], bare[variant] = [], []
            t_ours[variant] = t_bare[variant] = 0.0
            for e in entries:
                data = telephone(folder / e["file"], variant, Path(tmp))
                t0 = time.perf_counter()
                try:
                    t = engine.transcribe(load_for_asr(data, name=e["file"], settings=settings.audio))
                except AudioError as exc:
                    log.warning("bench quality: %s (%s) did not decode: %s", e["file"], variant, exc)
                    errors[variant] += 1
                    t = Transcript("", "en", 0.0, no_speech=True)
                t1 = time.perf_counter()
                try:
                    bare[variant].append(_bare(engine.model, data, kwargs))
                except Exception as exc:  # bare faster-whisper raises PyAV's own errors
                    log.warning(
                        "bench quality: bare faster-whisper could not decode %s (%s): %s", e["file"], variant, exc
                    )
                    bare[variant].append("")
                t_bare[variant] += time.perf_counter() - t1
                t_ours[variant] += t1 - t0
                ours[variant].append(t.text)
                flags += bool(t.other_language)
                if variant == "original":
                    audio_s += t.duration
    dictated = _dictation(settings, folder, entries)
    bench = QualityBench(
        model=settings.asr.model,
        folder=str(folder),
        files=len(entries),
        words=sum(len(r.split()) for r in refs),
        wer_ours={v: round(_wer(refs, ours[v]), 4) for v in VARIANTS},
        wer_bare={v: round(_wer(refs, bare[v]), 4) for v in VARIANTS},
        rtf_ours={v: round(t_ours[v] / audio_s, 3) for v in VARIANTS},
        rtf_bare={v: round(t_bare[v] / audio_s, 3) for v in VARIANTS},
        dictation_wer=round(_wer(refs, dictated), 4),
        dictation_batch_wer=round(_wer(refs, ours["original"]), 4),
        other_language_flags=flags,
        decode_errors=errors,
    )
    save_figures(settings.general, bench)
    return bench


def _dictation(settings: Settings, folder: Path, entries: list[dict[str, Any]]) -> list[str]:
    """Each file's dictated text: all files in one real-time stream, a long silence between them."""
    import asyncio

    import numpy as np

    from mailvoice.dictation.events import Final
    from mailvoice.dictation.runtime import Pipeline
    from mailvoice.dictation.session import DictationSession
    from mailvoice.dictation.sources import PacedSource, load_file

    gap = np.zeros(round(DICTATION_GAP_S * 16_000), dtype=np.float32)
    pieces, bounds, at = [gap], [], len(gap)
    for e in entries:
        samples = load_file(folder / e["file"], settings.audio)
        pieces += [samples, gap]
        bounds.append((at / 16_000, (at + len(samples)) / 16_000 + DICTATION_GAP_S))
        at += len(samples) + len(gap)

    async def run() -> list[Final]:
        pipeline = await asyncio.to_thread(Pipeline, settings)
        try:
            session = DictationSession(pipeline.recognizer(), pipeline.worker)
            source = PacedSource(np.concatenate(pieces), realtime=True)
            return [e async for e in session.run(source.frames()) if isinstance(e, Final) and e.text]
        finally:
            await asyncio.to_thread(pipeline.close)

    finals = asyncio.run(run())
    return [" ".join(f.text for f in finals if lo <= f.speech_end <= hi) for lo, hi in bounds]
