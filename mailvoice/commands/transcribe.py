"""`mailvoice transcribe FILE... [--json]`: offline transcription of audio files."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from mailvoice.commands import console, err_console, settings_from
from mailvoice.errors import AudioError, AudioTooLargeError, EngineError


def _read_capped(path: Path, max_bytes: int) -> bytes:
    """Read a file, refusing it before reading when it is larger than audio.max_bytes."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise AudioTooLargeError(
                f"{path}: {size} bytes is over the limit of {max_bytes} bytes (setting audio.max_bytes)"
            )
        return path.read_bytes()
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror})") from exc


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    asr = settings.asr
    if args.language:
        asr = dataclasses.replace(asr, language=args.language)
    if args.model:
        asr = dataclasses.replace(asr, model=args.model)

    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from mailvoice.audio import load_for_asr
    from mailvoice.engines import load_asr

    files = [Path(f) for f in args.files]
    failures = 0
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console(),
        transient=True,
        disable=len(files) < 2 or not err_console().is_terminal,
    )
    with progress:
        task = progress.add_task("loading model", total=len(files))
        engine = load_asr(asr, settings.general)
        for path in files:
            progress.update(task, description=f"transcribing {escape(path.name)}")
            try:
                clip = load_for_asr(
                    _read_capped(path, settings.audio.max_bytes), name=str(path), settings=settings.audio
                )
                transcript = engine.transcribe(clip)
            except (AudioError, EngineError) as exc:
                failures += 1
                if args.json:
                    print(json.dumps({"file": str(path), "error": str(exc), "error_type": type(exc).__name__}))
                else:
                    console.error(str(exc))
                continue
            finally:
                progress.advance(task)
            if args.json:
                print(json.dumps({"file": str(path), **transcript.to_json()}, ensure_ascii=False))
            elif len(files) > 1:
                text = transcript.text if not transcript.no_speech else "(no speech)"
                print(f"{path}: {text}")
            else:
                print(transcript.text if not transcript.no_speech else "(no speech)")
            sys.stdout.flush()
    return 1 if failures else 0
