"""Which audio container a byte string holds, judged by its magic bytes alone (never by name or demuxer probe).

A file name or a MIME type is a claim made by the sender; the first bytes are what a demuxer will parse.
Only containers on the allowlist below are ever opened, each with the demuxer named here and only with the
codecs listed for it: a playlist, a concat script or an SDP file has no entry, so it can never reach FFmpeg.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True, slots=True)
class Container:
    """One allowed container: how to open it and what it may carry."""

    name: str
    """Our name for it (what sniff_format returns)."""
    demuxer: str
    """The FFmpeg demuxer opened explicitly for it."""
    codecs: frozenset[str]
    """Canonical FFmpeg codec names accepted inside it."""
    header_duration: bool
    """Whether the demuxer reads the duration from a header (trusted for an up-front refusal)."""


_PCM = frozenset({"pcm_u8", "pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le"})

CONTAINERS: dict[str, Container] = {
    c.name: c
    for c in (
        Container(
            "wav", "wav", _PCM | {"pcm_mulaw", "pcm_alaw", "gsm_ms", "adpcm_ima_wav", "adpcm_ms", "g722", "mp3"}, True
        ),
        Container("mp3", "mp3", frozenset({"mp3"}), False),
        Container("ogg", "ogg", frozenset({"opus", "vorbis", "flac"}), True),
        Container("mp4", "mov", frozenset({"aac", "amr_nb", "amr_wb", "mp3", "alac", "opus", "flac"}), True),
        Container("adts", "aac", frozenset({"aac"}), False),
        Container("amr", "amr", frozenset({"amr_nb", "amr_wb"}), False),
        Container("flac", "flac", frozenset({"flac"}), True),
        Container("webm", "matroska", frozenset({"opus", "vorbis"}), True),
        Container("matroska", "matroska", frozenset({"opus", "vorbis", "flac", "aac", "mp3"}), True),
    )
}
"""The allowlist, keyed by the name sniff_format returns."""

AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".wave",
        ".mp3",
        ".ogg",
        ".oga",
        ".opus",
        ".spx",
        ".m4a",
        ".mp4",
        ".aac",
        ".amr",
        ".awb",
        ".3gp",
        ".3ga",
        ".flac",
        ".webm",
        ".weba",
        ".mka",
        ".gsm",
    }
)
"""File name endings that mark an attachment as (claimed) audio, whatever its MIME type."""

_AUDIO_ONLY = frozenset({"wav", "mp3", "ogg", "adts", "amr", "flac"})
_QUICKTIME_ATOMS = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


def _mpeg_audio_layer3(head: bytes) -> bool:
    """An MPEG-1/2/2.5 Layer III frame header with legal bitrate and sample-rate fields."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0x3
    layer = (head[1] >> 1) & 0x3
    bitrate = head[2] >> 4
    rate = (head[2] >> 2) & 0x3
    return version != 1 and layer == 1 and bitrate not in (0, 15) and rate != 3


def _adts(head: bytes) -> bool:
    """An ADTS (raw AAC) frame header: 12-bit sync, layer 0, a valid sampling-frequency index."""
    return len(head) >= 7 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0 and (head[2] >> 2) & 0xF < 13


def _after_id3(data: bytes) -> str | None:
    """What follows an ID3v2 tag (MP3 mostly; FLAC and ADTS files carry one too)."""
    if len(data) < 10:
        return None
    size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F)
    offset = 10 + size + (10 if data[5] & 0x10 else 0)
    end = min(len(data), offset + 4096)
    if offset >= len(data):  # cut off inside the tag: an MP3 whose decoder will report the damage
        return "mp3"
    while offset < end and data[offset] == 0:  # encoders pad between the tag and the first frame
        offset += 1
    rest = data[offset : offset + 8]
    if rest.startswith(b"fLaC"):
        return "flac"
    if _adts(rest):
        return "adts"
    if _mpeg_audio_layer3(rest):
        return "mp3"
    return None


def sniff_format(data: bytes) -> str | None:
    """The allowlisted container these bytes start with, or None (not audio we accept)."""
    head = bytes(data[:64])
    if len(head) < 4:
        return None
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith((b"#!AMR\n", b"#!AMR-WB\n")):
        return "amr"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head else "matroska"
    if len(head) >= 12 and head[4:8] in _QUICKTIME_ATOMS and int.from_bytes(head[:4], "big") >= 8:
        return "mp4"
    if head.startswith(b"ID3"):
        return _after_id3(bytes(data[: 1 << 20]))
    if _adts(head):
        return "adts"
    if _mpeg_audio_layer3(head):
        return "mp3"
    return None


def is_probably_audio(data: bytes, filename: str = "", content_type: str = "") -> bool:
    """Whether a mail part should go to the decoder: audio by MIME type, by file name ending or by content."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime.startswith("audio/") or mime == "application/ogg":
        return True
    if PurePosixPath(filename.replace("\\", "/").strip()).suffix.lower() in AUDIO_EXTENSIONS:
        return True
    return sniff_format(data) in _AUDIO_ONLY
