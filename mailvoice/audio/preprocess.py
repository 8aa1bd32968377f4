"""Clean decoded speech for recognition: high-pass (DC, rumble, handling noise) and loudness normalisation.

Phone recordings arrive with DC offsets, mains hum and levels from -50 to 0 dBFS; Whisper copes better with a
steady level. scipy is not a dependency, so the Butterworth high-pass is solved here in numpy: the biquad is split
into a complex-conjugate pair of one-pole sections, and each one-pole recursion is evaluated in blocks with
cumulative sums (no Python loop per sample), which keeps 15 minutes of audio well under a second.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mailvoice.config import AudioSettings
from mailvoice.errors import ConfigError
from mailvoice.types import AudioClip

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    ComplexArray = npt.NDArray[np.complex128]
    FloatArray = npt.NDArray[np.float32]

MAX_GAIN_DB = 30.0
"""Most a quiet recording is boosted: a noise floor must not become loud noise."""
PEAK_DBFS = -1.0
"""Ceiling for the loudest sample after normalisation: the gain never makes the audio clip."""
SILENCE_DBFS = -70.0
"""Frames quieter than this are never speech; a clip that is all below it is left as it is."""
ACTIVE_RANGE_DB = 25.0
"""Frames within this range of the loud end (95th percentile) count as speech for the level."""
_FRAME_SECONDS = 0.03
_CHUNK = 1 << 18  # samples per pass of the recursion; bounds the temporaries for long clips
_MAX_GROWTH = 1e6  # largest |p|**-k inside one block; keeps the block sums precise in float64


def _zero_state(x: ComplexArray, p: complex) -> ComplexArray:
    """y[n] = x[n] + p*y[n-1] from rest, evaluated in blocks with cumulative sums."""
    import numpy as np

    mag = abs(p)
    if mag < 1e-9:  # what the pole carries over is below float32 resolution
        return x.copy()
    block = int(max(2.0, min(4096.0, math.log(_MAX_GROWTH) / -math.log(mag))))
    n = len(x)
    k = np.arange(min(n, block))
    if n <= block:
        return np.cumsum(x * p**-k) * p**k  # type: ignore[no-any-return]
    nb = -(-n // block)
    padded = np.zeros(nb * block, dtype=np.complex128)
    padded[:n] = x
    z = np.cumsum(padded.reshape(nb, block) * p**-k, axis=1) * p**k
    ends = _zero_state(z[:, -1].copy(), p**block)  # the recursion across blocks is one-pole too
    carry = np.concatenate(([0j], ends[:-1]))
    z += carry[:, None] * p ** (k + 1)
    result: ComplexArray = z.reshape(-1)[:n]
    return result


def _one_pole_chunks(
    x: FloatArray, offset: float, p: complex
) -> Iterator[tuple[int, npt.NDArray[np.float64], ComplexArray]]:
    """(start, x - offset, y) per chunk of y[n] = (x[n] - offset) + p*y[n-1], carrying the state across chunks.

    Chunked so that the float64 and complex128 temporaries stay a few MB however long the clip: on a whole
    15-minute clip they cost over half a gigabyte.
    """
    import numpy as np

    state = 0j
    for start in range(0, len(x), _CHUNK):
        xs = x[start : start + _CHUNK].astype(np.float64) - offset
        seg = _zero_state(xs.astype(np.complex128), p)
        if state:  # the state decays as p**n; past 1e-12 of it nothing is left to add
            reach = min(len(seg), int(math.log(1e-12) / math.log(max(abs(p), 1e-300))) + 1)
            seg[:reach] += state * p ** np.arange(1, reach + 1)
        state = complex(seg[-1])
        yield start, xs, seg


def highpass(samples: FloatArray, sample_rate: int, cutoff_hz: float) -> FloatArray:
    """A 2nd-order Butterworth high-pass (bilinear transform), as scipy.signal.lfilter would apply it."""
    import numpy as np

    if cutoff_hz <= 0 or len(samples) == 0:
        return samples
    if cutoff_hz >= 0.45 * sample_rate:
        raise ConfigError(
            f"setting audio.highpass_hz = {cutoff_hz:g} is invalid: expected 0 (off) or a cut-off below "
            f"{0.45 * sample_rate:g} Hz for {sample_rate} Hz audio"
        )
    kk = math.tan(math.pi * cutoff_hz / sample_rate)
    norm = 1.0 / (1.0 + math.sqrt(2.0) * kk + kk * kk)
    b0, b1 = norm, -2.0 * norm
    a1, a2 = 2.0 * (kk * kk - 1.0) * norm, (1.0 - math.sqrt(2.0) * kk + kk * kk) * norm
    # H = c + r/(1 - p z^-1) + conj(r)/(1 - conj(p) z^-1): the partial fractions of the biquad
    p = (-a1 + cmath.sqrt(a1 * a1 - 4.0 * a2)) / 2.0
    q = p.conjugate()
    c = norm / a2  # b2 / a2
    d0, d1 = b0 - c, b1 - c * a1
    r = (d0 + d1 / p) / (1.0 - q / p)
    # Start as if the opening level had always been there (scipy's lfilter_zi): a DC offset then gives no
    # start-up click, which would otherwise set the peak that caps the normalisation gain.
    opening = float(np.mean(samples[: max(1, sample_rate // 100)]))
    out = np.empty(len(samples), dtype=np.float32)
    for start, xs, seg in _one_pole_chunks(samples, opening, p):
        out[start : start + len(xs)] = c * xs + 2.0 * (r * seg).real
    return out


def normalize(samples: FloatArray, sample_rate: int, target_dbfs: float) -> FloatArray:
    """Scale so the speech frames sit at target_dbfs RMS, capped at +30 dB and so the peak stays below -1 dBFS."""
    import numpy as np

    frame = max(1, int(_FRAME_SECONDS * sample_rate))
    count = len(samples) // frame
    if count == 0:
        return samples
    frames = samples[: count * frame].reshape(count, frame)
    energy = np.empty(count, dtype=np.float64)
    rows = max(1, _CHUNK // frame)  # float64 squares of a chunk at a time, not of the whole clip
    for i in range(0, count, rows):
        block = frames[i : i + rows].astype(np.float64)
        energy[i : i + rows] = np.mean(block * block, axis=1)
    levels = 10.0 * np.log10(energy + 1e-20)
    floor = max(SILENCE_DBFS, float(np.percentile(levels, 95)) - ACTIVE_RANGE_DB)
    active = levels >= floor
    peak = float(np.max(np.abs(samples)))
    if not np.any(active) or peak <= 0.0:
        return samples
    speech_dbfs = 10.0 * math.log10(float(np.mean(energy[active])))
    gain_db = min(target_dbfs - speech_dbfs, MAX_GAIN_DB, PEAK_DBFS - 20.0 * math.log10(peak))
    return (samples * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)


def preprocess(clip: AudioClip, settings: AudioSettings | None = None) -> AudioClip:
    """High-pass and normalise a decoded clip as the settings say, for the recogniser."""
    settings = settings or AudioSettings()
    samples = highpass(clip.samples, clip.sample_rate, settings.highpass_hz)
    if settings.normalize:
        samples = normalize(samples, clip.sample_rate, settings.target_dbfs)
    return AudioClip(samples=samples, sample_rate=clip.sample_rate, name=clip.name)


def load_for_asr(
    data: bytes, *, name: str = "", settings: AudioSettings | None = None, budget: float | None = None
) -> AudioClip:
    """Decode untrusted bytes under the limits (and the mail's budget, in seconds), then preprocess for recognition."""
    from mailvoice.audio.decode import decode_audio

    settings = settings or AudioSettings()
    return preprocess(decode_audio(data, name=name, settings=settings, budget=budget), settings)
