"""Endpointing: Silero VAD (shipped inside faster-whisper) run frame by frame, keeping its state across calls.

faster-whisper's own wrapper resets the model state on every call, which suits whole files; a live stream needs
the LSTM state and the 64-sample context carried from one 32 ms frame to the next (~2 ms per second of audio).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

FRAME = 512
"""Samples per VAD frame at 16 kHz (32 ms)."""
_CONTEXT = 64
FRAME_S = FRAME / 16_000

VadEvent = Literal["start", "end"]


@dataclass(frozen=True, slots=True)
class VadSettings:
    """When speech starts and when an utterance is over."""

    silence_s: float = 0.9
    """Silence after speech that ends the utterance (the endpoint). People pause 0.5-0.8 s inside a sentence."""
    threshold: float = 0.5
    """Speech probability above which a frame is speech."""
    min_speech_s: float = 0.1
    """Speech shorter than this (a click, a breath) never starts an utterance."""


class Endpointer:
    """Feeds 16 kHz samples to Silero and says where utterances start and end, in samples since the stream began."""

    def __init__(self, settings: VadSettings | None = None) -> None:
        import numpy as np
        from faster_whisper.vad import get_vad_model

        self.settings = settings or VadSettings()
        self._session: Any = get_vad_model().session
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self.position = 0
        """Samples consumed so far (whole frames only)."""
        self.in_speech = False
        self._speech_run = 0
        self._silence_run = 0
        self.speech_start = 0
        self.last_speech_end = 0
        """Sample index where the latest speech frame ended."""
        self.pauses: list[tuple[int, int]] = []
        """(start, end) samples of recent silences between speech frames (the newest 64)."""
        self.probabilities: list[float] = []
        """Per-frame speech probability of the current utterance (for finding pauses inside it)."""

    def reset_state(self) -> None:
        """Clear the LSTM state (between sessions, not between utterances)."""
        self._h[:] = 0
        self._c[:] = 0

    def _frame_probs(self, samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        import numpy as np

        n = len(samples) // FRAME
        frames = samples[: n * FRAME].reshape(n, FRAME)
        probs = np.empty(n, dtype=np.float32)
        for i in range(n):  # the LSTM state flows frame to frame: no batching
            x = np.concatenate([self._context, frames[i]])[None]
            out, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
            probs[i] = float(np.asarray(out).reshape(-1)[0])
            self._context = frames[i][-_CONTEXT:]
        return probs

    def feed(self, samples: npt.NDArray[np.float32]) -> list[tuple[VadEvent, int]]:
        """Events ("start", sample) and ("end", sample) for the audio fed; "end" marks the end of the speech."""
        import numpy as np

        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        usable = len(data) - len(data) % FRAME
        self._pending = data[usable:].copy()
        events: list[tuple[VadEvent, int]] = []
        s = self.settings
        min_speech = max(1, round(s.min_speech_s / FRAME_S))
        end_after = max(1, round(s.silence_s / FRAME_S))
        for p in self._frame_probs(data[:usable]):
            self.position += FRAME
            if self.in_speech:
                self.probabilities.append(float(p))
            if p >= s.threshold:
                if self._silence_run and self.last_speech_end:
                    self.pauses = [*self.pauses[-63:], (self.last_speech_end, self.position - FRAME)]
                self._speech_run += 1
                self._silence_run = 0
                self.last_speech_end = self.position
                if not self.in_speech and self._speech_run >= min_speech:
                    self.in_speech = True
                    self.speech_start = max(0, self.position - self._speech_run * FRAME)
                    self.probabilities = [1.0] * self._speech_run
                    events.append(("start", self.speech_start))
            else:
                self._speech_run = 0
                self._silence_run += 1
                if self.in_speech and self._silence_run >= end_after:
                    self.in_speech = False
                    events.append(("end", self.last_speech_end))
        return events

    def silence_so_far(self) -> float:
        """Seconds of silence since the last speech frame (0 while speech goes on)."""
        return self._silence_run * FRAME_S

    def pause_before(self, limit: int, min_pause_s: float = 0.15) -> int | None:
        """Sample index (absolute) in the middle of the latest pause that ends before ``limit``, if any."""
        frames_needed = max(1, round(min_pause_s / FRAME_S))
        probs = self.probabilities
        end = min(len(probs), (limit - self.speech_start) // FRAME)
        run = 0
        for i in range(end - 1, -1, -1):
            if probs[i] < self.settings.threshold:
                run += 1
                if run >= frames_needed and (i == 0 or probs[i - 1] >= self.settings.threshold):
                    return self.speech_start + (i + run // 2) * FRAME
            else:
                run = 0
        return None
