"""Find the voicemail recordings in a parsed mail, and the hashes that identify a mail and its audio."""

from __future__ import annotations

import hashlib
import logging
import posixpath
import re
import unicodedata
from dataclasses import dataclass, field

from mailvoice.mail.headers import strip_controls
from mailvoice.mail.mime import MimePart, ParsedMail

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".mp3",
        ".ogg",
        ".oga",
        ".opus",
        ".flac",
        ".amr",
        ".awb",
        ".m4a",
        ".mp4",
        ".3gp",
        ".3ga",
        ".aac",
        ".webm",
        ".weba",
        ".wma",
        ".gsm",
        ".au",
        ".aif",
        ".aiff",
        ".caf",
    }
)
"""Filename extensions that claim a recording (some, like .wma, are then refused by the decoder)."""

# Types whose bytes may hold audio but whose name says nothing: accepted only when the content sniffs as audio.
_GENERIC_TYPES = frozenset(
    {
        "application/octet-stream",
        "application/binary",
        "application/x-binary",
        "application/unknown",
        "application/x-unknown",
        "binary/octet-stream",
    }
)
_VIDEO_CONTAINERS = frozenset({"video/webm", "video/mp4", "video/3gpp", "video/3gpp2", "video/ogg", "video/quicktime"})
_EXT_BY_FORMAT = {
    "wav": "wav",
    "mp3": "mp3",
    "aac": "aac",
    "ogg": "ogg",
    "flac": "flac",
    "amr": "amr",
    "m4a": "m4a",
    "mp4": "mp4",
    "3gp": "3gp",
    "webm": "webm",
}
_EXT_BY_TYPE = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/flac": "flac",
    "audio/amr": "amr",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "aac",
    "audio/webm": "webm",
    "video/webm": "webm",
    "audio/3gpp": "3gp",
}
_FILENAME_MAX = 100
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)
_UNSAFE_CHARS = re.compile(r'[<>:"|?*\\/\x00-\x1f\x7f]')


@dataclass(frozen=True, slots=True)
class AudioPart:
    """One recording found in a mail, with what the pipeline needs to decode, store or quarantine it."""

    filename: str
    """Sanitised base name, safe to show and to use inside a work directory."""
    content_type: str
    data: bytes = field(repr=False)
    sha256: str
    """Hex digest of data: the audio's identity across mailboxes and retries."""
    path: str
    """Position in the MIME tree ("2", "3.1")."""
    sniffed: str | None
    """Container found in the bytes (wav, mp3, ogg, flac, amr, m4a, 3gp, mp4, webm, aac), or None."""
    in_forward: bool = False

    @property
    def sniffed_ok(self) -> bool:
        """False when the part claims audio but its bytes are no known audio format: quarantine it."""
        return self.sniffed is not None


def sniff_audio(data: bytes) -> str | None:
    """Audio container named by the leading magic bytes, or None; playlists and text are never audio."""
    head = data[:16]
    if len(head) < 4:
        return None
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and data[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"ID3"):
        return "mp3"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"#!AMR"):
        return "amr"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand.startswith((b"M4A", b"M4B")):
            return "m4a"
        return "3gp" if brand.startswith(b"3g") else "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # ADTS: sync, layer 00
        return "aac"
    # MPEG audio frame: 11 sync bits, a layer, a bitrate index that is neither free nor bad.
    if head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 and (head[2] >> 4) not in (0, 15):
        return "mp3"
    return None


def safe_filename(name: str | None, index: int, ext: str = "wav") -> str:
    """A base name that cannot leave a directory or hide text; `voicemail-N.ext` when nothing usable is left."""
    text = unicodedata.normalize("NFC", strip_controls(name or ""))
    text = posixpath.basename(text.replace("\\", "/"))
    if re.fullmatch(r"\.+[A-Za-z0-9]{1,8}", text.strip()):  # only an extension, like ".wav"
        text = ""
    text = _UNSAFE_CHARS.sub("_", text)
    text = " ".join(text.split()).lstrip(".-_ ").rstrip(". ")
    if len(text) > _FILENAME_MAX:
        stem, suffix = posixpath.splitext(text)
        if not 1 < len(suffix) <= 9:
            stem, suffix = text, ""
        text = stem[: _FILENAME_MAX - len(suffix)].rstrip(". ") + suffix
    if not text or text.strip("._- ") == "" or _WINDOWS_RESERVED.match(text):
        return f"voicemail-{index}.{ext}"
    return text


def _extension(name: str | None) -> str:
    return posixpath.splitext((name or "").lower())[1]


def _claims_audio(part: MimePart, sniffed: str | None) -> bool:
    """Audio by MIME type or filename; generic binaries and video containers only when the bytes say so."""
    maintype = part.content_type.split("/", 1)[0]
    if maintype == "audio":
        return True
    if maintype in ("text", "multipart", "message", "image"):
        return False
    if part.content_type in _VIDEO_CONTAINERS:
        return sniffed is not None or _extension(part.filename) in AUDIO_EXTENSIONS
    if _extension(part.filename) in AUDIO_EXTENSIONS:
        return True
    return part.content_type in _GENERIC_TYPES and sniffed is not None


def find_audio_parts(parsed: ParsedMail) -> list[AudioPart]:
    """Every recording in the mail, forwarded ones included, in MIME order; mislabelled ones flagged."""
    found: list[AudioPart] = []
    for part in parsed.parts:
        sniffed = sniff_audio(part.data)
        if not _claims_audio(part, sniffed):
            continue
        index = len(found) + 1
        found.append(
            AudioPart(
                filename=safe_filename(
                    part.filename,
                    index,
                    _EXT_BY_FORMAT.get(sniffed or "") or _EXT_BY_TYPE.get(part.content_type, "bin"),
                ),
                content_type=part.content_type,
                data=part.data,
                sha256=hashlib.sha256(part.data).hexdigest(),
                path=part.path,
                sniffed=sniffed,
                in_forward=part.in_forward,
            )
        )
        if sniffed is None:
            log.info("part %s claims audio (%s) but its bytes are no known audio format", part.path, part.content_type)
    return found


def content_hash(parts: list[AudioPart]) -> str:
    """One digest for a mail's recordings, independent of their order (the ledger's identity)."""
    from mailvoice.store.records import content_hash as ledger_content_hash

    return ledger_content_hash([p.data for p in parts], b"")


def message_id_hash(parsed: ParsedMail, raw: bytes) -> str:
    """Digest of the normalized Message-ID (loggable, never the id itself), or of the raw mail when absent."""
    from mailvoice.store.records import message_id_hash as ledger_message_id_hash

    return ledger_message_id_hash(parsed.message_id_normalized, raw)
