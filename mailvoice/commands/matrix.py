"""`mailvoice matrix`: the Matrix bot, one client per `[[matrix]]` account, sharing one ASR model thread."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
from typing import TYPE_CHECKING, Any

from mailvoice.commands import console, err_console, open_store, settings_from
from mailvoice.errors import ConfigError

if TYPE_CHECKING:
    from mailvoice.config import MatrixSettings, Settings
    from mailvoice.store import Store

MISSING = "mailvoice matrix needs the matrix-nio package: pip install 'mailvoice[matrix]'"


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("nio") is None:
        console.error(MISSING)
        return 2
    settings = settings_from(args)
    accounts = [a for a in settings.matrix if args.account in (None, a.name)]
    if not accounts:
        known = ", ".join(a.name for a in settings.matrix) or "none configured"
        raise ConfigError(f"no [[matrix]] account {args.account or ''} in the config (known: {known})")
    store = open_store(settings)
    try:
        asyncio.run(_serve(settings, accounts, store))
    except KeyboardInterrupt:
        return 0
    finally:
        store.close()
    return 0


async def _serve(settings: Settings, accounts: list[MatrixSettings], store: Store) -> None:
    from mailvoice.chat.bot import MatrixBot
    from mailvoice.engines import load_asr
    from mailvoice.engines.executor import ModelWorker

    async with ModelWorker("matrix-asr") as worker:
        asr = await worker.run(load_asr, settings.asr, settings.general)
        bots = [MatrixBot(settings, account, store, asr, worker) for account in accounts]
        for bot in bots:
            await bot.login()
        ready = [asyncio.Event() for _ in bots]
        tasks = [asyncio.create_task(bot.run(ready=event)) for bot, event in zip(bots, ready, strict=True)]
        waiting: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(event.wait() for event in ready)))
        pending: list[asyncio.Future[Any]] = [waiting, *tasks]
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if waiting in done:
            names = ", ".join(a.user_id for a in accounts)
            err_console().print(f"Matrix bot ready: {names} (ASR {settings.asr.model})")
        await asyncio.gather(*tasks)
