"""Audio in and out: sniff and decode untrusted bytes under limits, preprocess for ASR, assemble and encode speech.

Importing this package stays light: PyAV, numpy and pydub load inside the functions that use them.
"""

from __future__ import annotations

from mailvoice.audio.assemble import assemble
from mailvoice.audio.decode import decode_audio
from mailvoice.audio.encode import FORMATS, AudioFormat, content_type_for, encode_audio, extension_for
from mailvoice.audio.preprocess import highpass, load_for_asr, normalize, preprocess
from mailvoice.audio.sniff import AUDIO_EXTENSIONS, CONTAINERS, is_probably_audio, sniff_format

__all__ = [
    "AUDIO_EXTENSIONS",
    "CONTAINERS",
    "FORMATS",
    "AudioFormat",
    "assemble",
    "content_type_for",
    "decode_audio",
    "encode_audio",
    "extension_for",
    "highpass",
    "is_probably_audio",
    "load_for_asr",
    "normalize",
    "preprocess",
    "sniff_format",
]
