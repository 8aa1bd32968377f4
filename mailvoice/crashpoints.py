"""Named crash points for the exactly-once tests: SIGKILL this process at a pipeline step.

"transcribing" fires in a scaled-out worker as the model starts on an attachment (mailvoice.scale.tasks).

Read only when MAILVOICE_TEST_CRASH_AT is set (the tests set it); a no-op otherwise.
"""

from __future__ import annotations

import os
import signal

ENV = "MAILVOICE_TEST_CRASH_AT"
STEPS = ("fetched", "transcribing", "transcribed", "stored", "acknowledged", "sending", "sent", "matrix-replied")


def crashpoint(step: str) -> None:
    """Die here, like a power cut, when the test switch names this step."""
    if os.environ.get(ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


FAULT_ENV = "MAILVOICE_TEST_FAULT_AT"
FAULT_MARK = b"X-Mailvoice-Test-Fault:"
"""Header a test puts in the one mail that should fail; the others pass the same step untouched."""


class InjectedFault(RuntimeError):
    """An unexpected error raised on purpose: a stand-in for a bug inside a stage."""


def fault(step: str, raw: bytes) -> None:
    """Raise InjectedFault here when the test switch names this step (comma list) and the mail carries the mark."""
    steps = os.environ.get(FAULT_ENV)
    if steps and step in steps.split(",") and FAULT_MARK in raw[:65536]:
        raise InjectedFault(f"injected fault at step {step}")
