"""`mailvoice run [--once] [--since DATE]`: the mail bot."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mailvoice.commands import console, open_store, print_json, settings_from
from mailvoice.errors import ConfigError

if TYPE_CHECKING:
    from mailvoice.runner import Stats

log = logging.getLogger(__name__)


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d")
    except ValueError as exc:
        raise ConfigError(f"--since {value!r}: expected a date like 2026-11-01") from exc
    return day.replace(tzinfo=UTC)


def report(stats: Stats) -> None:
    """The `run --once` summary; first contact with a mailbox that holds mail says what was left and why."""
    console.info(
        f"voicemails transcribed: {stats.delivered}, text mails: {stats.text}, "
        f"already done: {stats.duplicate}, quarantined: {stats.quarantined}, "
        f"errors: {stats.errors}"
    )
    left = {where: n for where, n in stats.old_mail.items() if n}
    if not left:
        return
    for where, n in sorted(left.items()):
        console.info(f"first contact with {where}: {n} message(s) already there, left as old mail")
    console.info(
        "mailvoice transcribes mail that arrives from now on. To process the old mail too: "
        "`mailvoice run --once --since YYYY-MM-DD` (mail received since that day), or set "
        'general.backlog = "7d" in the config before the first run of a new mailbox.'
    )


async def _daemon(runner: object) -> None:
    from mailvoice.runner import Runner

    assert isinstance(runner, Runner)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    console.info("mailvoice is running; Ctrl-C or SIGTERM stops it after the work in hand")
    await runner.run_forever(stop)


def run(args: argparse.Namespace) -> int:
    from mailvoice.runner import Runner

    settings = settings_from(args)
    since = _since(args.since)
    store = open_store(settings)
    runner = Runner(settings, store, since=since)
    try:
        if args.once:
            stats = asyncio.run(runner.run_once())
            if args.json:
                print_json(stats.to_json())
            else:
                report(stats)
            return 1 if stats.errors else 0
        asyncio.run(_daemon(runner))
        return 0
    finally:
        runner.transcriber.close()
        store.close()
