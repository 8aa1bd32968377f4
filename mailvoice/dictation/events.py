"""What the streaming recognizer says: partial text while someone speaks, final text per utterance, and status."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Partial:
    """The utterance so far: ``stable`` is committed (two hypotheses agreed), ``unstable`` may still change."""

    utterance: int
    stable: str
    unstable: str
    audio_time: float
    """Seconds of stream audio the hypothesis covers."""

    def to_json(self) -> dict[str, object]:
        return {
            "type": "partial",
            "utterance": self.utterance,
            "stable": self.stable,
            "unstable": self.unstable,
            "audio_time": round(self.audio_time, 3),
        }


@dataclass(frozen=True, slots=True)
class Final:
    """The finished text of one utterance, decided after the endpoint silence."""

    utterance: int
    text: str
    speech_end: float
    """Stream time (s) where the speech ended."""
    endpoint: float
    """Stream time (s) where the endpoint silence had elapsed (the final was started then)."""
    compute_s: float
    """Seconds the final decode took."""

    def to_json(self) -> dict[str, object]:
        return {
            "type": "final",
            "utterance": self.utterance,
            "text": self.text,
            "speech_end": round(self.speech_end, 3),
            "endpoint": round(self.endpoint, 3),
        }


@dataclass(frozen=True, slots=True)
class Status:
    """The recognizer changed how it works to keep up (or recovered): reported so the user knows why."""

    degraded: bool
    step_s: float
    """Audio between partial decodes now."""
    beam_size: int
    """Beam of the final decode now (1 = greedy)."""
    ratio: float
    """Compute seconds per audio second over the recent window."""

    def to_json(self) -> dict[str, object]:
        return {
            "type": "status",
            "degraded": self.degraded,
            "step_s": round(self.step_s, 3),
            "beam_size": self.beam_size,
            "ratio": round(self.ratio, 3),
        }


Event = Partial | Final | Status
