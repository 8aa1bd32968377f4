"""One Wyoming connection: describe, transcribe (audio in, transcript out), synthesize (text in, audio out).

The reader is our own, not wyoming's `async_read_event`: that one trusts the lengths a client declares and would
buffer a 4 GB payload. Every length here is checked against [wyoming] limits before a byte is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import warnings
from typing import TYPE_CHECKING

from wyoming.asr import Transcribe, Transcript
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Describe
from wyoming.tts import Synthesize

with warnings.catch_warnings():  # wyoming.audio imports the stdlib audioop (deprecated since 3.11)
    warnings.simplefilter("ignore", DeprecationWarning)
    from wyoming.audio import AudioChunk, AudioStart, AudioStop

from mailvoice.errors import AudioError, EngineError
from mailvoice.wyoming.pcm import PcmBuffer, PcmFormat, chunked, to_pcm16

if TYPE_CHECKING:
    from mailvoice.types import Transcript as OurTranscript
    from mailvoice.wyoming.service import Service

log = logging.getLogger(__name__)
_OUT_CHUNK_SAMPLES = 1024
"""Samples per audio-chunk we send (what wyoming-piper sends)."""


class ProtocolError(ValueError):
    """The client broke the protocol or a limit: told with an error event, then disconnected."""


class RequestError(ValueError):
    """One request cannot be served (bad audio, unknown voice): told with an error event; the connection stays."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class Handler:
    """Reads events one at a time and answers each; one utterance or one synthesis in flight per connection."""

    def __init__(self, service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.service = service
        self.settings = service.settings.wyoming
        self.reader = reader
        self.writer = writer
        self._language: str | None = None
        self._audio: PcmBuffer | None = None

    async def run(self) -> None:
        service = self.service
        if service.active >= self.settings.max_connections:
            log.warning("Wyoming connection refused: %d already open (wyoming.max_connections)", service.active)
            await self._error(f"server busy: {service.active} connections open; try again later", "busy")
            await self._close()
            return
        service.active += 1
        try:
            while True:
                try:
                    async with asyncio.timeout(self.settings.idle_timeout):
                        event = await self._read_event()
                except TimeoutError:
                    log.info("Wyoming connection idle for %.0f s: closed", self.settings.idle_timeout)
                    break
                if event is None:
                    break
                try:
                    await self._handle(event)
                except RequestError as exc:
                    self._audio = None
                    log.info("Wyoming %s refused: %s", event.type, exc.code)
                    await self._error(str(exc), exc.code)
        except ProtocolError as exc:
            log.info("Wyoming client broke the protocol: %s", exc)
            await self._error(str(exc), "protocol")
        except (ConnectionError, asyncio.IncompleteReadError):
            log.debug("Wyoming client went away")
        finally:
            service.active -= 1
            await self._close()

    async def _read_event(self) -> Event | None:
        """The next event, every declared length checked against the limits first."""
        limit = self.settings.max_event_bytes
        try:
            line = await self.reader.readline()
        except ValueError as exc:  # asyncio.LimitOverrunError: the header line is over the stream limit
            raise ProtocolError("event header line too long") from exc
        if not line:
            return None
        try:
            header = json.loads(line)
        except ValueError as exc:
            raise ProtocolError("event header is not JSON") from exc
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            raise ProtocolError("event header has no type")
        data = header.get("data") or {}
        if not isinstance(data, dict):
            raise ProtocolError("event data is not an object")
        lengths = []
        for key in ("data_length", "payload_length"):
            value = header.get(key) or 0
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ProtocolError(f"event {key} is not a non-negative integer")
            if value > limit:
                raise ProtocolError(f"event {key} {value} is over {limit} bytes (setting wyoming.max_event_bytes)")
            lengths.append(value)
        data_length, payload_length = lengths
        if data_length:
            try:
                extra = json.loads(await self.reader.readexactly(data_length))
            except ValueError as exc:
                raise ProtocolError("event data is not JSON") from exc
            if not isinstance(extra, dict):
                raise ProtocolError("event data is not an object")
            data.update(extra)
        payload = await self.reader.readexactly(payload_length) if payload_length else None
        return Event(type=header["type"], data=data, payload=payload)

    async def _handle(self, event: Event) -> None:
        if Describe.is_type(event.type):
            await self._write(self.service.info.event())
        elif Transcribe.is_type(event.type):
            language = event.data.get("language")
            self._language = language if isinstance(language, str) and language else None
            self._check_language(self._language)
        elif AudioStart.is_type(event.type):
            self._start(event)
        elif AudioChunk.is_type(event.type):
            self._chunk(event)
        elif AudioStop.is_type(event.type):
            await self._finish()
        elif Synthesize.is_type(event.type):
            await self._synthesize(event)
        else:
            log.debug("Wyoming event %s ignored", event.type)

    def _check_language(self, language: str | None) -> None:
        if language is None:
            return
        base = language.replace("_", "-").split("-")[0].lower()
        if base not in self.service.asr_languages:
            model = self.service.settings.asr.model
            spoken = ", ".join(self.service.asr_languages[:8])
            raise RequestError(
                f"ASR model {model} does not speak {language!r} (it speaks {spoken}); "
                "set asr.model to a multilingual model such as base",
                "language",
            )

    def _start(self, event: Event) -> None:
        try:
            fmt = PcmFormat.checked(event.data.get("rate"), event.data.get("width"), event.data.get("channels"))
        except AudioError as exc:
            raise RequestError(str(exc), "audio") from exc
        seconds = min(self.settings.max_audio_seconds, self.service.settings.audio.max_duration)
        self._audio = PcmBuffer(fmt, seconds)

    def _chunk(self, event: Event) -> None:
        audio = self._audio
        if audio is None:
            raise RequestError("audio-chunk without audio-start", "audio")
        fmt = audio.format
        got = (event.data.get("rate", fmt.rate), event.data.get("width", fmt.width))
        if got != (fmt.rate, fmt.width) or event.data.get("channels", fmt.channels) != fmt.channels:
            raise RequestError(
                "audio-chunk format differs from its audio-start; send one format per utterance", "audio"
            )
        try:
            audio.add(event.payload or b"")
        except AudioError as exc:
            raise RequestError(str(exc), "audio") from exc

    async def _finish(self) -> None:
        audio, self._audio = self._audio, None
        if audio is None:
            raise RequestError("audio-stop without audio-start", "audio")
        wav = audio.wav()
        try:
            transcript = await self.service.asr_worker.run(self._transcribe, wav)
        except (AudioError, EngineError) as exc:
            raise RequestError(str(exc), "asr") from exc
        except Exception as exc:  # an engine bug must not end the server: this request fails, the next runs
            log.exception("Wyoming transcription failed unexpectedly (%s)", type(exc).__name__)
            raise RequestError(f"transcription failed ({type(exc).__name__})", "asr") from exc
        log.info(
            "Wyoming transcript: %.1f s of audio, %d chars, language %s",
            transcript.duration,
            len(transcript.text),
            transcript.language,
        )
        await self._write(Transcript(text=transcript.text, language=transcript.language).event())
        self._language = None

    def _transcribe(self, wav: bytes) -> OurTranscript:
        """Decode (allowlist, limits, 16 kHz) and transcribe: both run in the ASR model's thread."""
        from mailvoice.audio import load_for_asr

        clip = load_for_asr(wav, name="wyoming audio", settings=self.service.settings.audio)
        return self.service.asr.transcribe(clip)

    async def _synthesize(self, event: Event) -> None:
        text = event.data.get("text")
        if not isinstance(text, str) or not text.strip():
            raise RequestError("synthesize needs a non-empty text", "tts")
        if len(text) > self.settings.max_text_chars:
            raise RequestError(
                f"text of {len(text)} chars is over {self.settings.max_text_chars} (setting wyoming.max_text_chars)",
                "tts",
            )
        voice = event.data.get("voice") or {}
        name = voice.get("name") if isinstance(voice, dict) else None
        if name and name != self.service.settings.tts.voice:
            raise RequestError(f"unknown voice {name!r}; this server has {self.service.settings.tts.voice!r}", "tts")
        tts = self.service.tts
        rate, samples = tts.sample_rate, 0
        await self._write(AudioStart(rate=rate, width=2, channels=1).event())
        try:
            async for chunk in self.service.tts_worker.iterate(tts.synthesize, text):
                pcm = to_pcm16(chunk.audio.samples) + bytes(2 * int(chunk.pause_after * rate))
                for piece in chunked(pcm, 2 * _OUT_CHUNK_SAMPLES):
                    await self._write(
                        AudioChunk(
                            rate=rate, width=2, channels=1, audio=piece, timestamp=1000 * samples // rate
                        ).event()
                    )
                    samples += len(piece) // 2
        except (EngineError, ValueError) as exc:
            await self._write(AudioStop(timestamp=1000 * samples // rate).event())
            raise RequestError(f"synthesis failed: {exc}", "tts") from exc
        except Exception as exc:  # as for ASR: this request fails, the connection and server go on
            log.exception("Wyoming synthesis failed unexpectedly (%s)", type(exc).__name__)
            await self._write(AudioStop(timestamp=1000 * samples // rate).event())
            raise RequestError(f"synthesis failed ({type(exc).__name__})", "tts") from exc
        await self._write(AudioStop(timestamp=1000 * samples // rate).event())
        log.info("Wyoming synthesis: %d chars, %.1f s of audio", len(text), samples / rate)

    async def _write(self, event: Event) -> None:
        await async_write_event(event, self.writer)

    async def _error(self, text: str, code: str) -> None:
        with contextlib.suppress(ConnectionError):
            await self._write(Error(text=text, code=code).event())

    async def _close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
