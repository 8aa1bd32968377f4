"""ModelWorker: blocking inference runs in the model's own thread while the event loop keeps ticking."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Iterator
from typing import TypeVar

import pytest
from speech import piper_engine, speak, whisper_engine

from mailvoice.engines.executor import ModelWorker

T = TypeVar("T")


async def _ticks_during(awaitable: Awaitable[T], interval: float = 0.01) -> tuple[T, int]:
    """Run the awaitable while counting loop ticks: a blocked loop would tick once or not at all."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(interval)

    task = asyncio.create_task(ticker())
    try:
        result = await awaitable
    finally:
        done.set()
        await task
    return result, ticks


async def test_run_uses_one_dedicated_thread() -> None:
    async with ModelWorker("test") as worker:
        loop_thread = threading.get_ident()
        idents = await asyncio.gather(*(worker.run(threading.get_ident) for _ in range(5)))
        assert len(set(idents)) == 1 and idents[0] != loop_thread
        _, ticks = await _ticks_during(worker.run(time.sleep, 0.3))
        assert ticks >= 10
        assert await worker.run(pow, 2, 10) == 1024


async def test_run_propagates_errors() -> None:
    async with ModelWorker("test") as worker:
        with pytest.raises(ZeroDivisionError):
            await worker.run(divmod, 1, 0)
        assert await worker.run(abs, -3) == 3  # the worker survives a failed call


async def test_iterate_streams_items_as_they_are_made() -> None:
    produced_in: set[int] = set()

    got_first = threading.Event()
    waited: list[bool] = []

    def numbers(n: int) -> Iterator[int]:
        for i in range(n):
            produced_in.add(threading.get_ident())
            yield i
            if i == 0:
                # The second item is made only once the consumer holds the first: a worker that collected the
                # whole generator before handing anything over would leave this wait to run out (False).
                waited.append(got_first.wait(60))

    async with ModelWorker("test") as worker:
        seen: list[int] = []
        async for item in worker.iterate(numbers, 6):
            seen.append(item)
            got_first.set()
        assert seen == list(range(6))
        assert waited == [True]  # the first item arrived before the rest was made
        assert produced_in and threading.get_ident() not in produced_in


async def test_iterate_stops_the_generator_when_the_consumer_leaves() -> None:
    made: list[int] = []
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                made.append(i)
                yield i
                i += 1
        finally:
            closed.set()

    async with ModelWorker("test", queue_size=2) as worker:
        stream = worker.iterate(endless)
        async for item in stream:
            if item == 3:
                break
        await stream.aclose()
        assert closed.is_set()
        assert len(made) <= 3 + 1 + 2 + 1  # consumed, in flight, queued: bounded by back-pressure
        assert await worker.run(len, "ok") == 2


async def test_iterate_propagates_errors() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("bad sentence")

    async with ModelWorker("test") as worker:
        got: list[int] = []
        with pytest.raises(ValueError, match="bad sentence"):
            async for item in worker.iterate(failing):
                got.append(item)
        assert got == [1]


@pytest.mark.slow
async def test_real_models_off_the_loop() -> None:
    asr, tts = whisper_engine(), piper_engine()
    clip = speak("Call me back tomorrow.")
    async with ModelWorker("asr") as asr_worker, ModelWorker("tts") as tts_worker:
        transcript, ticks = await _ticks_during(asr_worker.run(asr.transcribe, clip))
        assert "call me back" in transcript.text.lower()
        assert ticks >= 3
        texts = [c.text async for c in tts_worker.iterate(tts.synthesize, "One. Two. Three.")]
        assert texts == ["One.", "Two.", "Three."]
