"""Whisper without the 30 s pad: CTranslate2's encode/generate called directly on the real audio, with loop guards.

Whisper pads every input to 30 s (3,000 mel frames), which costs ~0.4-0.8 s of encoder per call on 2 cores whatever
the audio holds. Encoding the log-mel of the real window plus ~2 s of appended silence (features computed on the padded
audio, not padded features) cuts that to tens of milliseconds; truncated windows then sometimes make the decoder loop,
so every hypothesis is bounded in length and checked (see shared/guides/streaming.md for the measurements).

One module for both users: dictation decodes one window at a time (``decode``/``decode_final``), the mail path
decodes batches of windows with timestamps and the full fallback ladder (``transcribe_windows``).

Guards, in the order a hypothesis meets them: a length cap (prompt + 7 tokens per second of audio + 10), repeated words
or phrases back to back, more than 6 words per second, a gzip compression ratio over 2.4, and a weak average log
probability (unless Whisper's no-speech score says silence). A failing greedy hypothesis is decoded again with beam
search, then with at least 15 s of window (truncated windows loop, 15 s ones did not), then at rising temperatures.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailvoice.engines.base import ASR_SAMPLE_RATE
from mailvoice.errors import TranscriptionError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

TAIL_SILENCE_S = 2.0
"""Silence appended to the audio before computing features: more robust than zero-padded features."""
LOOP_RETRY_MIN_S = 15.0
"""A looping hypothesis is decoded again with the window padded to at least this long (no loops seen at 15 s)."""
MAX_WINDOW_S = 28.0
"""Longest audio one window holds (Whisper's encoder sees at most 30 s, the tail silence included)."""
FULL_WINDOW_S = 30.0
"""Whisper's own window: with min_window at this, the encoder sees exactly what bare faster-whisper feeds it."""
TOKENS_PER_S = 7.0
TIMESTAMP_TOKENS_PER_S = 1.0
"""Extra length budget when timestamps are decoded: a pair per segment, segments of a few seconds."""
MAX_WORDS_PER_S = 6.0
COMPRESSION_RATIO_MAX = 2.4
"""Whisper's own threshold: text that gzip squeezes more than this is a loop."""
NO_SPEECH = 0.6
WEAK_LOGPROB = -1.0
TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)
"""Sampling temperatures tried, in order, when every deterministic decode failed the guards."""
BEST_OF = 5
_WORD = re.compile(r"[\w']+")
_PUNCT_BEFORE = "\"'“¿([{-"
_PUNCT_AFTER = "\"'.。,，!！?？:：”)]}、"


# -- guards (pure functions: dictation and the batch path share them) -------------------------------------------


def _norm(words: Sequence[str]) -> list[str]:
    return [w.lower() for w in _WORD.findall(" ".join(words))]


def repeats(words: Sequence[str]) -> bool:
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


def echoes(words: Sequence[str], n: int = 4) -> bool:
    """True when a phrase of n words comes back later: how a truncated window restarts its own sentence."""
    norm = _norm(words)
    seen: set[tuple[str, ...]] = set()
    for i in range(len(norm) - n + 1):
        gram = tuple(norm[i : i + n])
        if gram in seen:
            return True
        seen.add(gram)
    return False


def compression_ratio(text: str) -> float:
    """len(text) / len(gzip(text)): Whisper's repetition measure (ordinary speech stays under ~2)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def token_budget(seconds: float, *, timestamps: bool = False) -> int:
    """Most tokens a window of this much audio may produce before it counts as a loop."""
    per_s = TOKENS_PER_S + (TIMESTAMP_TOKENS_PER_S if timestamps else 0.0)
    return int(per_s * max(seconds, 1.0)) + 10


def looped(text: str, n_tokens: int, seconds: float, *, timestamps: bool = False) -> bool:
    """The loop guards: the length cap hit, words repeated back to back, too many words per second, text gzip
    squeezes like a loop."""
    words = text.split()
    return (
        n_tokens >= token_budget(seconds, timestamps=timestamps) - 1
        or repeats(words)
        or len(words) > MAX_WORDS_PER_S * max(seconds, 1.0)
        or compression_ratio(text) > COMPRESSION_RATIO_MAX
    )


def silent(no_speech_prob: float, avg_logprob: float) -> bool:
    """Whisper's own rule: the no-speech token is likely and the text scores weakly."""
    return no_speech_prob > NO_SPEECH and avg_logprob < WEAK_LOGPROB


