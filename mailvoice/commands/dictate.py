"""`mailvoice dictate`: live dictation in the terminal, then send through the outbox or save a draft."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from mailvoice.commands import err_console, open_store, settings_from

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from rich.console import RenderableType

    from mailvoice.config import Settings
    from mailvoice.dictation.session import SessionEvent


class _View:
    """The live terminal view: the draft so far, then the utterance in progress (confirmed, then tentative)."""

    def __init__(self) -> None:
        self.draft = ""
        self.stable = ""
        self.unstable = ""
        self.note = ""

    def render(self) -> RenderableType:
        from rich.panel import Panel
        from rich.text import Text

        body = Text(self.draft)
        if self.stable or self.unstable:
            body.append(("\n" if self.draft.endswith("\n") or not self.draft else " ") if self.draft else "")
            body.append(self.stable, style="bold")
            body.append((" " if self.stable else "") + self.unstable, style="dim italic")
        title = "dictation  (say 'send it', 'save draft' or 'cancel'; Ctrl-C to stop)"
        return Panel(body, title=title, subtitle=self.note or None)


async def _dictate(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    """Run the session; return (text, action) where action is send, save_draft, cancel or ''."""
    from mailvoice.dictation.events import Final, Partial, Status
    from mailvoice.dictation.runtime import Pipeline
    from mailvoice.dictation.session import DictationSession, DraftChanged
    from mailvoice.dictation.sources import PacedSource, load_file, microphone

    frames: AsyncIterator[npt.NDArray[np.float32]]
    if args.input == "mic":
        frames = microphone()
    else:
        samples = await asyncio.to_thread(load_file, Path(args.input), settings.audio)
        frames = PacedSource(samples, realtime=not args.fast).frames()
    pipeline = await asyncio.to_thread(Pipeline, settings)
    session = DictationSession(pipeline.recognizer(), pipeline.worker, catch_up=not args.fast)
    view = _View()
    action = ""

    def emit(event: SessionEvent) -> None:
        print(json.dumps(event.to_json()), flush=True)

    live = None
    if not args.json:
        from rich.live import Live

        live = Live(view.render(), console=err_console(), refresh_per_second=10, transient=False)
        live.start()
    try:
        async for event in session.run(frames):
            if args.json:
                emit(event)
            if isinstance(event, Partial):
                view.stable, view.unstable = event.stable, event.unstable
            elif isinstance(event, Final):
                view.stable = view.unstable = ""
            elif isinstance(event, DraftChanged):
                view.draft = event.text
                if event.actions:
                    action = event.actions[-1]
            elif isinstance(event, Status):
                view.note = f"slowed down to keep up (compute/audio {event.ratio:.2f})" if event.degraded else ""
            if live is not None:
                live.update(view.render())
            if action:
                break
    except (KeyboardInterrupt, asyncio.CancelledError):
        action = action or ""
    finally:
        if live is not None:
            live.stop()
        await asyncio.to_thread(pipeline.close)
    return session.draft.text, action


def _ask(text: str) -> str:
    """After Ctrl-C or the end of the file on a terminal: ask what to do with the text."""
    if not text.strip() or not sys.stdin.isatty():
        return ""
    from rich.markup import escape

    answer = err_console().input(escape("[s]end, save [d]raft, or [q]uit without sending? ")).strip().lower()
    return {"s": "send", "d": "save_draft"}.get(answer[:1], "")


def run(args: argparse.Namespace) -> int:
    from mailvoice.dictation.mailer import Dictated, save_draft, send

    settings = settings_from(args)
    try:
        text, action = asyncio.run(_dictate(args, settings))
    except KeyboardInterrupt:
        return 130
    if not action and not args.json:
        action = _ask(text)
    dictated = Dictated(text=text, to=tuple(args.to), subject=args.subject or "")
    if args.json:
        print(json.dumps({"type": "done", "text": text, "action": action or None}), flush=True)
    else:
        print(text)
    if action in ("", "cancel"):
        if action == "cancel":
            err_console().print("cancelled: nothing sent, nothing stored")
        return 0
    with open_store(settings) as store:
        if action == "send":
            stats = asyncio.run(send(settings, store, dictated, args.account))
            msg = "sent" if stats.sent else "queued (the outbox will retry)"
            result: dict[str, object] = {"type": "sent", "sent": stats.sent, "retrying": stats.retrying}
        else:
            folder = asyncio.run(save_draft(settings, store, dictated, args.account))
            msg = f"saved as a draft in {folder}"
            result = {"type": "draft_saved", "folder": folder}
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        from rich.markup import escape

        err_console().print(escape(msg))
    return 0
