"""Peak resident memory of one long voicemail part through decode + preprocess (optionally + ASR), in a fresh process.

Usage: python scripts/peak_rss_part.py [--minutes 15] [--format wav|flac] [--asr]
Prints the baseline RSS after imports, the peak RSS after the part, and their difference, in MB.
"""

from __future__ import annotations

import argparse
import io
import resource
import sys


def _encode(minutes: float, fmt: str) -> bytes:
    """A phone-band recording: 8 kHz mono 16-bit, noise shaped like speech bursts (not silence: nothing to skip)."""
    import av
    import numpy as np

    rate = 8000
    n = int(minutes * 60 * rate)
    rng = np.random.default_rng(7)
    envelope = (np.sin(np.arange(n) * (2 * np.pi / (rate * 1.3))) > -0.2).astype(np.float32)
    pcm = (rng.standard_normal(n).astype(np.float32) * 0.1 * envelope * 32767).astype("<i2")
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream("pcm_s16le" if fmt == "wav" else "flac", rate=rate, layout="mono")
        for start in range(0, n, rate):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + rate], format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--format", choices=("wav", "flac"), default="wav")
    ap.add_argument("--asr", action="store_true", help="also transcribe with the default model (slow)")
    args = ap.parse_args()

    from mailvoice.audio import load_for_asr
    from mailvoice.config import AudioSettings

    data = _encode(args.minutes, args.format)
    settings = AudioSettings(max_duration=args.minutes * 60 + 5, decode_timeout=600)
    warm = load_for_asr(_encode(0.05, args.format), name="warm-up", settings=settings)  # PyAV/numpy paths first
    engine = None
    if args.asr:
        from mailvoice.config import Settings
        from mailvoice.engines import load_asr

        s = Settings()
        engine = load_asr(s.asr, s.general)
        engine.transcribe(warm)
        print(f"model loaded and warmed up: {_rss_mb():.0f} MB")
    base = _rss_mb()
    clip = load_for_asr(data, name="part 1", settings=settings)
    after_decode = _rss_mb()
    print(f"{args.minutes:g} min {args.format}, {len(data)} bytes, {clip.duration:.0f} s decoded")
    print(f"baseline {base:.0f} MB (imports, model if --asr, input); decode+preprocess peak {after_decode:.0f} MB")
    print(f"decode+preprocess added {after_decode - base:.0f} MB")
    if engine is not None:
        engine.transcribe(clip)
        print(f"peak after transcription {_rss_mb():.0f} MB (the part added {_rss_mb() - base:.0f} MB in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
