"""A dictation session: audio chunks in, recognizer events and draft changes out; inference stays off the loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailvoice.dictation.commands import CommandName
from mailvoice.dictation.draft import Draft
from mailvoice.dictation.events import Event, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from mailvoice.dictation.recognizer import StreamingRecognizer
    from mailvoice.engines.executor import ModelWorker


@dataclass(frozen=True, slots=True)
class DraftChanged:
    """A final was applied to the draft; ``actions`` are the commands that leave the dictation."""

    text: str
    actions: tuple[CommandName, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"type": "draft", "text": self.text, "actions": list(self.actions)}


SessionEvent = Event | DraftChanged


class DictationSession:
    """Feeds a recognizer from an audio source and keeps the draft; one per microphone or browser socket."""

    def __init__(
        self, recognizer: StreamingRecognizer, worker: ModelWorker, draft: Draft | None = None, *, catch_up: bool = True
    ) -> None:
        self.recognizer = recognizer
        self.catch_up = catch_up
        """Feed everything that queued up during a decode at once (live audio); False feeds chunk by chunk."""
        self.worker = worker
        self.draft = draft or Draft()

    async def run(self, frames: AsyncIterator[npt.NDArray[np.float32]]) -> AsyncIterator[SessionEvent]:
        """Events as they happen. Audio keeps arriving while a decode runs; the next feed takes all of it."""
        import numpy as np

        queue: asyncio.Queue[npt.NDArray[np.float32] | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async for chunk in frames:
                    queue.put_nowait(chunk)
            finally:
                queue.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            ended = False
            while not ended:
                chunks = [await queue.get()]
                while not queue.empty():
                    chunks.append(queue.get_nowait())
                if chunks[-1] is None:
                    ended = True
                audio = [c for c in chunks if c is not None]
                batches = ([np.concatenate(audio)] if len(audio) > 1 else audio) if self.catch_up else audio
                for batch in batches:
                    for event in await self.worker.run(self.recognizer.feed, batch):
                        for out in self._handle(event):
                            yield out
            for event in await self.worker.run(self.recognizer.flush):
                for out in self._handle(event):
                    yield out
            await reader  # re-raise a source error
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    def _handle(self, event: Event) -> list[SessionEvent]:
        out: list[SessionEvent] = [event]
        if isinstance(event, Final) and event.text:
            actions = self.draft.apply(event.text)
            out.append(DraftChanged(self.draft.text, actions))
        return out
