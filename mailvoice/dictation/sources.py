"""Where dictation audio comes from: a file played at real-time pace (demos, tests, bench) or the microphone."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailvoice.engines.base import ASR_SAMPLE_RATE
from mailvoice.errors import AudioError, MissingExtraError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from mailvoice.config import AudioSettings

log = logging.getLogger(__name__)
CHUNK_S = 0.1


class PacedSource:
    """Samples handed out in chunks no faster than they would come from a microphone (unless ``realtime`` is off).

    ``t0`` is the monotonic time the first sample "was captured": stream time s happened at ``t0 + s``.
    """

    def __init__(self, samples: npt.NDArray[np.float32], *, realtime: bool = True, chunk_s: float = CHUNK_S) -> None:
        self.samples = samples
        self.realtime = realtime
        self.chunk = max(1, round(chunk_s * ASR_SAMPLE_RATE))
        self.t0 = 0.0

    @property
    def duration(self) -> float:
        return len(self.samples) / ASR_SAMPLE_RATE

    async def frames(self) -> AsyncIterator[npt.NDArray[np.float32]]:
        self.t0 = time.monotonic()
        for start in range(0, len(self.samples), self.chunk):
            end = min(start + self.chunk, len(self.samples))
            if self.realtime:
                delay = self.t0 + end / ASR_SAMPLE_RATE - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            yield self.samples[start:end]


def load_file(path: Path, settings: AudioSettings) -> npt.NDArray[np.float32]:
    """Decode an audio file (same limits and allowlist as mail attachments) to 16 kHz mono float32."""
    from mailvoice.audio import load_for_asr

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AudioError(f"{path}: cannot read the audio file ({exc.strerror}); check the --input path") from exc
    return load_for_asr(data, name=path.name, settings=settings).samples


async def microphone(chunk_s: float = CHUNK_S, device: Any = None) -> AsyncIterator[npt.NDArray[np.float32]]:
    """16 kHz mono float32 chunks from the default input device, until the consumer stops."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        raise MissingExtraError(
            f"the microphone needs sounddevice ({exc}): `pip install sounddevice` and the PortAudio library "
            "(Debian: apt-get install libportaudio2), or dictate from a file with --input FILE"
        ) from exc
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[npt.NDArray[np.float32]] = asyncio.Queue(maxsize=200)

    def callback(indata: Any, frames: int, when: Any, status: Any) -> None:
        if status:
            log.warning("microphone: %s", status)
        chunk = indata[:, 0].copy()
        loop.call_soon_threadsafe(_offer, queue, chunk)

    try:
        stream = sd.InputStream(
            samplerate=ASR_SAMPLE_RATE,
            channels=1,
            dtype="float32",
            device=device,
            blocksize=round(chunk_s * ASR_SAMPLE_RATE),
            callback=callback,
        )
    except Exception as exc:  # PortAudioError has no stable import path
        raise AudioError(f"cannot open the microphone ({exc}); check the input device, or use --input FILE") from exc
    with stream:
        while True:
            yield await queue.get()


def _offer(queue: asyncio.Queue[Any], chunk: Any) -> None:
    if queue.full():
        queue.get_nowait()  # drop the oldest rather than grow without bound
    queue.put_nowait(chunk)