# -- results ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One decode of one window (dictation's view: text only)."""

    text: str
    words: tuple[str, ...]
    """The text split on whitespace, punctuation kept on the words."""
    looped: bool
    """The guards rejected it (repeats, too many words per second, length cap hit)."""
    no_speech: bool
    """Whisper's own no-speech score says silence, and the text scores weakly."""
    seconds: float
    """Length of the audio decoded (before padding)."""


@dataclass(frozen=True, slots=True)
class TimedWord:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True, slots=True)
class TimedSegment:
    """A piece of a window's text between two timestamp tokens, times in seconds from the window's start."""

    start: float
    end: float
    text: str
    tokens: tuple[int, ...]
    words: tuple[TimedWord, ...] = ()


@dataclass(frozen=True, slots=True)
class WindowResult:
    """The accepted decode of one window of the batch path."""

    text: str
    segments: tuple[TimedSegment, ...]
    avg_logprob: float
    no_speech_prob: float
    language: str
    language_probability: float
    seconds: float
    attempts: tuple[str, ...] = field(default=())
    """How it was decoded, in order ("greedy", "beam5", "beam5+15s", "t0.2", ...): the last one was kept."""
    looped: bool = False
    """Every attempt failed the loop guards: the least bad one was kept."""

    @property
    def no_speech(self) -> bool:
        return silent(self.no_speech_prob, self.avg_logprob) or not self.text


@dataclass(frozen=True, slots=True)
class _Attempt:
    name: str
    beam_size: int
    min_seconds: float = 0.0
    temperature: float = 0.0


@dataclass(slots=True)
class _Raw:
    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    text: str
    looped: bool


