"""Named crash points for the exactly-once tests: SIGKILL this process at a pipeline step.

"transcribing" fires in a scaled-out worker as the model starts on an attachment (mailvoice.scale.tasks).

Read only when MAILVOICE_TEST_CRASH_AT is set (the tests set it); a no-op otherwise.
"""

from __future__ import annotations

import os
import signal

ENV = "MAILVOICE_TEST_CRASH_AT"
STEPS = ("fetched", "transcribing", "transcribed", "stored", "acknowledged", "sending", "sent")


def crashpoint(step: str) -> None:
    """Die here, like a power cut, when the test switch names this step."""
    if os.environ.get(ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
