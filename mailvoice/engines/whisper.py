"""faster-whisper ASR that never invents words: silence, clicks, beeps and noise give an empty transcript."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailvoice.engines.base import ASR_SAMPLE_RATE
from mailvoice.engines.decoding import FULL_WINDOW_S, MAX_WINDOW_S, WindowDecoder, WindowResult
from mailvoice.errors import TranscriptionError
from mailvoice.models import resolve_whisper
from mailvoice.types import AudioClip, Segment, Transcript, Word

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

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
BATCH_WINDOWS = 4
"""Most windows one encoder/decoder call holds (memory grows with it: 4 kept peak RSS near bare with beam 5)."""
_SIMILAR = 0.7
"""A window joins a batch only if it is at least this fraction of the batch's longest (padding is paid for)."""
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
        self._decoder: WindowDecoder | None = None
        log.info("loaded ASR model %s (%s) with %d threads", settings.model, ref.source, self.threads)

    def speech_seconds(self, clip: AudioClip) -> float:
        """Seconds of speech Silero VAD (shipped in faster-whisper) finds in the clip."""
        return float(sum(e - s for s, e in self._speech_spans(clip.samples))) / ASR_SAMPLE_RATE

    @staticmethod
    def _speech_spans(samples: npt.NDArray[np.float32]) -> list[tuple[int, int]]:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        opts = VadOptions(max_speech_duration_s=MAX_WINDOW_S)
        return [(int(s["start"]), int(s["end"])) for s in get_speech_timestamps(samples, opts, ASR_SAMPLE_RATE)]

    @property
    def decoder(self) -> WindowDecoder:
        """The shared truncated-input decoder over this engine's model (built on first use)."""
        if self._decoder is None:
            self._decoder = WindowDecoder.for_engine(self)
        return self._decoder

    def transcribe(self, clip: AudioClip) -> Transcript:
        """Decode the whole clip in the caller's (worker) thread."""
        return self.transcribe_many([clip])[0]

    def transcribe_many(
        self, clips: Sequence[AudioClip], *, greedy_first: bool | None = None, min_window: float | None = None
    ) -> list[Transcript]:
        """Transcribe several clips together: their windows are encoded and decoded in shared batches.

        ``greedy_first`` and ``min_window`` override the settings (the bench compares both on one loaded model).
        """
        greedy = self.settings.greedy_first if greedy_first is None else greedy_first
        floor = self.settings.min_window if min_window is None else min_window
        for clip in clips:
            if clip.sample_rate != ASR_SAMPLE_RATE or clip.samples.ndim != 1:
                raise TranscriptionError(
                    f"{clip.name or 'audio'}: ASR needs 16 kHz mono, got {clip.sample_rate} Hz "
                    f"with shape {clip.samples.shape}; decode it with mailvoice.audio first"
                )
        if floor >= FULL_WINDOW_S and not greedy:
            # The default (Whisper's own 30 s window, beam 5): our batched windows measured no faster than
            # faster-whisper's own decode on short clips and slower and heavier on long ones (README, `bench asr`),
            # and its path carries the language checks, so every clip runs there; the windows are the opt-in fast path.
            return [self._transcribe_whole(c) for c in clips]
        plans = [self._windows(clip) for clip in clips]
        flat = [(c, off, audio) for c, plan in enumerate(plans) for off, audio in plan]
        decoded: list[WindowResult | None] = [None] * len(flat)
        for batch in _batches([len(a) for _c, _o, a in flat]):
            try:
                results = self.decoder.transcribe_windows(
                    [flat[i][2] for i in batch],
                    beam_size=self.options.beam_size,
                    greedy_first=greedy,
                    min_window=floor,
                    word_timestamps=self.options.word_timestamps,
                )
            except TranscriptionError as exc:
                names = sorted({clips[flat[i][0]].name or "audio" for i in batch})
                raise TranscriptionError(f"{', '.join(names)}: transcription failed ({exc})") from exc
            for i, r in zip(batch, results, strict=True):
                decoded[i] = r
        out = []
        for c, clip in enumerate(clips):
            mine = [(off, r) for (cc, off, _a), r in zip(flat, decoded, strict=True) if cc == c and r is not None]
            out.append(self._assemble(clip, mine))
        return out

    def _transcribe_whole(self, clip: AudioClip) -> Transcript:
        """faster-whisper's own transcription (30 s windows, seek by timestamp), our language checks and filters."""
        if clip.samples.size == 0 or (self.options.vad_filter and self.speech_seconds(clip) < _MIN_SPEECH_S):
            log.debug("%s: VAD found no speech in %.1f s", clip.name, clip.duration)
            return self._assemble(clip, [])
        from mailvoice.engines import language

        fallback_language = self.options.language or "en"
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
        lang = info.language or fallback_language
        probability = float(info.language_probability)
        if not text:
            return Transcript(
                text="", language=lang, duration=clip.duration, no_speech=True, language_probability=probability
            )
        return Transcript(
            text=text, language=lang, duration=clip.duration, segments=tuple(kept), language_probability=probability
        )

    def _windows(self, clip: AudioClip) -> list[tuple[float, npt.NDArray[np.float32]]]:
        """(offset seconds, audio) windows of at most MAX_WINDOW_S: speech spans grouped, cut at pauses."""
        samples = clip.samples
        if samples.size == 0:
            return []
        most = round(MAX_WINDOW_S * ASR_SAMPLE_RATE)
        if not self.options.vad_filter:
            return [(i / ASR_SAMPLE_RATE, samples[i : i + most]) for i in range(0, samples.size, most)]
        spans = self._speech_spans(samples)
        if sum(e - s for s, e in spans) < _MIN_SPEECH_S * ASR_SAMPLE_RATE:
            log.debug("%s: VAD found no speech in %.1f s", clip.name, clip.duration)
            return []
        groups: list[list[int]] = []
        for s, e in spans:
            if groups and e - groups[-1][0] <= most:
                groups[-1][1] = e
            else:
                groups.append([s, e])
        return [(s / ASR_SAMPLE_RATE, samples[s:e]) for s, e in groups]

    def _assemble(self, clip: AudioClip, windows: list[tuple[float, WindowResult]]) -> Transcript:
        fallback_language = self.options.language or "en"
        segments: list[Segment] = []
        for off, r in windows:
            for seg in r.segments:
                words = tuple(
                    Word(round(off + w.start, 2), round(off + w.end, 2), w.word, w.probability) for w in seg.words
                )
                segments.append(
                    Segment(
                        round(off + seg.start, 2),
                        round(off + seg.end, 2),
                        seg.text,
                        r.avg_logprob,
                        r.no_speech_prob,
                        words,
                    )
                )
        kept = self._filter(segments)
        spoken = [r for _o, r in windows if r.text]
        language = spoken[0].language if spoken else fallback_language
        probability = spoken[0].language_probability if spoken else 0.0
        from mailvoice.engines import language as languages

        checked = languages.check(self, clip, kept, language)
        if checked is not None:
            return checked
        text = " ".join(s.text for s in kept).strip()
        if not text:
            return Transcript(
                text="", language=language, duration=clip.duration, no_speech=True, language_probability=probability
            )
        return Transcript(
            text=text,
            language=language,
            duration=clip.duration,
            segments=tuple(kept),
            language_probability=probability,
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
            if _NON_WORD.sub("", s.text).strip()  # a segment of bare punctuation ("." on noise) holds no word
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


def _batches(lengths: Sequence[int]) -> list[list[int]]:
    """Indices grouped longest first into batches of similar length (a short window is not padded to 28 s)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < BATCH_WINDOWS and lengths[i] >= _SIMILAR * lengths[batches[-1][0]]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches
