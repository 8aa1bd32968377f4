"""`mailvoice wyoming` end to end: the real CLI in a subprocess on 127.0.0.1, spoken to by the wyoming package's own
client (what Home Assistant uses), on real recordings from tests/data/real."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

with warnings.catch_warnings():  # wyoming.audio imports the stdlib audioop (deprecated since 3.11)
    warnings.simplefilter("ignore", DeprecationWarning)
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.error import Error
    from wyoming.event import Event
    from wyoming.info import Describe, Info
    from wyoming.tts import Synthesize, SynthesizeVoice

    from mailvoice.audio.decode import decode_audio

pytestmark = pytest.mark.slow

REAL = Path(__file__).parent / "data" / "real"
MAX_SECONDS = 20
_READY = re.compile(r"Wyoming server on tcp://([\d.]+):(\d+)")


@dataclass
class Server:
    host: str
    port: int
    log: Path

    def client(self) -> AsyncTcpClient:
        return AsyncTcpClient(self.host, self.port)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("wyoming")
    config = home / "config.toml"
    config.write_text(
        f'[general]\ndata_dir = "{home / "data"}"\n[asr]\nthreads = 1\n[tts]\nthreads = 1\n'
        f"[wyoming]\nmax_audio_seconds = {MAX_SECONDS}\nmax_event_bytes = 65536\nmax_text_chars = 400\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVOICE_")}
    env.update(MAILVOICE_CONFIG=str(config), COLUMNS="300", PYTHONUNBUFFERED="1")
    log = home / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailvoice", "-v", "wyoming", "--uri", "tcp://127.0.0.1:0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 300
        while not (found := _READY.search(log.read_text(errors="replace"))):
            assert proc.poll() is None, f"server exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}"
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.2)
        yield Server(found.group(1), int(found.group(2)), log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pcm16(name: str, rate: int = 16_000) -> bytes:
    """A real recording as Home Assistant sends it: signed 16-bit mono PCM."""
    clip = decode_audio((REAL / name).read_bytes(), name=name)
    samples = clip.samples
    if rate != clip.sample_rate:
        positions = np.arange(0, len(samples), clip.sample_rate / rate)
        samples = np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def reference(name: str) -> str:
    manifest = json.loads((REAL / "manifest.json").read_text(encoding="utf-8"))
    return str(next(e["ref"] for e in manifest if e["file"] == name))


async def send_audio(client: AsyncTcpClient, pcm: bytes, rate: int, *, language: str | None = "en") -> None:
    await client.write_event(Transcribe(language=language).event())
    await client.write_event(AudioStart(rate=rate, width=2, channels=1).event())
    for i in range(0, len(pcm), 2048):
        await client.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=pcm[i : i + 2048]).event())
    await client.write_event(AudioStop().event())


async def next_event(client: AsyncTcpClient) -> Event | None:
    return await asyncio.wait_for(client.read_event(), 240)


async def transcribe(server: Server, pcm: bytes, rate: int = 16_000) -> Transcript:
    async with server.client() as client:
        await send_audio(client, pcm, rate)
        event = await next_event(client)
    assert event is not None and Transcript.is_type(event.type), event
    return Transcript.from_event(event)


def words(text: str) -> set[str]:
    return set(re.sub(r"[^\w\s]", " ", text.lower()).split())


async def test_describe_announces_our_model_and_voice(server: Server) -> None:
    async with server.client() as client:
        await client.write_event(Describe().event())
        event = await next_event(client)
    assert event is not None and Info.is_type(event.type)
    info = Info.from_event(event)
    assert [m.name for p in info.asr for m in p.models] == ["tiny.en"]
    assert info.asr[0].models[0].languages == ["en"] and info.asr[0].installed
    voices = [v for p in info.tts for v in p.voices]
    assert [v.name for v in voices] == ["joe"] and voices[0].languages == ["en-us"]


@pytest.mark.parametrize(
    ("name", "rate", "robust"),
    [
        ("new-home-in-the-stars.wav", 16_000, {"home", "stars"}),
        ("wizard-left.wav", 16_000, {"wizard", "curtain"}),
        ("horizon-right.wav", 8_000, {"horizon", "distant"}),  # telephone-band rate: resampled by the decoder
    ],
)
async def test_real_speech_is_transcribed_in_english(server: Server, name: str, rate: int, robust: set[str]) -> None:
    transcript = await transcribe(server, pcm16(name, rate), rate)
    assert transcript.language == "en"
    got = words(transcript.text)
    assert robust <= got, f"{transcript.text!r} vs reference {reference(name)!r}"
    assert got <= words(reference(name)) | {"a", "the", "of", "to"} or len(got - words(reference(name))) <= 2


async def test_silence_gives_an_empty_transcript_not_invented_words(server: Server) -> None:
    transcript = await transcribe(server, bytes(2 * 16_000 * 3))
    assert transcript.text == ""


async def test_speech_synthesized_over_wyoming_round_trips_through_its_asr(server: Server) -> None:
    async with server.client() as client:
        await client.write_event(
            Synthesize(text="We must find a new home in the stars.", voice=SynthesizeVoice(name="joe")).event()
        )
        start = await next_event(client)
        assert start is not None and AudioStart.is_type(start.type), start
        fmt = AudioStart.from_event(start)
        assert (fmt.width, fmt.channels) == (2, 1) and fmt.rate == 22_050
        audio = bytearray()
        while (event := await next_event(client)) is not None and AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            assert (chunk.rate, chunk.width, chunk.channels) == (fmt.rate, 2, 1)
            audio += chunk.audio
        assert event is not None and AudioStop.is_type(event.type), event
    assert 1.0 < len(audio) / 2 / fmt.rate < 10.0
    transcript = await transcribe(server, bytes(audio), fmt.rate)
    assert {"home", "stars"} <= words(transcript.text), transcript.text


async def test_inference_runs_off_the_loop_another_client_is_answered_meanwhile(server: Server) -> None:
    async with server.client() as busy, server.client() as other:
        await send_audio(busy, pcm16("wizard-left.wav"), 16_000)
        pending = asyncio.ensure_future(next_event(busy))
        await other.write_event(Describe().event())
        info = await next_event(other)
        assert info is not None and Info.is_type(info.type)
        assert not pending.done(), "describe was answered only after the transcription finished"
        result = await pending
        assert result is not None and Transcript.is_type(result.type)


async def expect_error(client: AsyncTcpClient, code: str) -> Error:
    event = await next_event(client)
    assert event is not None and Error.is_type(event.type), event
    error = Error.from_event(event)
    assert error.code == code, error
    return error


async def still_answers(client: AsyncTcpClient) -> None:
    await client.write_event(Describe().event())
    event = await next_event(client)
    assert event is not None and Info.is_type(event.type)


async def test_over_long_utterance_is_refused_and_the_connection_goes_on(server: Server) -> None:
    async with server.client() as client:
        second = bytes(2 * 16_000)
        await client.write_event(AudioStart(rate=16_000, width=2, channels=1).event())
        for _ in range(MAX_SECONDS + 1):
            for i in range(0, len(second), 32_000):
                await client.write_event(
                    AudioChunk(rate=16_000, width=2, channels=1, audio=second[i : i + 32_000]).event()
                )
        error = await expect_error(client, "audio")
        assert "wyoming.max_audio_seconds" in (error.text or "")
        await still_answers(client)


async def test_bad_requests_get_specific_errors(server: Server) -> None:
    async with server.client() as client:
        await client.write_event(Transcribe(language="de").event())
        error = await expect_error(client, "language")
        assert "tiny.en" in (error.text or "")
        await client.write_event(AudioStart(rate=16_000, width=1, channels=1).event())
        await expect_error(client, "audio")
        await client.write_event(AudioChunk(rate=16_000, width=2, channels=1, audio=b"\0\0").event())
        await expect_error(client, "audio")
        await client.write_event(Synthesize(text="x" * 401).event())
        assert "wyoming.max_text_chars" in ((await expect_error(client, "tts")).text or "")
        await client.write_event(Synthesize(text="hello", voice=SynthesizeVoice(name="nobody")).event())
        await expect_error(client, "tts")
        await still_answers(client)


async def test_a_declared_huge_payload_is_refused_before_it_is_read(server: Server) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    header = {"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, "payload_length": 4 << 30}
    writer.write(json.dumps(header).encode() + b"\n" + bytes(1000))
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 60)
    assert json.loads(line)["type"] == "error"
    rest = await asyncio.wait_for(reader.read(), 60)  # the server closes the connection
    assert b"max_event_bytes" in rest
    writer.close()
    async with server.client() as client:  # the server itself goes on
        await still_answers(client)


def test_missing_extra_names_the_pip_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVOICE_")}
    env.update(MAILVOICE_GENERAL__DATA_DIR=str(tmp_path), COLUMNS="300")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['wyoming'] = None\nimport mailvoice.cli as c\n"
            "raise SystemExit(c.main(['wyoming']))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'mailvoice[wyoming]'" in proc.stderr and "Traceback" not in proc.stderr
