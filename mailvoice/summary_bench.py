"""`mailvoice bench tts` for the summary: a 20-mail script, time to first audio and whole-summary speed."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.engines.base import TtsEngine

_SENDERS = (
    "Maria Lopez",
    "John Baker",
    "Aisha Khan",
    "Tom Schmidt",
    "Lena Novak",
    "Omar Haddad",
    "Kim Lee",
    "Pat O'Brien",
    "Sara Rossi",
    "Ben Carter",
)
_SUBJECTS = (
    "Invoice for the garden work",
    "Team lunch on Friday",
    "Quarterly report draft",
    "Your parcel is on its way",
    "Budget review",
    "Flight change",
    "School trip forms",
    "Server maintenance tonight",
    "Dinner plans",
    "Contract renewal",
)
_BODY = (
    "Hi, the meeting moved to 3:30 PM on 2026-11-25 because the room was double booked. The invoice of $1,250.00 "
    "is attached, and Dr. Patel will join us. Please confirm by Friday, e.g. with a short reply.\n\n"
    "Details are at https://intranet.example.com/meetings/4471?ref=mail. Thanks!"
)


@dataclass(frozen=True)
class SummaryBench:
    """How fast a 20-mail spoken summary starts and finishes."""

    items: int
    threads: int
    script_chars: int
    audio_seconds: float
    """Length of the summary as heard (speech plus sentence and paragraph pauses)."""
    speech_seconds: float
    """Synthesized speech alone (pauses are free silence)."""
    first_audio_seconds: float
    """From synthesize() to the first sentence's samples in hand (median): what a listener waits."""
    synth_seconds: float
    """Whole script, median."""
    speed: float
    """Heard seconds per wall second (x real time, pauses included)."""


def bench_script(settings: Settings, items: int = 20) -> str:
    """A realistic summary script of `items` mails and voicemails, built from the real templates."""
    from mailvoice.speechtext import clean_body, first_sentences
    from mailvoice.spoken.summary import SummaryItem, build_script, rank

    now = datetime.now(UTC)
    gist = first_sentences(clean_body(_BODY), settings.summary.sentences)
    made = [
        SummaryItem(
            "voicemail" if i % 7 == 0 else "text",
            _SENDERS[i % len(_SENDERS)],
            "" if i % 7 == 0 else _SUBJECTS[i % len(_SUBJECTS)],
            gist,
            now - timedelta(minutes=37 * i),
            i % 5 == 0,
            f"bench{i}",
        )
        for i in range(items)
    ]
    return build_script(rank(made), settings, account="bench", since="24h", now=now).text


def bench_tts_summary(settings: Settings, tts: TtsEngine | None = None, *, repeats: int = 3) -> SummaryBench:
    """Synthesize a 20-mail summary `repeats` times, sentence streaming as the player would consume it."""
    if tts is None:
        from mailvoice.engines import load_tts

        tts = load_tts(settings.tts, settings.general)
    text = bench_script(settings)
    next(iter(tts.synthesize("Warm up.")))
    firsts: list[float] = []
    totals: list[float] = []
    audio = speech = 0.0
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        chunks = iter(tts.synthesize(text))
        first = next(chunks)
        firsts.append(time.perf_counter() - start)
        audio, speech = first.audio.duration + first.pause_after, first.audio.duration
        for chunk in chunks:
            audio += chunk.audio.duration + chunk.pause_after
            speech += chunk.audio.duration
        totals.append(time.perf_counter() - start)
    total = statistics.median(totals)
    return SummaryBench(
        items=20,
        threads=int(getattr(tts, "threads", 0) or os.cpu_count() or 1),
        script_chars=len(text),
        audio_seconds=audio,
        speech_seconds=speech,
        first_audio_seconds=statistics.median(firsts),
        synth_seconds=total,
        speed=audio / total,
    )
