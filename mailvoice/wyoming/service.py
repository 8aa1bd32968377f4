"""The loaded engines, what `describe` announces about them, and the listening socket."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from wyoming.info import AsrModel, AsrProgram, Attribution, Info, TtsProgram, TtsVoice

from mailvoice import __version__
from mailvoice.config import is_loopback
from mailvoice.engines.executor import ModelWorker
from mailvoice.errors import ConfigError

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.engines.base import AsrEngine, TtsEngine

log = logging.getLogger(__name__)
_LINE_LIMIT = 64 * 1024
"""Longest event header line (JSON) accepted; asyncio refuses a longer line before buffering it all."""
_ASR_ATTRIBUTION = Attribution(
    name="OpenAI Whisper via SYSTRAN faster-whisper", url="https://github.com/SYSTRAN/faster-whisper"
)
_PIPER_ATTRIBUTION = Attribution(name="Piper (Open Home Foundation)", url="https://github.com/OHF-Voice/piper1-gpl")
_OURS = Attribution(name="mailvoice contributors", url="")


@dataclass(frozen=True, slots=True)
class Address:
    """Where the server listens: a TCP host and port, or a Unix socket path."""

    host: str = ""
    port: int = 0
    path: Path | None = None

    @classmethod
    def parse(cls, uri: str) -> Address:
        parsed = urlparse(uri)
        if parsed.scheme == "unix" and parsed.path:
            return cls(path=Path(parsed.path))
        if parsed.scheme == "tcp" and parsed.hostname:
            try:
                port = parsed.port
            except ValueError:
                port = None
            if port is not None:
                return cls(host=parsed.hostname, port=port)
        raise ConfigError(
            f"Wyoming address {uri!r} (setting wyoming.uri or --uri) is invalid: "
            "expected tcp://HOST:PORT (e.g. tcp://127.0.0.1:10300) or unix:///path/to/socket"
        )


class Service:
    """One ASR and one TTS engine, each in its own model thread, shared by every connection."""

    def __init__(self, settings: Settings, asr: AsrEngine, tts: TtsEngine) -> None:
        self.settings = settings
        self.asr = asr
        self.tts = tts
        self.asr_worker = ModelWorker("wyoming-asr")
        self.tts_worker = ModelWorker("wyoming-tts")
        self.asr_languages = _asr_languages(asr, settings)
        from mailvoice.spoken.lang import voice_language

        self.voice_language = voice_language(settings.tts)
        self.info = self._info()
        self.active = 0
        """Connections being served now."""

    @classmethod
    def load(cls, settings: Settings) -> Service:
        """Load both engines once (slow): no request ever loads a model."""
        from mailvoice.engines import load_asr, load_tts

        return cls(settings, load_asr(settings.asr, settings.general), load_tts(settings.tts, settings.general))

    def _info(self) -> Info:
        from mailvoice.models import manifest_entry

        asr_entry = manifest_entry("asr", self.settings.asr.model)
        tts_entry = manifest_entry("tts", self.settings.tts.voice)
        model = AsrModel(
            name=self.settings.asr.model,
            attribution=_ASR_ATTRIBUTION,
            installed=True,
            description=asr_entry.description if asr_entry else f"Whisper model {self.settings.asr.model}",
            version=None,
            languages=list(self.asr_languages),
        )
        voice = TtsVoice(
            name=self.settings.tts.voice,
            attribution=_PIPER_ATTRIBUTION if self.tts.name == "piper" else _OURS,
            installed=True,
            description=tts_entry.description if tts_entry else f"{self.tts.name} voice {self.settings.tts.voice}",
            version=None,
            languages=[self.voice_language],
        )
        return Info(
            asr=[
                AsrProgram(
                    name="mailvoice-asr",
                    attribution=_OURS,
                    installed=True,
                    description=f"mailvoice speech to text ({self.asr.name})",
                    version=__version__,
                    models=[model],
                )
            ],
            tts=[
                TtsProgram(
                    name="mailvoice-tts",
                    attribution=_OURS,
                    installed=True,
                    description=f"mailvoice text to speech ({self.tts.name})",
                    version=__version__,
                    voices=[voice],
                )
            ],
        )

    async def close(self) -> None:
        await asyncio.to_thread(self.asr_worker.close)
        await asyncio.to_thread(self.tts_worker.close)


def _asr_languages(asr: AsrEngine, settings: Settings) -> tuple[str, ...]:
    """The languages the loaded model speaks (faster-whisper says; an English-only model speaks "en")."""
    model = getattr(asr, "model", None)
    languages = getattr(model, "supported_languages", None)
    if isinstance(languages, list | tuple) and languages:
        return tuple(str(lang) for lang in languages)
    return (settings.asr.language if settings.asr.language != "auto" else "en",)


async def serve(service: Service, uri: str, *, ready: Callable[[str], None] | None = None) -> None:
    """Accept connections until cancelled; ``ready`` gets the bound address (port 0 picks a free port)."""
    from mailvoice.wyoming.handler import Handler

    address = Address.parse(uri)

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await Handler(service, reader, writer).run()

    if address.path is not None:
        address.path.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(connected, path=str(address.path), limit=_LINE_LIMIT)
        bound = f"unix://{address.path}"
    else:
        if not is_loopback(address.host):
            log.warning("Wyoming server on %s: reachable from the network, and Wyoming has no authentication", uri)
        try:
            server = await asyncio.start_server(connected, host=address.host, port=address.port, limit=_LINE_LIMIT)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {uri} (setting wyoming.uri or --uri): {exc.strerror}") from exc
        host, port = server.sockets[0].getsockname()[:2]
        bound = f"tcp://{host}:{port}"
    log.info("Wyoming server listening on %s", bound)
    async with server:
        if ready is not None:
            ready(bound)
        try:
            await server.serve_forever()
        finally:
            await service.close()
