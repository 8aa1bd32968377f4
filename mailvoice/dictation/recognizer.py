"""Streaming recognizer: 16 kHz samples in, partial and final text out, with work per second of audio bounded.

One utterance runs from VAD speech start to the endpoint silence. While it runs, the window (the utterance's audio
not yet finalised) is decoded every ``step_s`` of new audio; local agreement splits the hypothesis into confirmed
and tentative words. A window that grows past ``max_window_s`` is cut at a pause and that part finalised, so no
decode ever covers more than a bounded stretch of audio. The final decode starts speculatively once the silence
after speech reaches ``speculate_s``: if no speech came back by the endpoint, the final is already there.

Natural speech pauses inside its sentences. Every decode gets the text already dictated as its prompt, and an
utterance whose text does not close a sentence is held open until ``hold_s`` of silence: speech resuming before
that continues the same utterance, so a fragment is never decoded (or finalised) alone. Every decode covers at
least ``min_window_s`` (the audio plus silence): truncated windows shorter than that make Whisper loop.

Synchronous by design: call ``feed`` from the model's worker thread (see mailvoice.engines.executor).
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailvoice.dictation.agreement import LocalAgreement
from mailvoice.dictation.events import Event, Final, Partial, Status
from mailvoice.dictation.vad import Endpointer, VadSettings
from mailvoice.engines.base import ASR_SAMPLE_RATE
from mailvoice.engines.whisper import HALLUCINATIONS

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from mailvoice.dictation.decoder import Hypothesis, WindowDecoder

log = logging.getLogger(__name__)
SR = ASR_SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How the recognizer trades latency, accuracy and compute."""

    vad: VadSettings = field(default_factory=VadSettings)
    step_s: float = 0.3
    """New audio between partial decodes."""
    max_step_s: float = 1.2
    """The longest step degrading may reach."""
    max_window_s: float = 8.0
    """A window longer than this is cut at a pause and its part finalised."""
    final_beam: int = 5
    """Beam of the final decode (partials are always greedy)."""
    speculate_s: float = 0.2
    """Silence after which the final decode starts ahead of the endpoint."""
    preroll_s: float = 0.25
    """Audio kept before the VAD start (the onset of the first word)."""
    tail_s: float = 0.2
    """Audio kept after the last speech frame in a final."""
    agreement_gap_s: float = 1.0
    ratio_window_s: float = 10.0
    """Audio over which the compute/audio ratio is measured."""
    degrade_above: float = 0.8
    recover_below: float = 0.4
    min_window_s: float = 6.0
    """Every decode covers at least this much (audio, then silence): shorter windows loop far more often."""
    hold_s: float = 1.6
    """Silence after which an utterance ends even though its text does not close a sentence."""
    short_s: float = 3.0
    """An utterance with less speech than this is held like an unfinished sentence: a fragment's own punctuation
    ("We must find a new home." before "in the stars") is not trusted."""
    gap_keep_s: float = 0.3
    """What is left of a held pause in the audio decoded."""
    context_words: int = 40
    """Words of what was already dictated given to each decode as its prompt."""


_SENTENCE_END = re.compile(r"[.!?…。？！][\"')\]»”]*$")
_WEAK_LOGPROB = -0.9
_WEAK_NO_SPEECH = 0.35


def _is_filler(text: str) -> bool:
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split()) in HALLUCINATIONS


