"""Backoff with full jitter, and the retry loop the IMAP reconnect uses."""

from __future__ import annotations

import random
import threading

import pytest

from mailvoice.backoff import Backoff, retry


def test_delays_are_jittered_below_a_doubling_ceiling_up_to_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=20.0, rng=random.Random(7))
    ceilings, delays = [], []
    for _ in range(10):
        ceilings.append(backoff.ceiling())
        delays.append(backoff.next_delay())
    assert ceilings == [1, 2, 4, 8, 16, 20, 20, 20, 20, 20]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jitter: no two clients (or tries) in lockstep
    backoff.reset()
    assert backoff.ceiling() == 1
    backoff.attempt = 10_000
    assert backoff.ceiling() == 20  # no overflow after a very long outage


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(base=0)
    with pytest.raises(ValueError, match="cap"):
        Backoff(base=5, cap=1)


def test_retry_retries_transient_then_succeeds_and_resets() -> None:
    calls: list[int] = []
    backoff = Backoff(base=0.001, cap=0.002)

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "up"

    assert retry(flaky, transient=lambda e: isinstance(e, ConnectionError), backoff=backoff) == "up"
    assert len(calls) == 3 and backoff.attempt == 0


def test_retry_reraises_permanent_errors_at_once_and_honours_max_attempts() -> None:
    calls: list[int] = []

    def bad() -> None:
        calls.append(1)
        raise PermissionError("wrong password")

    with pytest.raises(PermissionError):
        retry(bad, transient=lambda e: isinstance(e, ConnectionError))
    assert len(calls) == 1

    def down() -> None:
        calls.append(1)
        raise ConnectionError("down")

    calls.clear()
    with pytest.raises(ConnectionError):
        retry(down, transient=lambda e: True, backoff=Backoff(base=0.001, cap=0.001), max_attempts=4)
    assert len(calls) == 4


def test_stop_event_interrupts_the_wait() -> None:
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()

    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise ConnectionError("down")

    # Without max_attempts only the stop event ends this (else pytest's timeout fails it): no clock needed.
    with pytest.raises(ConnectionError):
        retry(down, transient=lambda e: True, backoff=Backoff(base=60, cap=60, rng=random.Random(1)), stop=stop)
    assert stop.is_set() and len(calls) <= 2
