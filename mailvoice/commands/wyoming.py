"""`mailvoice wyoming`: serve our ASR and TTS to Home Assistant's Assist over the Wyoming protocol."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util

from mailvoice.commands import console, err_console, settings_from

MISSING = "mailvoice wyoming needs the wyoming package: pip install 'mailvoice[wyoming]'"


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("wyoming") is None:
        console.error(MISSING)
        return 2
    settings = settings_from(args)
    uri = args.uri or settings.wyoming.uri

    from mailvoice.wyoming.service import Address, Service, serve

    Address.parse(uri)  # a bad address fails before the models load
    loading = err_console().status("loading models") if err_console().is_terminal else contextlib.nullcontext()
    with loading:
        service = Service.load(settings)

    def ready(bound: str) -> None:
        err_console().print(
            f"Wyoming server on {bound} (ASR {settings.asr.model}, voice {settings.tts.voice}); "
            "add it in Home Assistant: Settings > Devices & services > Wyoming Protocol"
        )

    try:
        asyncio.run(serve(service, uri, ready=ready))
    except KeyboardInterrupt:
        return 0
    return 0
