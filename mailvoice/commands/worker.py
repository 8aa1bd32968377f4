"""`mailvoice worker [--queues mail,asr,tts] [--name N]`: a scaled-out worker process (see mailvoice.scale)."""

from __future__ import annotations

import argparse

from mailvoice.commands import settings_from


def run(args: argparse.Namespace) -> int:
    from mailvoice.scale.worker import run_worker

    return run_worker(settings_from(args), args.queues or None, args.name)
