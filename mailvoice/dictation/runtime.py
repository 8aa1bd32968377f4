"""Building the streaming pipeline from settings: one Whisper model, its worker thread, a recognizer per stream."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from mailvoice.dictation.recognizer import StreamingRecognizer, StreamSettings

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.dictation.decoder import WindowDecoder
    from mailvoice.engines.executor import ModelWorker


class Pipeline:
    """The loaded model shared by every dictation stream of this process; decodes run one at a time."""

    def __init__(self, settings: Settings, stream: StreamSettings | None = None) -> None:
        from mailvoice.dictation.decoder import WindowDecoder
        from mailvoice.engines.executor import ModelWorker
        from mailvoice.engines.whisper import WhisperEngine

        asr = settings.asr
        if asr.engine != "faster-whisper":
            asr = dataclasses.replace(asr, engine="faster-whisper")  # streaming drives CTranslate2 directly
        self.engine = WhisperEngine(asr, settings.general)
        self.decoder: WindowDecoder = WindowDecoder(self.engine)
        self.worker: ModelWorker = ModelWorker("dictation")
        beam = max(1, min(asr.beam_size, 5))
        self.stream = stream or StreamSettings(final_beam=beam)

    def recognizer(self) -> StreamingRecognizer:
        """A fresh recognizer (its own VAD state and window) over the shared model."""
        return StreamingRecognizer(self.decoder, self.stream)

    def close(self) -> None:
        self.worker.close()
