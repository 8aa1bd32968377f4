"""Inference never runs on the event loop: each loaded model owns one worker thread that coroutines await."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar, TypeVarTuple

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
_POLL_S = 0.1
"""How often a producer blocked on a full queue checks whether its consumer went away."""


class _Done:
    """End-of-stream marker passed through the queue."""


class _Failed(Generic[T]):
    """An exception raised by the generator, carried to the consumer."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class ModelWorker:
    """One model, one thread: calls run one at a time, in order; lazy results are consumed there too.

    CTranslate2 and onnxruntime release the GIL, so a thread is enough; a single thread also keeps models that
    are not thread-safe (Piper's session, Coqui's torch module) safe without locks.
    """

    def __init__(self, name: str, *, queue_size: int = 4) -> None:
        self.name = name
        self.queue_size = queue_size
        """How many items ``iterate`` may compute ahead of its consumer."""
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mailvoice-{name}")

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """``fn(*args)`` in the model's thread; the loop stays free while it computes."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    async def iterate(self, gen_fn: Callable[[*Ts], Iterator[T]], *args: *Ts) -> AsyncGenerator[T, None]:
        """Items of ``gen_fn(*args)``, produced in the model's thread, handed over as each one is ready.

        At most ``queue_size`` items are computed ahead (back-pressure). If the consumer stops early or is
        cancelled, the generator is closed in its own thread after the item in progress.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[T | _Done | _Failed[T]] = asyncio.Queue()
        slots = threading.Semaphore(self.queue_size)
        stop = threading.Event()

        def hand_over(item: T | _Done | _Failed[T]) -> bool:
            while not slots.acquire(timeout=_POLL_S):
                if stop.is_set() or loop.is_closed():
                    return False
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop closed under us
                return False
            return True

        def produce() -> None:
            gen = gen_fn(*args)
            try:
                for item in gen:
                    if stop.is_set() or not hand_over(item):
                        return
                hand_over(_Done())
            except BaseException as exc:  # carried to the consumer and re-raised there
                hand_over(_Failed(exc))
            finally:
                close = getattr(gen, "close", None)
                if close is not None:
                    close()

        producer = loop.run_in_executor(self._pool, produce)
        try:
            while True:
                item = await queue.get()
                slots.release()
                if isinstance(item, _Done):
                    break
                if isinstance(item, _Failed):
                    raise item.exc
                yield item
        finally:
            stop.set()
            slots.release()  # wake a producer waiting for room
            await asyncio.shield(producer)

    def close(self, *, wait: bool = True) -> None:
        """Stop the thread once queued work is done; later calls raise RuntimeError."""
        self._pool.shutdown(wait=wait, cancel_futures=True)

    async def __aenter__(self) -> ModelWorker:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.close)
