"""faster-whisper ASR that never invents words: silence, clicks, beeps and noise give an empty transcript."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailvoice.engines.base import ASR_SAMPLE_RATE
from mailvoice.errors import TranscriptionError
from mailvoice.models import resolve_whisper
from mailvoice.types import AudioClip, Segment, Transcript, Word

if TYPE_CHECKING:
    from mailvoice.config import AsrSettings, GeneralSettings

log = logging.getLogger(__name__)

HALLUCINATIONS = frozenset(
    {
        "you",
        "thank you",
        "thanks",
        "thank you very much",
        "thank you so much",
        "thanks for watching",
        "thank you for watching",
        "thanks for listening",
        "thank you for listening",
        "bye",
        "bye bye",
        "okay",
        "so",
        "please subscribe",
        "subscribe",
        "like and subscribe",
        "music",
        "applause",
        "silence",
        "the end",
        "subtitles by the amaraorg community",
        "transcription by castingwords",
    }
)
"""Whisper's stock phrases for non-speech: dropped only when they are the whole text AND score weakly."""
_WEAK_LOGPROB = -0.9
_WEAK_NO_SPEECH = 0.35
_WEAK_WORD_PROB = 0.2
_MIN_SPEECH_S = 0.12
"""Less VAD speech than this in a whole clip is a click or a hang-up, not a word."""
_NON_WORD = re.compile(r"[^\w\s]")
_BRACKETED = re.compile(r"^\s*[\[(♪*].*[\])♪*]\s*$")


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """The faster-whisper options both our engine and the bench's bare baseline pass."""

    language: str | None
    beam_size: int
    vad_filter: bool
    word_timestamps: bool
    initial_prompt: str | None
    hotwords: str | None
    no_speech_threshold: float
    log_prob_threshold: float
    multilingual: bool = False
    """Detect the language per 30 s window (a multilingual model with no language fixed): mixed voicemails."""

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for WhisperModel.transcribe."""
        return {
            "language": self.language,
            "beam_size": self.beam_size,
            "vad_filter": self.vad_filter,
            "word_timestamps": self.word_timestamps,
            "initial_prompt": self.initial_prompt,
            "hotwords": self.hotwords,
            "no_speech_threshold": self.no_speech_threshold,
            "log_prob_threshold": self.log_prob_threshold,
            "condition_on_previous_text": False,
            "multilingual": self.multilingual,
        }


def _normalise(text: str) -> str:
    return " ".join(_NON_WORD.sub("", text.lower()).split())


class WhisperEngine:
    """Whisper on CPU through CTranslate2; one instance per loaded model, used from one worker thread."""

    name = "faster-whisper"

    def __init__(self, settings: AsrSettings, general: GeneralSettings) -> None:
        from faster_whisper import WhisperModel

        ref = resolve_whisper(settings.model, general)
        self.settings = settings
        self.general = general
        self.model_ref = ref
        self.threads = settings.threads or os.cpu_count() or 1
        download_root = str(general.data_dir / "models" / "hub") if ref.source == "hub" else None
        try:
            self.model = WhisperModel(
                ref.location,
                device="cpu",
                compute_type=settings.compute_type,
                cpu_threads=self.threads,
                download_root=download_root,
                local_files_only=not general.allow_downloads,
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise TranscriptionError(
                f"ASR model {settings.model!r} at {ref.location} failed to load ({exc}); check asr.model and "
                f"asr.compute_type = {settings.compute_type!r} (int8, int8_float32, float32)"
            ) from exc
        multilingual = bool(self.model.model.is_multilingual)
        language: str | None = None if settings.language == "auto" else settings.language
        if not multilingual:
            if language not in (None, "en"):
                log.warning("model %s is English-only: asr.language %s ignored", settings.model, language)
            language = "en"
        self.options = DecodeOptions(
            language=language,
            beam_size=settings.beam_size,
            vad_filter=settings.vad_filter,
            word_timestamps=settings.word_timestamps,
            initial_prompt=settings.initial_prompt or None,
            hotwords=settings.hotwords or None,
            no_speech_threshold=settings.no_speech_threshold,
            log_prob_threshold=settings.logprob_threshold,
            multilingual=multilingual and language is None and not settings.languages,
        )
        self.multilingual = multilingual
        log.info("loaded ASR model %s (%s) with %d threads", settings.model, ref.source, self.threads)

    def speech_seconds(self, clip: AudioClip) -> float:
        """Seconds of speech Silero VAD (shipped in faster-whisper) finds in the clip."""
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        spans = get_speech_timestamps(clip.samples, VadOptions(), sampling_rate=ASR_SAMPLE_RATE)
        return float(sum(s["end"] - s["start"] for s in spans)) / ASR_SAMPLE_RATE

    def transcribe(self, clip: AudioClip) -> Transcript:
        """Decode the whole clip; the segment generator is consumed here, in the caller's (worker) thread."""
        if clip.sample_rate != ASR_SAMPLE_RATE or clip.samples.ndim != 1:
            raise TranscriptionError(
                f"{clip.name or 'audio'}: ASR needs 16 kHz mono, got {clip.sample_rate} Hz "
                f"with shape {clip.samples.shape}; decode it with mailvoice.audio first"
            )
        fallback_language = self.options.language or "en"
        empty = Transcript(text="", language=fallback_language, duration=clip.duration, no_speech=True)
        if clip.samples.size == 0:
            return empty
        if self.options.vad_filter and self.speech_seconds(clip) < _MIN_SPEECH_S:
            log.debug("%s: VAD found no speech in %.1f s", clip.name, clip.duration)
            return empty
        from mailvoice.engines import language

        try:
            kwargs = {**self.options.kwargs(), **language.forced_language(self, clip.samples)}
            raw_segments, info = self.model.transcribe(clip.samples, **kwargs)
            segments = [self._segment(s) for s in raw_segments]  # inference happens while iterating
        except (RuntimeError, ValueError) as exc:
            raise TranscriptionError(f"{clip.name or 'audio'}: transcription failed ({exc})") from exc
        kept = self._filter(segments)
        checked = language.check(self, clip, kept, str(info.language or fallback_language))
        if checked is not None:
            return checked
        text = " ".join(s.text for s in kept).strip()
        if not text:
            return Transcript(
                text="",
                language=info.language or fallback_language,
                duration=clip.duration,
                no_speech=True,
                language_probability=float(info.language_probability),
            )
        return Transcript(
            text=text,
            language=info.language,
            duration=clip.duration,
            segments=tuple(kept),
            language_probability=float(info.language_probability),
        )

    @staticmethod
    def _segment(raw: Any) -> Segment:
        words = tuple(Word(float(w.start), float(w.end), str(w.word), float(w.probability)) for w in raw.words or ())
        return Segment(
            float(raw.start),
            float(raw.end),
            str(raw.text).strip(),
            float(raw.avg_logprob),
            float(raw.no_speech_prob),
            words,
        )

    def _filter(self, segments: list[Segment]) -> list[Segment]:
        """Drop silent/unsure segments (Whisper's own rule) and a lone stock phrase with weak scores."""
        kept = [
            s
            for s in segments
            if s.text
            and not _BRACKETED.match(s.text)
            and not (
                s.no_speech_prob > self.settings.no_speech_threshold and s.avg_logprob < self.settings.logprob_threshold
            )
        ]
        if not kept or _normalise(" ".join(s.text for s in kept)) not in HALLUCINATIONS:
            return kept
        words = [w for s in kept for w in s.words]
        weak = (
            min(s.avg_logprob for s in kept) < _WEAK_LOGPROB
            or max(s.no_speech_prob for s in kept) > _WEAK_NO_SPEECH
            or (bool(words) and sum(w.probability for w in words) / len(words) < _WEAK_WORD_PROB)
        )
        return [] if weak else kept
