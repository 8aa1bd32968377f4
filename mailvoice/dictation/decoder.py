"""Whisper on a short window without the 30 s pad: CTranslate2's encode/generate called directly, with loop guards.

Whisper pads every input to 30 s, which costs ~0.4 s of encoder per call on 2 cores whatever the buffer holds.
Encoding the log-mel of the real window plus ~2 s of appended silence (features computed on the padded audio, not
padded features) cuts that to 35-150 ms; short windows then sometimes make the decoder loop, so every hypothesis is
bounded in length and checked for repeats (see shared/guides/streaming.md for the measurements).
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailvoice.engines.base import ASR_SAMPLE_RATE
from mailvoice.errors import TranscriptionError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from mailvoice.engines.whisper import WhisperEngine

log = logging.getLogger(__name__)

TAIL_SILENCE_S = 2.0
"""Silence appended to the audio before computing features: more robust than zero-padded features."""
LOOP_RETRY_MIN_S = 15.0
"""A looping final is decoded again with the window padded to at least this long (no loops seen at 15 s)."""
MAX_WINDOW_S = 28.0
TOKENS_PER_S = 7.0
MAX_WORDS_PER_S = 6.0
_NO_SPEECH = 0.6
_WEAK_LOGPROB = -1.0
_WORD = re.compile(r"[\w']+")
CONTEXT_TOKENS = 120
"""Most prompt tokens of earlier text (the configured prompt, then what was already dictated) a decode sees."""


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One decode of one window."""

    text: str
    words: tuple[str, ...]
    """The text split on whitespace, punctuation kept on the words."""
    looped: bool
    """The guards rejected it (repeats, too many words per second, length cap hit)."""
    no_speech: bool
    """Whisper's own no-speech score says silence, and the text scores weakly."""
    seconds: float
    """Length of the audio decoded (before padding)."""
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0


def _norm(words: tuple[str, ...] | list[str]) -> list[str]:
    return [w.lower() for w in _WORD.findall(" ".join(words))]


def repeats(words: tuple[str, ...] | list[str]) -> bool:
    """True when the words hold a decoder loop: a word four times or a phrase twice, back to back."""
    norm = _norm(words)
    for n in range(1, 5):
        limit = 4 if n == 1 else 2  # "no, no, no" happens in speech; "hi bob hi bob" is the decoder looping
        for i in range(len(norm) - n):
            run, j = 1, i + n
            while j + n <= len(norm) and norm[j : j + n] == norm[i : i + n]:
                run, j = run + 1, j + n
            if run >= limit:
                return True
    return False


def echoes(words: tuple[str, ...] | list[str], n: int = 4) -> bool:
    """True when a phrase of n words comes back later: how a truncated window restarts its own sentence."""
    norm = _norm(words)
    seen: set[tuple[str, ...]] = set()
    for i in range(len(norm) - n + 1):
        gram = tuple(norm[i : i + n])
        if gram in seen:
            return True
        seen.add(gram)
    return False