class WindowDecoder:
    """Decodes windows of 16 kHz audio with a loaded faster-whisper model; call it from the model's thread.

    ``model`` is a ``faster_whisper.WhisperModel``; ``language`` None means detect per window (multilingual models).
    """

    def __init__(
        self, model: Any, language: str | None, initial_prompt: str = "", hotwords: str = "", *, multilingual: bool
    ) -> None:
        from faster_whisper.transcribe import get_suppressed_tokens

        self._wm: Any = model
        self._model: Any = model.model
        self._features: Any = model.feature_extractor
        self._multilingual = multilingual
        self._language = language
        self._tokenizers: dict[str, Any] = {}
        first = self._tokenizer(language or "en")
        self._suppress = list(get_suppressed_tokens(first, (-1,)) or ())
        prompt = initial_prompt.strip()
        hot = first.encode(" " + hotwords.strip())[:100] if hotwords.strip() else []
        self._prev = [*hot, *(first.encode(" " + prompt)[-100:] if prompt else [])]

    @classmethod
    def for_engine(cls, engine: Any) -> WindowDecoder:
        """The decoder for a loaded WhisperEngine (what dictation calls)."""
        return cls(
            engine.model,
            engine.options.language,
            engine.settings.initial_prompt,
            engine.settings.hotwords,
            multilingual=bool(engine.model.model.is_multilingual),
        )

    def _tokenizer(self, language: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        tok = self._tokenizers.get(language)
        if tok is None:
            tok = Tokenizer(self._wm.hf_tokenizer, self._multilingual, task="transcribe", language=language)
            self._tokenizers[language] = tok
        return tok

    def _prompt(self, tok: Any, *, timestamps: bool) -> list[int]:
        head = [tok.sot_prev, *self._prev] if self._prev else []
        return [*head, *tok.sot_sequence] if timestamps else [*head, *tok.sot_sequence, tok.no_timestamps]

    # -- encode -------------------------------------------------------------------------------------------------

    def features(self, audio: npt.NDArray[np.float32], min_seconds: float = 0.0) -> npt.NDArray[np.float32]:
        """Log-mel of the audio with tail silence appended (at least ``min_seconds`` long), at most 3,000 frames."""
        import numpy as np

        seconds = len(audio) / ASR_SAMPLE_RATE
        pad = max(TAIL_SILENCE_S, min_seconds - seconds)
        padded = np.concatenate([audio, np.zeros(round(pad * ASR_SAMPLE_RATE), dtype=np.float32)])
        feats = self._features(padded, padding=0)
        frames = min(feats.shape[-1] - (feats.shape[-1] % 2), 3000)  # the encoder's conv stride wants an even count
        return np.asarray(feats[:, :frames], dtype=np.float32)

    def padded_features(self, audio: npt.NDArray[np.float32], frames: int) -> npt.NDArray[np.float32]:
        """Log-mel of the audio alone, zero frames after it up to ``frames``: how faster-whisper pads its 30 s
        window (the batch path; on whole recordings it kept bare faster-whisper's WER where appended silence
        did not)."""
        import numpy as np

        feats = self._features(audio, padding=160)[:, :-1]
        out = np.zeros((feats.shape[0], frames), dtype=np.float32)
        n = min(frames, feats.shape[-1])
        out[:, :n] = feats[:, :n]
        return out

    def encode(
        self, windows: Sequence[npt.NDArray[np.float32]], min_seconds: float = 0.0, *, zero_pad: bool = False
    ) -> Any:
        """One batched encoder call; shorter windows are padded (silence or zero frames) to the longest."""
        import ctranslate2
        import numpy as np

        longest = max(len(w) for w in windows) / ASR_SAMPLE_RATE
        floor = max(min_seconds, longest)
        if zero_pad:
            frames = round(max(floor, longest + TAIL_SILENCE_S) * 100)
            frames = min(frames + frames % 2, 3000)
            feats = [self.padded_features(w, frames) for w in windows]
        else:
            feats = [self.features(w, floor) for w in windows]
        frames = min(f.shape[-1] for f in feats)
        batch = np.ascontiguousarray(np.stack([f[:, :frames] for f in feats]), dtype=np.float32)
        return self._model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False)

    @staticmethod
    def _rows(encoded: Any, rows: Sequence[int]) -> Any:
        import ctranslate2
        import numpy as np

        array = np.asarray(encoded)
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(array[list(rows)]))

    # -- dictation: one window, text only -----------------------------------------------------------------------

    def decode(self, audio: npt.NDArray[np.float32], *, beam_size: int = 1, min_seconds: float = 0.0) -> Hypothesis:
        """One hypothesis for the window; never raises on a loop, reports it in ``looped``."""
        seconds = len(audio) / ASR_SAMPLE_RATE
        if seconds > MAX_WINDOW_S:
            audio = audio[-round(MAX_WINDOW_S * ASR_SAMPLE_RATE) :]
            seconds = MAX_WINDOW_S
        tok = self._tokenizer(self._language or "en")
        try:
            encoded = self.encode([audio], min_seconds)
            raw = self._generate(encoded, [tok], [seconds], _Attempt("decode", beam_size), timestamps=False)[0]
        except (RuntimeError, ValueError) as exc:
            raise TranscriptionError(f"decode of a {seconds:.1f} s window failed ({exc})") from exc
        words = tuple(raw.text.split())
        return Hypothesis(
            text=raw.text,
            words=words,
            looped=raw.looped,
            no_speech=silent(raw.no_speech_prob, raw.avg_logprob) or not words,
            seconds=seconds,
        )

    def decode_final(self, audio: npt.NDArray[np.float32], *, beam_size: int) -> Hypothesis:
        """The utterance's final text: a looping or self-echoing result is decoded again over at least 15 s."""
        hyp = self.decode(audio, beam_size=beam_size)
        if hyp.looped or echoes(hyp.words):
            log.debug("final over %.1f s looped; decoding again with a %.0f s floor", hyp.seconds, LOOP_RETRY_MIN_S)
            retry = self.decode(audio, beam_size=beam_size, min_seconds=LOOP_RETRY_MIN_S)
            if not retry.looped or hyp.looped:
                return retry
        return hyp

    # -- generate -----------------------------------------------------------------------------------------------

    def _generate(
        self, encoded: Any, toks: Sequence[Any], seconds: Sequence[float], attempt: _Attempt, *, timestamps: bool
    ) -> list[_Raw]:
        prompts = [self._prompt(t, timestamps=timestamps) for t in toks]
        budgets = [token_budget(s, timestamps=timestamps) for s in seconds]
        max_length = min(max(len(p) + b for p, b in zip(prompts, budgets, strict=True)), 448)
        kwargs: dict[str, Any] = (
            {"beam_size": 1, "num_hypotheses": BEST_OF, "sampling_topk": 0, "sampling_temperature": attempt.temperature}
            if attempt.temperature > 0
            else {"beam_size": attempt.beam_size}
        )
        results = self._model.generate(
            encoded,
            prompts,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            max_initial_timestamp_index=50,
            **kwargs,
        )
        out: list[_Raw] = []
        for result, tok, secs in zip(results, toks, seconds, strict=True):
            best: _Raw | None = None
            scores = result.scores or [0.0] * len(result.sequences_ids)
            for seq, score in zip(result.sequences_ids, scores, strict=True):
                text_tokens = [t for t in seq if t < tok.eot]
                text = tok.decode(text_tokens).strip()
                avg = float(score) * len(seq) / (len(seq) + 1) if seq else float(score)
                raw = _Raw(list(seq), avg, float(result.no_speech_prob), text, False)
                raw.looped = looped(text, len(seq), secs, timestamps=timestamps)
                if best is None or (best.looped, -best.avg_logprob) > (raw.looped, -raw.avg_logprob):
                    best = raw
            assert best is not None
            out.append(best)
        return out

    @classmethod
    def _rank(cls, raw: _Raw) -> tuple[bool, bool, float]:
        """Lower is better: passing the guards first, then not looping, then the average log probability."""
        return (not cls._passes(raw), raw.looped, -raw.avg_logprob)

    @staticmethod
    def _passes(raw: _Raw) -> bool:
        if silent(raw.no_speech_prob, raw.avg_logprob):
            return True  # silence: no fallback (Whisper's rule); the caller drops it
        return not raw.looped and raw.avg_logprob >= WEAK_LOGPROB

    # -- the batch path -----------------------------------------------------------------------------------------

    def transcribe_windows(
        self,
        windows: Sequence[npt.NDArray[np.float32]],
        *,
        beam_size: int,
        greedy_first: bool,
        word_timestamps: bool,
        min_window: float = FULL_WINDOW_S,
    ) -> list[WindowResult]:
        """Decode windows (each at most MAX_WINDOW_S) together: one encoder call, one batched greedy (or beam)
        decode, then the fallback ladder only for the windows whose hypothesis failed the guards.

        ``min_window`` (seconds) is the shortest encoder input: the real audio plus zero frames up to it. 30 gives
        Whisper's full window; shorter pays for the audio only (see asr.min_window for the measured trade-off).
        """
        if not windows:
            return []
        seconds = [len(w) / ASR_SAMPLE_RATE for w in windows]
        if max(seconds) > MAX_WINDOW_S + 0.01:
            raise TranscriptionError(f"a window of {max(seconds):.1f} s is over the {MAX_WINDOW_S:.0f} s limit")
        ladder = [_Attempt("greedy", 1)] if greedy_first and beam_size > 1 else []
        ladder += [
            _Attempt(f"beam{beam_size}", beam_size),
            _Attempt(f"beam{beam_size}+15s", beam_size, LOOP_RETRY_MIN_S),
        ]
        ladder += [_Attempt(f"t{t:.1f}", 1, LOOP_RETRY_MIN_S, t) for t in TEMPERATURES]
        try:
            return self._ladder(windows, seconds, ladder, word_timestamps=word_timestamps, min_window=min_window)
        except (RuntimeError, ValueError) as exc:
            raise TranscriptionError(f"decode of {len(windows)} window(s) failed ({exc})") from exc

    def _ladder(
        self,
        windows: Sequence[npt.NDArray[np.float32]],
        seconds: list[float],
        ladder: list[_Attempt],
        *,
        word_timestamps: bool,
        min_window: float,
    ) -> list[WindowResult]:
        n = len(windows)
        base = self.encode(windows, min_window, zero_pad=True)
        langs = self._languages(base, n)
        toks = [self._tokenizer(lang) for lang, _p in langs]
        best: list[_Raw | None] = [None] * n
        tried: list[list[str]] = [[] for _ in range(n)]
        used: list[tuple[Any, int] | None] = [None] * n
        """Per window: the encoder output (and its row) the kept hypothesis came from, for word alignment."""
        pending = list(range(n))
        encodings: dict[float, Any] = {0.0: base, min_window: base}
        for attempt in ladder:
            if not pending:
                break
            floor = max(attempt.min_seconds, min_window)
            if floor not in encodings:
                encodings[floor] = self.encode(windows, floor, zero_pad=True)
            enc_all = encodings[floor]
            enc = enc_all if len(pending) == n else self._rows(enc_all, pending)
            raws = self._generate(
                enc, [toks[i] for i in pending], [seconds[i] for i in pending], attempt, timestamps=True
            )
            still: list[int] = []
            for i, raw in zip(pending, raws, strict=True):
                tried[i].append(attempt.name)
                prev = best[i]
                if prev is None or self._rank(raw) < self._rank(prev):
                    best[i], used[i] = raw, (enc_all, i)
                if not self._passes(raw):
                    still.append(i)
            pending = still
        results = []
        for i in range(n):
            kept = best[i]
            assert kept is not None and used[i] is not None
            if pending and i in pending:
                log.debug("window %d (%.1f s): every attempt failed the guards (%s)", i, seconds[i], tried[i])
            segments = self._segments(toks[i], kept.tokens, seconds[i])
            results.append(
                WindowResult(
                    text=kept.text,
                    segments=segments,
                    avg_logprob=kept.avg_logprob,
                    no_speech_prob=kept.no_speech_prob,
                    language=langs[i][0],
                    language_probability=langs[i][1],
                    seconds=seconds[i],
                    attempts=tuple(tried[i]),
                    looped=kept.looped,
                )
            )
        if word_timestamps:
            results = self._align(results, toks, used, windows)
        return results

    def _languages(self, encoded: Any, n: int) -> list[tuple[str, float]]:
        if self._language is not None or not self._multilingual:
            return [(self._language or "en", 1.0)] * n
        found = self._model.detect_language(encoded)
        return [(str(r[0][0])[2:-2], float(r[0][1])) for r in found]

    def _segments(self, tok: Any, tokens: list[int], seconds: float) -> tuple[TimedSegment, ...]:
        """Split a timestamped token sequence into segments (times clamped to the window's real audio)."""
        begin = tok.timestamp_begin
        precision = 0.02
        segments: list[TimedSegment] = []
        start: float | None = None
        text_tokens: list[int] = []

        def close(end: float) -> None:
            text = tok.decode(text_tokens).strip()
            s = min(start if start is not None else 0.0, seconds)
            e = min(max(end, s), seconds)
            if text:
                segments.append(TimedSegment(s, e, text, tuple(text_tokens)))
            text_tokens.clear()

        for t in tokens:
            if t >= begin:
                stamp = (t - begin) * precision
                if start is None:
                    start = stamp
                elif text_tokens:
                    close(stamp)
                    start = None
                else:
                    start = stamp
            elif t < tok.eot:
                if start is None:
                    start = segments[-1].end if segments else 0.0
                text_tokens.append(t)
        if text_tokens:
            close(seconds)
        return tuple(segments)

    def _align(
        self,
        results: list[WindowResult],
        toks: list[Any],
        used: Sequence[tuple[Any, int] | None],
        windows: Sequence[npt.NDArray[np.float32]],
    ) -> list[WindowResult]:
        """Word times and probabilities from the cross-attention (CTranslate2's align), one call per encoding."""
        groups: dict[int, list[int]] = {}
        for i, u in enumerate(used):
            if u is not None and results[i].segments:
                groups.setdefault(id(u[0]), []).append(i)
        out = list(results)
        for rows in groups.values():
            first = used[rows[0]]
            assert first is not None
            enc = self._rows(first[0], rows) if len(rows) != len(results) else first[0]
            text_tokens = [[t for s in results[i].segments for t in s.tokens] for i in rows]
            frames = [min(round(len(windows[i]) / 160), 3000) for i in rows]
            aligned = self._model.align(enc, toks[rows[0]].sot_sequence, text_tokens, frames)
            for i, alignment in zip(rows, aligned, strict=True):
                out[i] = self._with_words(results[i], toks[i], alignment)
        return out

    @staticmethod
    def _with_words(result: WindowResult, tok: Any, alignment: Any) -> WindowResult:
        import numpy as np

        all_tokens = [t for s in result.segments for t in s.tokens]
        words, word_tokens = tok.split_to_word_tokens([*all_tokens, tok.eot])
        pairs = list(alignment.alignments)
        probs = list(alignment.text_token_probs)
        if len(word_tokens) <= 1 or not pairs:
            return result
        text_idx = np.array([p[0] for p in pairs])
        time_idx = np.array([p[1] for p in pairs])
        jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
        jump_times = time_idx[jumps] / 50.0
        bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
        timed: list[tuple[str, int, float, float, float]] = []
        for k, (word, wt) in enumerate(zip(words[:-1], word_tokens[:-1], strict=True)):
            a, b = int(bounds[k]), int(bounds[k + 1])
            start = float(jump_times[min(a, len(jump_times) - 1)])
            end = float(jump_times[min(b, len(jump_times) - 1)])
            prob = float(np.mean(probs[a:b])) if b > a and probs else 0.0
            timed.append((word, len(wt), start, max(end, start), prob))
        segments = []
        k = 0
        for seg in result.segments:
            taken = 0
            seg_words: list[TimedWord] = []
            while k < len(timed) and taken < len(seg.tokens):
                word, count, start, end, prob = timed[k]
                taken += count
                k += 1
                if word.strip() and not all(c in _PUNCT_BEFORE + _PUNCT_AFTER for c in word.strip()):
                    s = min(max(start, seg.start), seg.end)
                    seg_words.append(TimedWord(s, min(max(end, s), seg.end), word, prob))
                elif seg_words and word.strip():
                    last = seg_words[-1]
                    seg_words[-1] = TimedWord(last.start, last.end, last.word + word.strip(), last.probability)
            segments.append(TimedSegment(seg.start, seg.end, seg.text, seg.tokens, tuple(seg_words)))
        return WindowResult(
            text=result.text,
            segments=tuple(segments),
            avg_logprob=result.avg_logprob,
            no_speech_prob=result.no_speech_prob,
            language=result.language,
            language_probability=result.language_probability,
            seconds=result.seconds,
            attempts=result.attempts,
            looped=result.looped,
        )
