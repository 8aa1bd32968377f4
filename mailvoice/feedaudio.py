"""Episode audio for the podcast feed: MP3 or M4A (Apple Podcasts plays no Ogg/Opus), encoded once, cached sealed.

The summary keeps the audio it was mailed with (Ogg/Opus by default). On the first request for an episode that audio
is decoded and encoded to the feed's format; the result is sealed with the store's key, bound to the message id and
the format, and kept under <data_dir>/feed-cache: never plaintext on disk. A cache file that no longer opens (key
rotated away, tampered) is encoded again.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from mailvoice.crypto import record_aad
from mailvoice.errors import AudioError, UnsealError

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.crypto import Sealer
    from mailvoice.store import Message

log = logging.getLogger(__name__)

FEED_TYPES = {"mp3": "audio/mpeg", "m4a": "audio/x-m4a"}
"""The enclosure types Apple Podcasts lists for these files."""
_SAME = {"mp3": ("audio/mpeg", "audio/mp3"), "m4a": ("audio/mp4", "audio/x-m4a", "audio/m4a")}
_ENCODE = threading.Lock()  # one encode at a time: the cores belong to the models
_LONGEST = 4 * 3600.0


class EpisodeAudio:
    """The feed's audio for stored summaries, in one format."""

    def __init__(self, settings: Settings, fmt: str) -> None:
        self.settings = settings
        self.fmt = fmt
        self.folder = settings.general.data_dir / "feed-cache"

    def _path(self, message_id: str) -> Path:
        return self.folder / f"{message_id}.{self.fmt}.sealed"

    def _aad(self, message_id: str) -> bytes:
        return record_aad("feed-cache", message_id, self.fmt)

    def get(self, message: Message, sealer: Sealer) -> bytes | None:
        """The episode's bytes in the feed's format; None when the summary kept no audio or it cannot be decoded."""
        if message.audio is None:
            return None
        return self.episode(message.id, message.audio, message.content.audio_type, sealer)

    def episode(self, message_id: str, audio: bytes, audio_type: str, sealer: Sealer) -> bytes | None:
        """A summary's audio in the feed's format: as stored when it already is, else from the cache or encoded."""
        if audio_type in _SAME[self.fmt]:
            return audio
        path = self._path(message_id)
        try:
            return sealer.open(path.read_bytes(), self._aad(message_id))
        except FileNotFoundError:
            pass
        except (OSError, UnsealError) as exc:
            log.warning("feed cache for summary %s unusable (%s): encoding again", message_id, type(exc).__name__)
        data = self._encode(message_id, audio)
        if data is not None:
            self._write(path, sealer.seal(data, self._aad(message_id)))
        return data

    def _encode(self, message_id: str, audio: bytes) -> bytes | None:
        from mailvoice.audio.decode import decode_audio
        from mailvoice.audio.encode import encode_audio

        limits = replace(self.settings.audio, max_duration=max(self.settings.audio.max_duration, _LONGEST))
        try:
            with _ENCODE:
                clip = decode_audio(audio, name=f"summary {message_id}", settings=limits, sample_rate=24000)
                data = encode_audio(clip, self.fmt)
        except AudioError as exc:
            log.warning("summary %s left out of the feed: %s", message_id, exc)
            return None
        log.info("encoded summary %s for the feed: %s, %d bytes", message_id, self.fmt, len(data))
        return data

    def _write(self, path: Path, sealed: bytes) -> None:
        """Atomic and private: a reader sees the old file or the whole new one."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, sealed)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def prune(self, keep: set[str]) -> int:
        """Delete cached episodes of summaries no longer in the feed; the number removed."""
        removed = 0
        try:
            entries = list(self.folder.iterdir())
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not entry.name.startswith(".") and entry.name.split(".", 1)[0] not in keep:
                entry.unlink(missing_ok=True)
                removed += 1
        return removed
