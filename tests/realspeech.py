"""Real human recordings for speech tests (tests/data/real, see its README): loading, and pauses made at test time.

- ``manifest()``: the recordings with their reference transcripts and languages.
- ``real_clip(name)``: a recording decoded and preprocessed as the product path does (16 kHz mono AudioClip).
- ``paused(clip, pause_s)``: the same speech with a pause of ``pause_s`` between word groups, cut at the
  recognizer's own word boundaries, as a speaker who stops to think mid-sentence.
- ``telephone(path, kind)``: the recording made telephone-band by the same converter `bench quality` uses.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from speech import ASR_RATE, whisper_engine

from mailvoice.audio import load_for_asr
from mailvoice.types import AudioClip

REAL = Path(__file__).parent / "data" / "real"


@cache
def manifest() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads((REAL / "manifest.json").read_text("utf-8")))


def english() -> list[dict[str, Any]]:
    return [m for m in manifest() if m["lang"] == "en"]


def real_clip(name: str) -> AudioClip:
    return load_for_asr((REAL / name).read_bytes(), name=name)


def paused(clip: AudioClip, pause_s: float = 0.75, every: int = 3) -> AudioClip:
    """Pauses of ``pause_s`` inserted between words (every ``every`` words, never before the first or after the last),
    each at the middle of the gap between two words as the recognizer timed them."""
    words = whisper_engine().transcribe(clip).words
    cuts = []
    for i in range(every, len(words) - 1, every):
        cuts.append(round((words[i - 1].end + words[i].start) / 2 * ASR_RATE))
    pieces, last = [], 0
    gap = np.zeros(round(pause_s * ASR_RATE), dtype=np.float32)
    for cut in cuts:
        pieces += [clip.samples[last:cut], gap]
        last = cut
    pieces.append(clip.samples[last:])
    return AudioClip(np.concatenate(pieces).astype(np.float32), ASR_RATE, clip.name)