def _sentence_key(sentence: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", sentence.lower()).split())


def dedupe_sentences(text: str, before: str = "") -> str:
    """The text without a sentence that repeats the one just before it (in the text, or the end of ``before``):
    how a decoder restarts a window it already transcribed ("The horizon seems distant. The horizon ..."). Short
    sentences may repeat: "No. No." is speech, and so is a command said twice ("New paragraph.")."""
    sentences = [s for s in re.split(r"(?<=[.!?…])\s+", text.strip()) if s]
    previous = re.split(r"(?<=[.!?…])\s+", before.strip())[-1] if before.strip() else ""
    kept: list[str] = []
    for sentence in sentences:
        key = _sentence_key(sentence)
        if len(key.split()) >= 3 and key == _sentence_key(kept[-1] if kept else previous):
            continue
        kept.append(sentence)
    return " ".join(kept)


def ends_sentence(text: str) -> bool:
    """True when the text closes a sentence (Whisper puts the full stop where the speaker finished)."""
    return bool(_SENTENCE_END.search(text.strip()))


class StreamingRecognizer:
    """Turns a live 16 kHz stream into Partial, Final and Status events."""

    def __init__(self, decoder: WindowDecoder, settings: StreamSettings | None = None) -> None:
        import numpy as np

        self.settings = settings or StreamSettings()
        self._decoder = decoder
        self._vad = Endpointer(self.settings.vad)
        self._agree = LocalAgreement(self.settings.agreement_gap_s)
        self._audio: npt.NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self._audio_start = 0
        """Absolute sample index of self._audio[0]."""
        self._total = 0
        self.utterance = 0
        self._active = False
        self._window_start = 0
        self._done_parts: list[str] = []
        self._last_decode_at = 0
        self._speculative: tuple[int, int, Hypothesis, float] | None = None
        """(window_start, speech_end, hypothesis, compute_s) of a final decoded ahead of the endpoint."""
        self._held: tuple[int, Hypothesis, float] | None = None
        """(speech_end, hypothesis, compute_s) of an utterance whose text did not close a sentence at its endpoint."""
        self._utterance_start = 0
        self._said: list[str] = []
        """Words finalised so far in this stream: the prompt of the next decodes."""
        self.step_s = self.settings.step_s
        self.final_beam = self.settings.final_beam
        self.degraded = False
        self._costs: deque[tuple[float, float]] = deque()
        self.compute_s = 0.0
        self.audio_s = 0.0

    # ------------------------------------------------------------------ audio bookkeeping

    def _slice(self, start: int, end: int) -> npt.NDArray[np.float32]:
        lo = max(0, start - self._audio_start)
        return self._audio[lo : max(lo, end - self._audio_start)]

    def _window_audio(self, start: int, end: int) -> npt.NDArray[np.float32]:
        """The audio from start to end with each pause shortened to ``gap_keep_s`` (as a batch decode's VAD filter
        does): most of a second of silence inside a sentence makes Whisper start a new one."""
        import numpy as np

        keep = round(self.settings.gap_keep_s * SR)
        pieces, at = [], start
        for g0, g1 in self._vad.pauses:
            if g1 - g0 > keep and start <= g0 and g1 <= end:
                pieces.append(self._slice(at, g0 + keep // 2))
                at = g1 - keep // 2
        pieces.append(self._slice(at, end))
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _trim(self) -> None:
        keep_from = self._window_start if self._active else self._total - round(self.settings.preroll_s * SR)
        keep_from = max(self._audio_start, keep_from)
        if keep_from > self._audio_start:
            self._audio = self._audio[keep_from - self._audio_start :]
            self._audio_start = keep_from

    # ------------------------------------------------------------------ decoding

    def _context(self) -> str:
        words = [*self._said, *" ".join(self._done_parts).split()]
        return " ".join(words[-self.settings.context_words :]) if self.settings.context_words > 0 else ""

    def _final_text(self, start: int, end: int, beam: int) -> tuple[Hypothesis, float]:
        t0 = time.perf_counter()
        hyp = self._decoder.decode_final(
            self._window_audio(start, end),
            beam_size=beam,
            min_seconds=self.settings.min_window_s,
            context=self._context(),
        )
        return hyp, time.perf_counter() - t0

    @staticmethod
    def _usable(hyp: Hypothesis) -> str:
        """The text worth keeping: no loops, no silence, no stock phrase that scored weakly ("Thank you.")."""
        if hyp.looped or hyp.no_speech:
            return ""
        if _is_filler(hyp.text) and (hyp.avg_logprob < _WEAK_LOGPROB or hyp.no_speech_prob > _WEAK_NO_SPEECH):
            return ""
        return hyp.text

    def _final_hyp(self, speech_end: int) -> tuple[Hypothesis, float]:
        end = min(self._total, speech_end + round(self.settings.tail_s * SR))
        spec = self._speculative
        if spec is not None and spec[0] == self._window_start and spec[1] == speech_end:
            return spec[2], spec[3]
        return self._final_text(self._window_start, end, self.final_beam)

    def _end_of_speech(self, speech_end: int, endpoint: int) -> Final | None:
        """The VAD endpoint: the final, or None while an unfinished sentence is held open for more speech."""
        hyp, cost = self._final_hyp(speech_end)
        text = " ".join(p for p in [*self._done_parts, self._usable(hyp)] if p)
        short = (speech_end - self._utterance_start) / SR < self.settings.short_s
        if text and (short or not ends_sentence(text)):
            self._held = (speech_end, hyp, cost)
            return None
        return self._emit(hyp, cost, speech_end, endpoint)

    def _emit(self, hyp: Hypothesis, cost: float, speech_end: int, endpoint: int) -> Final:
        parts = [*self._done_parts, self._usable(hyp)]
        text = dedupe_sentences(" ".join(p for p in parts if p), " ".join(self._said))
        final = Final(self.utterance, text, speech_end / SR, endpoint / SR, cost)
        self._said = [*self._said, *text.split()][-max(0, self.settings.context_words) :]
        self._active = False
        self._done_parts = []
        self._speculative = None
        self._held = None
        self._agree.reset()
        return final

    def _cut_window(self) -> None:
        """Finalise the window up to a pause so the next decodes cover bounded audio."""
        s = self.settings
        limit = self._total - round(1.0 * SR)
        cut = self._vad.pause_before(limit) or self._window_start + round(s.max_window_s * SR * 0.75)
        cut = max(cut, self._window_start + SR)
        hyp, _ = self._final_text(self._window_start, cut, self.final_beam)
        text = self._usable(hyp)
        if text:
            self._done_parts.append(text)
        self._window_start = cut
        self._agree.reset()

    def _partial(self) -> Partial | None:
        s = self.settings
        if (self._total - self._window_start) / SR > s.max_window_s:
            self._cut_window()
        window = self._window_audio(self._window_start, self._total)
        if len(window) < SR // 2:
            return None
        hyp = self._decoder.decode(window, beam_size=1, min_seconds=s.min_window_s, context=self._context())
        self._last_decode_at = self._total
        if hyp.looped or hyp.no_speech or _is_filler(hyp.text):
            return None  # a stock phrase is what Whisper says before it has heard enough: the final decides
        return self._as_partial(hyp)

    def _as_partial(self, hyp: Hypothesis) -> Partial:
        stable, unstable = self._agree.update(hyp.words, self._total / SR)
        return Partial(self.utterance, " ".join([*self._done_parts, *stable]), " ".join(unstable), self._total / SR)

    # ------------------------------------------------------------------ compute watch

    def _account(self, audio_s: float, compute_s: float) -> Status | None:
        s = self.settings
        self.audio_s += audio_s
        self.compute_s += compute_s
        self._costs.append((audio_s, compute_s))
        while sum(a for a, _ in self._costs) > s.ratio_window_s and len(self._costs) > 1:
            self._costs.popleft()
        audio = sum(a for a, _ in self._costs)
        if audio < 3.0:
            return None
        ratio = sum(c for _, c in self._costs) / audio
        if ratio > s.degrade_above and self.step_s < s.max_step_s:
            self.degraded = True
            self.step_s = min(s.max_step_s, self.step_s * 1.5)
            self.final_beam = 1
            self._costs.clear()
            log.warning("dictation falling behind (compute/audio %.2f): step %.2f s, greedy finals", ratio, self.step_s)
            return Status(True, self.step_s, self.final_beam, ratio)
        if ratio < s.recover_below and self.degraded:
            self.step_s = max(s.step_s, self.step_s / 1.5)
            if self.step_s <= s.step_s:
                self.degraded = False
                self.final_beam = s.final_beam
            self._costs.clear()
            return Status(self.degraded, self.step_s, self.final_beam, ratio)
        return None

    @property
    def ratio(self) -> float:
        """Compute/audio ratio over the whole stream so far."""
        return self.compute_s / self.audio_s if self.audio_s else 0.0

    # ------------------------------------------------------------------ public

    def feed(self, samples: npt.NDArray[np.float32]) -> list[Event]:
        """Take the next samples (16 kHz mono float32); return what changed. Runs at most one partial decode."""
        import numpy as np

        t0 = time.perf_counter()
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._audio = np.concatenate([self._audio, samples]) if self._audio.size else samples.copy()
        self._total += len(samples)
        events: list[Event] = []
        for kind, at in self._vad.feed(samples):
            held = self._held
            if kind == "start" and held is not None and at - held[0] >= round(self.settings.hold_s * SR):
                # the silence was long enough to end the utterance (several VAD events came in one feed)
                events.append(self._emit(held[1], held[2], held[0], held[0] + round(self.settings.hold_s * SR)))
            if kind == "start" and self._held is not None:
                self._held = None  # the sentence goes on after its pause: same utterance, same window
                self._speculative = None
            elif kind == "start" and not self._active:
                self._active = True
                self.utterance += 1
                self._window_start = max(self._audio_start, at - round(self.settings.preroll_s * SR))
                self._utterance_start = at
                self._last_decode_at = self._window_start
                self._speculative = None
            elif kind == "end" and self._active:
                final = self._end_of_speech(at, at + round(self.settings.vad.silence_s * SR))
                if final is not None:
                    events.append(final)
        held = self._held
        if held is not None and self._vad.silence_so_far() >= self.settings.hold_s:
            events.append(self._emit(held[1], held[2], held[0], held[0] + round(self.settings.hold_s * SR)))
        elif self._active and held is None:
            silence = self._vad.silence_so_far()
            speech_end = self._vad.last_speech_end
            if silence >= self.settings.speculate_s:
                spec = self._speculative
                if spec is None or spec[1] != speech_end or spec[0] != self._window_start:
                    end = min(self._total, speech_end + round(self.settings.tail_s * SR))
                    hyp, cost = self._final_text(self._window_start, end, self.final_beam)
                    self._speculative = (self._window_start, speech_end, hyp, cost)
                    if self._usable(hyp):  # the best text so far doubles as a partial during the pause
                        events.append(self._as_partial(hyp))
            elif (self._total - self._last_decode_at) / SR >= self.step_s:
                partial = self._partial()
                if partial is not None:
                    events.append(partial)
        self._trim()
        status = self._account(len(samples) / SR, time.perf_counter() - t0)
        if status is not None:
            events.append(status)
        return events

    def flush(self) -> list[Event]:
        """End of stream: finish the utterance in progress, if any."""
        if self._held is not None:
            speech_end, hyp, cost = self._held
            return [self._emit(hyp, cost, speech_end, self._total)]
        if not self._active:
            return []
        speech_end = self._vad.last_speech_end
        hyp, cost = self._final_hyp(speech_end)
        return [self._emit(hyp, cost, speech_end, self._total)]
