"""Numbers read aloud as people say them, in the voice's language: one table, one row per written form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailvoice.config import TtsSettings
from mailvoice.speechtext import message_for_speech
from mailvoice.spoken.lang import profile, voice_language
from mailvoice.spoken.normalize import normalize
from mailvoice.store import MessageContent
from mailvoice.store.records import Message, utcnow

TABLE = [
    # times
    ("en", "Meet at 3.30 in the afternoon.", "Meet at three thirty in the afternoon."),
    ("en", "See you at 3.30 tomorrow", "See you at three thirty tomorrow"),
    ("en", "The call is at 15:30.", "The call is at three thirty PM."),
    ("en", "Back by 9.05pm", "Back by nine oh five PM"),
    ("de", "Der Anruf ist um 15:30.", "Der Anruf ist um fünfzehn Uhr dreißig."),
    ("de", "Bis 15.30 Uhr bitte", "Bis fünfzehn Uhr dreißig bitte"),
    ("de", "ab 1:05", "ab ein Uhr fünf"),
    ("fr", "Rendez-vous à 15h30", "Rendez-vous à quinze heures trente"),
    # dates
    ("en", "Due 2026-11-25.", "Due November twenty-fifth, twenty twenty-six."),
    ("en", "on 3/4/2026", "on March fourth, twenty twenty-six"),
    ("en_GB", "on 3/4/2026", "on April third, twenty twenty-six"),
    (
        "de",
        "Der Termin ist am 25.11.2026.",
        "Der Termin ist am fünfundzwanzigsten November zweitausendsechsundzwanzig.",
    ),
    ("de", "Am 3. Juni 2026 geht es los", "Am dritten Juni zweitausendsechsundzwanzig geht es los"),
    ("fr", "le 1er mars", "le premier mars"),
    ("es", "el 25 de noviembre de 2026", "el veinticinco de noviembre de dos mil veintiséis"),
    # money
    ("en", "It costs $12.50 today.", "It costs twelve dollars and fifty cents today."),
    ("en", "That is 12,50 € each", "That is twelve euros and fifty cents each"),
    ("en", "Budget $1.5k.", "Budget one point five thousand dollars."),
    ("en", "about 1.5k users", "about one point five thousand users"),
    ("en", "Pay €1,200 now", "Pay one thousand two hundred euros now"),
    ("de", "Das kostet 12,50 €.", "Das kostet zwölf Euro und fünfzig Cent."),
    ("de", "Umsatz 1,5 Mio. € im Jahr", "Umsatz eins Komma fünf Millionen Euro im Jahr"),
    ("de", "nur 1 € mehr", "nur ein Euro mehr"),
    ("de", "Summe 1.234,56 €", "Summe eintausendzweihundertvierunddreißig Euro und sechsundfünfzig Cent"),
    ("fr", "prix 12,50 €", "prix douze euros et cinquante centimes"),
    # percentages
    ("en", "up 12.5% in 2025", "up twelve point five percent in twenty twenty-five"),
    ("de", "plus 12,5 % im Jahr", "plus zwölf Komma fünf Prozent im Jahr"),
    ("fr", "hausse de 3 %", "hausse de trois pour cent"),
    # phone numbers, grouped as the country writes them
    ("en", "Caller 5551234567", "Caller five five five, one two three, four five six seven"),
    ("en", "from +15551234567", "from plus one, five five five, one two three, four five six seven"),
    ("en", "Call 555-123-4567.", "Call five five five, one two three, four five six seven."),
    ("de", "Ruf an: +49 30 1234567", "Ruf an: plus vier neun, drei null, eins zwei drei vier fünf sechs sieben"),
    ("de", "Anruf von 01712345678", "Anruf von null eins sieben eins, zwei drei vier fünf sechs sieben acht"),
    ("en", "code 4839201", "code four eight three nine two zero one"),
    ("en", "scores 100 12 15", "scores one hundred twelve fifteen"),
    # ordinals and plain numbers
    ("en", "the 21st floor", "the twenty-first floor"),
    ("en", "Order No. 4471", "Order number four thousand four hundred seventy-one"),
    ("de", "3-5 Tage", "drei bis fünf Tage"),
    ("de", "Dr. Müller, z.B. 1.200 Leute", "Doktor Müller, zum Beispiel eintausendzweihundert Leute"),
]


@pytest.mark.parametrize(("language", "written", "spoken"), TABLE)
def test_numbers_read_aloud(language: str, written: str, spoken: str) -> None:
    assert normalize(written, language) == spoken


def test_rules_follow_the_voice_language(tmp_path: Path) -> None:
    assert voice_language(TtsSettings()) == "en-us"  # the embedded voice, from the manifest
    assert voice_language(TtsSettings(language="de")) == "de"  # an explicit setting wins
    voice = tmp_path / "thorsten.onnx"  # a Piper voice's own config names its language
    voice.write_bytes(b"")
    voice.with_name("thorsten.onnx.json").write_text(json.dumps({"language": {"code": "de_DE"}}), encoding="utf-8")
    assert voice_language(TtsSettings(voice=str(voice))) == "de_DE"
    assert voice_language(TtsSettings(voice="fr_FR-siwis-medium")) == "fr_FR-siwis-medium"
    assert profile("fr_FR-siwis-medium").lang == "fr" and profile("en-us").region == "US"
    assert profile("xx").lang == "en"  # no rules for a language: English, with a warning


def test_a_stored_voicemail_reads_in_the_voice_language() -> None:
    message = Message(
        id="a" * 32,
        kind="voicemail",
        account="home",
        created_at=utcnow(),
        state="stored",
        duration=12.0,
        language="de",
        content=MessageContent(text="Rückruf bis 15:30 unter 030 1234567.", caller="+4930123456"),
        audio=None,
        audio_size=None,
        key_id="k",
    )
    spoken = message_for_speech(message, "de")
    assert "fünfzehn Uhr dreißig" in spoken
    assert "null drei null, eins zwei drei vier fünf sechs sieben" in spoken
    assert "plus vier neun, drei null, eins zwei drei vier fünf sechs" in spoken
