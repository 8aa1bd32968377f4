"""`mailvoice summary [--account A] [--since 24h] [-o OUT] [--send]`: a spoken summary of the inbox, now.

It goes only to the owner: into OUT, the summary folder, the store (and the podcast feed), and with --send to
delivery.owners (else the account's own address). There is deliberately no --to.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from mailvoice.commands import console, open_store, print_json, settings_from
from mailvoice.commands.console import spinner
from mailvoice.errors import ConfigError

_FORMATS = {".ogg": "ogg", ".opus": "ogg", ".mp3": "mp3", ".wav": "wav"}


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    from mailvoice.spoken.summary import parse_age
    from mailvoice.voicesend import account_context

    parse_age(args.since)  # a bad --since fails before any model loads
    account = account_context(settings, args.account).account
    out = Path(args.output) if args.output else None
    fmt: str = settings.summary.format
    if out is not None:
        if out.suffix.lower() not in _FORMATS:
            raise ConfigError(f"output {out}: unknown extension {out.suffix!r}; use .ogg, .mp3 or .wav")
        fmt = _FORMATS[out.suffix.lower()]

    from mailvoice.commands.speak import write_atomic
    from mailvoice.engines import load_tts
    from mailvoice.outbox import Outbox
    from mailvoice.spoken.schedule import write_summary_file
    from mailvoice.spoken.summary import speak_summary, summary_records

    store = open_store(settings)
    doc: dict[str, object] = {"output": str(out) if out else None, "mailed_to": [], "sent": None}
    try:
        with spinner() as progress:
            task = progress.add_task("loading voice")
            tts = load_tts(settings.tts, settings.general)
            progress.update(task, description="speaking the summary")
            spoken = speak_summary(settings, store, tts, account=account, since=args.since, fmt=fmt)
        message, mail = summary_records(settings, spoken, send=bool(args.send))
        store.record(messages=(message,), outgoing=(mail,) if mail is not None else ())
        doc.update(id=message.id, duration=round(spoken.duration, 2), messages=spoken.script.count, format=fmt)
        if out is not None:
            write_atomic(out, spoken.audio)
            console.info(f"wrote {out} ({spoken.duration:.1f} s, {spoken.script.count} message(s))")
        if settings.summary.folder is not None:
            path = write_summary_file(settings.summary.folder, spoken, account)
            doc["file"] = str(path)
            console.info(f"wrote {path}")
        if mail is not None:
            stats = asyncio.run(Outbox(settings, store).flush())
            row = store.get_outgoing(mail.id)
            doc.update(mailed_to=list(mail.envelope.recipients), sent=row.state == "sent", error=row.last_error or None)
            if args.json:
                print_json(doc)
            if row.state != "sent":
                console.warn(
                    f"summary queued, not sent yet ({row.last_error or row.state}); `mailvoice run` retries it"
                )
                return 1
            console.info(f"summary mailed to {', '.join(mail.envelope.recipients)} ({stats.sent} sent)")
        if out is None and mail is None and settings.summary.folder is None:
            console.info(
                f"summary stored as message {message.id[:12]} ({spoken.duration:.1f} s); "
                "use -o OUT or --send to hear it"
            )
    finally:
        store.close()
    if args.json and doc["sent"] is None:
        print_json(doc)
    return 0
