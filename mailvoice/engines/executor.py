"""Inference never runs on the event loop: each loaded model owns one worker thread that coroutines await."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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


U = TypeVar("U")


class BatchingWorker(Generic[T, U]):
    """One model thread that takes every request waiting when it is free and runs them as one batch.

    ``run_many(items)`` must return one result per item, in order. Callers block in ``submit`` on their own
    future, so each gets exactly its own result (or its own exception: a failing batch is retried item by item,
    so one bad input fails only its caller).
    """

    def __init__(self, name: str, run_many: Callable[[list[T]], list[U]], *, max_batch: int = 8) -> None:
        import queue

        self.max_batch = max_batch
        self._run_many = run_many
        self._queue: queue.SimpleQueue[tuple[T, Future[U]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"mailvoice-{name}", daemon=True)
        self._closed = False
        self._lock = threading.Lock()
        self._thread.start()

    def submit(self, item: T) -> Future[U]:
        """Queue one item; its future resolves once the batch holding it ran."""
        future: Future[U] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker is closed")
            self._queue.put((item, future))
        return future

    def _take(self) -> list[tuple[T, Future[U]]] | None:
        import queue

        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)  # finish this batch, then stop
                break
            batch.append(nxt)
        return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                results = self._run_many([item for item, _ in live])
            except BaseException as exc:
                if len(live) == 1:
                    live[0][1].set_exception(exc)
                    continue
                for item, fut in live:  # find the item at fault: each caller gets its own outcome
                    try:
                        fut.set_result(self._run_many([item])[0])
                    except BaseException as exc:
                        fut.set_exception(exc)
                continue
            for (_item, fut), result in zip(live, results, strict=True):
                fut.set_result(result)

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()
