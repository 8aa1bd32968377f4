"""What the fuzzers found, each rebuilt from its minimised input (made here, not committed) and run as a test.

Each case goes through the same front door the fuzzer used, so it fails the way the fuzzer saw it before the fix.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import mailcorpus as mc

from mailvoice.mail.mime import parse_message


@pytest.fixture(scope="module")
def mime_door() -> object:
    return harness.guarded(harness.mime_target(), limit=None)


def _mail(*parts: bytes) -> bytes:
    return mc.message(
        [("From", "PBX <pbx@example.com>"), ("Subject", "Voicemail"), ("Message-ID", "<fz@example.com>")],
        list(parts),
    )


def test_content_type_broken_by_a_bare_cr_becomes_a_clean_type(mime_door: object) -> None:
    """A lone CR inside Content-Type reached the transcript mail's attachment header: ValueError in compose."""
    raw = _mail(mc.audio_part(mc.tiny_wav(0.05), 'application/octet-stream\r "', "voicemail.wav"))
    (part,) = parse_message(raw).parts
    assert part.content_type == "application/octet-stream"
    mime_door(raw)  # type: ignore[operator]


RIFF_BOMB = r"""
import resource, sys
sys.path.insert(0, sys.argv[1])
from mailcorpus import tiny_wav
from mailvoice.audio import load_for_asr
info = b"INFO" + b"ISFT" + (0x7E000000).to_bytes(4, "little") + b"mailvoice"
wav = tiny_wav(0.5) + b"LIST" + (0x7E00001A).to_bytes(4, "little") + info  # 4 KB claiming 2 GB of metadata
print(load_for_asr(wav, name="bomb.wav").duration)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_wav_whose_list_chunk_claims_gigabytes_decodes_without_allocating_them() -> None:
    """FFmpeg allocated and zeroed what a trailing LIST/INFO chunk declared: 2 GB and seconds of CPU for 4 KB."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", RIFF_BOMB, str(Path(__file__).resolve().parent.parent)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    duration, peak_mb = proc.stdout.split()
    assert float(duration) == pytest.approx(0.5, abs=0.01)  # the recording before the chunk is kept
    assert int(peak_mb) < 400, f"peak resident memory {peak_mb} MB"
