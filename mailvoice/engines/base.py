"""The engine protocols: plain synchronous classes, so every engine runs the same way in a ModelWorker."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from mailvoice.types import AudioClip, SpeechChunk, Transcript

ASR_SAMPLE_RATE = 16_000
"""Every ASR engine takes 16 kHz mono float32 clips."""


@runtime_checkable
class AsrEngine(Protocol):
    """Speech to text."""

    name: str

    def transcribe(self, clip: AudioClip) -> Transcript:
        """Transcribe a whole 16 kHz mono clip; blocks (call it from a worker thread)."""
        ...


@runtime_checkable
class TtsEngine(Protocol):
    """Text to speech, sentence by sentence."""

    name: str
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[SpeechChunk]:
        """Yield one chunk per sentence, lazily, so the first audio is ready before the rest is computed."""
        ...


class _DropContent(logging.Filter):
    """Drops a library's log records that would carry the text being spoken."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return bool(self.prefixes) and not str(record.msg).startswith(self.prefixes)


def drop_content_logs(logger_name: str, *prefixes: str) -> None:
    """Mail text must never reach a log: drop a library logger's records starting with a prefix (all, if none)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _DropContent) for f in logger.filters):
        logger.addFilter(_DropContent(prefixes))
