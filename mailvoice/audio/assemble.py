"""Join synthesized sentences into one clip with pauses and gain, using pydub as the editing layer.

pydub only ever sees raw PCM here: its from_file/export shell out to ffmpeg and guess formats, which is the
decode path we refuse; encoding goes through mailvoice.audio.encode instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mailvoice.types import AudioClip, SpeechChunk

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

DEFAULT_RATE = 22050
"""Rate of an empty result when no chunk says otherwise (Piper voices speak at 22050 Hz)."""


def _pydub() -> ModuleType:
    """Import pydub without its import-time warnings: audioop's deprecation and the missing ffmpeg we never use."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # audioop; escapes in pydub's regexes
        warnings.filterwarnings("ignore", category=SyntaxWarning)  # the same escapes on Python 3.12+
        warnings.filterwarnings("ignore", category=RuntimeWarning, message=".*ffmpeg or avconv.*")
        import pydub

    module: ModuleType = pydub
    return module


def _segment(pydub: ModuleType, clip: AudioClip, rate: int) -> Any:
    """A pydub segment of 16-bit mono PCM at rate from a float clip."""
    import numpy as np

    pcm = np.round(np.clip(clip.samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    seg = pydub.AudioSegment(data=pcm, sample_width=2, frame_rate=clip.sample_rate, channels=1)
    return seg if clip.sample_rate == rate else seg.set_frame_rate(rate)


def _samples(seg: Any) -> npt.NDArray[np.float32]:
    import numpy as np

    return (np.frombuffer(seg.raw_data, dtype="<i2").astype(np.float32) / 32768.0).astype(np.float32)


def assemble(chunks: Iterable[SpeechChunk], *, gain_db: float = 0.0, sample_rate: int | None = None) -> AudioClip:
    """One clip from sentences and their pauses, at sample_rate (default: the first chunk's), gain applied."""
    pydub = _pydub()
    parts: list[bytes] = []
    name = ""
    rate = sample_rate
    for chunk in chunks:
        if rate is None:
            rate = chunk.audio.sample_rate
        name = name or chunk.audio.name
        parts.append(_segment(pydub, chunk.audio, rate).raw_data)
        if chunk.pause_after > 0:
            parts.append(pydub.AudioSegment.silent(duration=chunk.pause_after * 1000.0, frame_rate=rate).raw_data)
    rate = rate or DEFAULT_RATE
    # one join instead of segment + segment, which copies everything so far on every sentence
    combined = pydub.AudioSegment(data=b"".join(parts), sample_width=2, frame_rate=rate, channels=1)
    if gain_db:
        combined = combined.apply_gain(gain_db)  # saturates at full scale rather than wrapping
    return AudioClip(samples=_samples(combined), sample_rate=rate, name=name)
