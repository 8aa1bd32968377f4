"""`mailvoice scheduler`: enqueue polls, sends, sweeps and summaries for the workers (see mailvoice.scale)."""

from __future__ import annotations

import argparse

from mailvoice.commands import settings_from


def run(args: argparse.Namespace) -> int:
    from mailvoice.scale.scheduler import run_scheduler

    return run_scheduler(settings_from(args))
