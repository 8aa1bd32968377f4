"""Domain types exchanged between stages: small, frozen, no dicts across module boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True, eq=False)
class AudioClip:
    """Mono float32 samples in [-1, 1]."""

    samples: FloatArray
    """The samples, 1-D float32."""
    sample_rate: int
    """Samples per second."""
    name: str = ""
    """Where it came from (file name, part name), for errors and logs."""

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return float(len(self.samples)) / float(self.sample_rate) if self.sample_rate else 0.0


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its timing and confidence."""

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True, slots=True)
class Segment:
    """One recognised segment (roughly a phrase)."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class Transcript:
    """The result of transcribing one audio clip."""

    text: str
    """Full text, segments joined; empty when no_speech."""
    language: str
    """ISO 639-1 code of the spoken language."""
    duration: float
    """Audio duration in seconds."""
    segments: tuple[Segment, ...] = ()
    no_speech: bool = False
    """True when the audio holds no speech (silence, hang-up, noise): text is then empty."""
    language_probability: float = 1.0
    translation: str = ""
    """English translation (asr.translate with a multilingual model); empty when not asked or already English."""
    other_language: str = ""
    """Speech the model cannot transcribe (an English-only model hearing another language) was left out of text:
    its ISO 639-1 code when a language-ID pass named it, "und" when not."""

    @property
    def words(self) -> tuple[Word, ...]:
        """All words of all segments, in order."""
        return tuple(w for s in self.segments for w in s.words)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready mapping (the `transcribe --json` schema)."""
        return {
            "text": self.text,
            "language": self.language,
            "language_probability": round(self.language_probability, 4),
            "duration": round(self.duration, 3),
            "no_speech": self.no_speech,
            "translation": self.translation,
            "other_language": self.other_language,
            "segments": [
                {
                    "start": round(s.start, 3),
                    "end": round(s.end, 3),
                    "text": s.text,
                    "avg_logprob": round(s.avg_logprob, 4),
                    "no_speech_prob": round(s.no_speech_prob, 4),
                    "words": [
                        {
                            "start": round(w.start, 3),
                            "end": round(w.end, 3),
                            "word": w.word,
                            "probability": round(w.probability, 4),
                        }
                        for w in s.words
                    ],
                }
                for s in self.segments
            ],
        }


@dataclass(frozen=True, slots=True)
class SpeechChunk:
    """One synthesized sentence (TTS streams these so the first audio is ready early)."""

    text: str
    audio: AudioClip
    pause_after: float = 0.0
    """Seconds of silence to put after this chunk (sentence / paragraph break)."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to an outgoing mail."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)
