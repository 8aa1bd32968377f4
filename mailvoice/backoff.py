"""Exponential backoff with full jitter, shared by the IMAP reconnect loop and the SMTP outbox.

Full jitter (a uniform delay between 0 and the exponential ceiling) spreads reconnecting clients out so that a
restarted server is not hit by all of them at once (AWS Architecture Blog, "Exponential Backoff And Jitter").
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Backoff:
    """Delays of uniform(0, min(cap, base * 2**attempt)); `reset()` after a success."""

    def __init__(self, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"Backoff needs 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The largest delay the next call may return."""
        # min() before the power would overflow after ~1000 attempts.
        return min(self.cap, self.base * 2.0 ** min(self.attempt, 64))

    def next_delay(self) -> float:
        """The delay before the next try; each call raises the ceiling until the cap."""
        delay = self._rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


def retry(
    action: Callable[[], T],
    *,
    transient: Callable[[BaseException], bool],
    backoff: Backoff | None = None,
    stop: threading.Event | None = None,
    max_attempts: int | None = None,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Call `action` until it succeeds; retry transient errors after a backoff delay, re-raise the others.

    The wait is `stop.wait(delay)`, so another thread can interrupt it: the last error is then re-raised.
    """
    backoff = backoff or Backoff()
    stop = stop or threading.Event()
    attempts = 0
    while True:
        try:
            result = action()
        except Exception as exc:
            attempts += 1
            if not transient(exc) or (max_attempts is not None and attempts >= max_attempts) or stop.is_set():
                raise
            delay = backoff.next_delay()
            if on_retry is not None:
                on_retry(exc, delay)
            if stop.wait(delay):
                raise
        else:
            backoff.reset()
            return result
