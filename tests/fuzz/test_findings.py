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
