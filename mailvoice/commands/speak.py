"""`mailvoice speak [TEXT | --file F | --eml F | --message ID] -o OUT`: text or mail to an audio file."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from mailvoice.commands import console, settings_from
from mailvoice.commands.console import spinner
from mailvoice.config import Settings
from mailvoice.errors import ConfigError, MailError

_FORMATS = {".ogg": "ogg", ".opus": "ogg", ".mp3": "mp3", ".wav": "wav"}
MAX_TEXT_BYTES = 2 * 1024 * 1024


def _read(path: str, what: str) -> bytes:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_TEXT_BYTES * 16:
            raise ConfigError(f"{what} {p} is too large to speak ({p.stat().st_size} bytes)")
        return p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {p} cannot be read ({exc.strerror})") from exc


def _mail_text(raw: bytes, name: str, language: str) -> str:
    from mailvoice.mail.mime import parse_message
    from mailvoice.speechtext import mail_for_speech

    try:
        parsed = parse_message(raw)
    except MailError as exc:
        raise MailError(f"{name}: {exc}") from exc
    return mail_for_speech(parsed, language)


def _stored_text(settings: Settings, message_id: str) -> str:
    from mailvoice.commands import open_store
    from mailvoice.speechtext import message_for_speech
    from mailvoice.spoken.lang import voice_language

    store = open_store(settings)
    try:
        message = store.get_message(message_id)
        store.audit("audio.exported", message.id)  # spoken into a file
        return message_for_speech(message, voice_language(settings.tts))
    finally:
        store.close()


def text_to_speak(args: argparse.Namespace, settings: Settings) -> str:
    if args.file:
        return _read(args.file, "text file").decode("utf-8", errors="replace")
    if args.eml:
        from mailvoice.spoken.lang import voice_language

        return _mail_text(_read(args.eml, "mail file"), args.eml, voice_language(settings.tts))
    if args.message:
        return _stored_text(settings, args.message)
    if args.text is not None:
        return str(args.text)
    if not sys.stdin.isatty():
        return sys.stdin.read(MAX_TEXT_BYTES)
    raise ConfigError("nothing to speak: give TEXT, --file F, --eml F or --message ID")


def write_atomic(path: Path, data: bytes) -> None:
    """Write the user's output file atomically (a partial file never appears under the final name)."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    out = Path(args.output)
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ConfigError(f"output {out}: unknown extension {out.suffix!r}; use .ogg, .mp3 or .wav")
    text = text_to_speak(args, settings).strip()
    if not text:
        raise ConfigError("the text to speak is empty")

    from mailvoice.audio import assemble, encode_audio
    from mailvoice.engines import load_tts

    with spinner() as progress:
        task = progress.add_task("loading voice")
        tts = load_tts(settings.tts, settings.general)
        chunks = []
        for i, chunk in enumerate(tts.synthesize(text), 1):
            progress.update(task, description=f"speaking sentence {i}")
            chunks.append(chunk)
        progress.update(task, description="encoding")
        clip = assemble(chunks)
        data = encode_audio(clip, fmt)
    write_atomic(out, data)
    console.info(f"wrote {out} ({clip.duration:.1f} s, {len(data)} bytes)")
    return 0