def repeated_sentence(text: str) -> bool:
    """True when a sentence comes twice in a row ("Period. Period."): a short window restarting itself."""
    sentences = [" ".join(_norm([s])) for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
    return any(a and a == b for a, b in itertools.pairwise(sentences))


class WindowDecoder:
    """Decodes windows of 16 kHz audio with the model a WhisperEngine loaded; call it from the model's thread."""

    def __init__(self, engine: WhisperEngine) -> None:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        wm: Any = engine.model
        self._model: Any = wm.model
        self._features: Any = wm.feature_extractor
        multilingual = bool(self._model.is_multilingual)
        language = engine.options.language or "en"
        self._tok = Tokenizer(wm.hf_tokenizer, multilingual, task="transcribe", language=language)
        self._suppress = list(get_suppressed_tokens(self._tok, (-1,)) or ())
        prompt = engine.settings.initial_prompt.strip()
        self._prev = self._tok.encode(" " + prompt)[-100:] if prompt else []

    def _prompt(self, context: str = "") -> list[int]:
        prev = [*self._prev, *self._tok.encode(" " + context.strip())] if context.strip() else self._prev
        prev = prev[-CONTEXT_TOKENS:]
        head = [self._tok.sot_prev, *prev] if prev else []
        return [*head, *self._tok.sot_sequence, self._tok.no_timestamps]

    def _features_for(self, audio: npt.NDArray[np.float32], min_seconds: float) -> Any:
        import ctranslate2
        import numpy as np

        seconds = len(audio) / ASR_SAMPLE_RATE
        pad = max(TAIL_SILENCE_S, min_seconds - seconds)
        padded = np.concatenate([audio, np.zeros(round(pad * ASR_SAMPLE_RATE), dtype=np.float32)])
        feats = self._features(padded, padding=0)
        frames = feats.shape[-1] - (feats.shape[-1] % 2)  # the encoder's conv stride wants an even count
        feats = np.ascontiguousarray(feats[:, : min(frames, 3000)], dtype=np.float32)[None]
        return ctranslate2.StorageView.from_array(feats)

    def decode(
        self, audio: npt.NDArray[np.float32], *, beam_size: int = 1, min_seconds: float = 0.0, context: str = ""
    ) -> Hypothesis:
        """One hypothesis for the window; never raises on a loop, reports it in ``looped``.

        ``context`` is text said just before this audio (the dictation so far): it goes into the prompt, so a pause
        inside a sentence does not make the decoder start a new one from nothing."""
        seconds = len(audio) / ASR_SAMPLE_RATE
        if seconds > MAX_WINDOW_S:
            audio = audio[-round(MAX_WINDOW_S * ASR_SAMPLE_RATE) :]
            seconds = MAX_WINDOW_S
        prompt = self._prompt(context)
        budget = int(TOKENS_PER_S * max(seconds, 1.0)) + 10
        max_length = min(len(prompt) + budget, 448)
        try:
            encoded = self._model.encode(self._features_for(audio, min_seconds), to_cpu=False)
            result = self._model.generate(
                encoded,
                [prompt],
                beam_size=beam_size,
                max_length=max_length,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=self._suppress,
                repetition_penalty=1.0,
                no_repeat_ngram_size=0,
            )[0]
        except (RuntimeError, ValueError) as exc:
            raise TranscriptionError(f"streaming decode of a {seconds:.1f} s window failed ({exc})") from exc
        tokens = [t for t in result.sequences_ids[0] if t < self._tok.eot]
        text = self._tok.decode(tokens).strip()
        words = tuple(text.split())
        hit_cap = len(tokens) >= budget - 1
        looped = hit_cap or repeats(words) or len(words) > MAX_WORDS_PER_S * max(seconds, 1.0)
        score = float(result.scores[0]) if result.scores else 0.0
        avg_logprob = score * len(tokens) / (len(tokens) + 1) if tokens else score
        no_speech = float(result.no_speech_prob) > _NO_SPEECH and avg_logprob < _WEAK_LOGPROB
        return Hypothesis(
            text=text,
            words=words,
            looped=looped,
            no_speech=no_speech or not words,
            seconds=seconds,
            avg_logprob=avg_logprob,
            no_speech_prob=float(result.no_speech_prob),
        )

    def decode_final(
        self, audio: npt.NDArray[np.float32], *, beam_size: int, min_seconds: float = 0.0, context: str = ""
    ) -> Hypothesis:
        """The utterance's final text: a looping or self-echoing result is decoded again over at least 15 s."""
        hyp = self.decode(audio, beam_size=beam_size, min_seconds=min_seconds, context=context)
        if hyp.looped or echoes(hyp.words) or repeated_sentence(hyp.text):
            log.debug("final over %.1f s looped; decoding again with a %.0f s floor", hyp.seconds, LOOP_RETRY_MIN_S)
            retry = self.decode(audio, beam_size=beam_size, min_seconds=LOOP_RETRY_MIN_S, context=context)
            if not retry.looped or hyp.looped:
                return retry
        return hyp
