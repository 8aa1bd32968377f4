"""Draw the podcast cover (mailvoice/data/cover.png, 1400 x 1400 as Apple Podcasts asks): an envelope and a sound wave.

Run once when the design changes: `python scripts/make_cover.py`; the PNG is committed (a few KB).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

SIZE = 1400
BACKGROUND = (15, 76, 92)
PAPER = (245, 245, 240)
WAVE = (251, 139, 36)


def draw() -> np.ndarray:
    img = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    top, bottom, left, right = 330, 830, 250, 1150
    img[top:bottom, left:right] = PAPER
    # the flap: a V from the top corners to the middle, 14 px thick
    for x in range(left, right):
        y = top + int((min(x - left, right - x)) * (bottom - top - 120) / ((right - left) / 2))
        img[max(top, y - 7) : y + 7, x] = BACKGROUND
    # the sound wave below the envelope
    heights = (60, 120, 200, 140, 260, 180, 100, 220, 150, 80, 40)
    for i, h in enumerate(heights):
        x = 330 + i * 70
        img[1080 - h // 2 : 1080 + h // 2, x : x + 36] = WAVE
    return img


def png(img: np.ndarray) -> bytes:
    height, width, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "mailvoice" / "data" / "cover.png"
    out.write_bytes(png(draw()))
    print(out, out.stat().st_size, "bytes")
