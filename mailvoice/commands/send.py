"""`mailvoice send --to ADDR ... (--audio F | --record)` and `mailvoice reply ID (--audio F | --record)`.

The transcript is shown for review before anything is sent (--yes skips); without a terminal, --yes is required.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from mailvoice.commands import console, err_console, open_store, print_json, settings_from
from mailvoice.errors import ConfigError

MAX_AUDIO_BYTES = 100 * 1024 * 1024


def _audio(args: argparse.Namespace) -> tuple[bytes, str]:
    if args.record:
        from mailvoice.spoken.mic import record_wav

        err_console().print("Recording: speak now; press Enter when done (3 s of silence also stops).")
        return record_wav(), "microphone.wav"
    path = Path(args.audio)
    try:
        if path.stat().st_size > MAX_AUDIO_BYTES:
            raise ConfigError(f"audio file {path} is larger than {MAX_AUDIO_BYTES} bytes")
        return path.read_bytes(), path.name
    except OSError as exc:
        raise ConfigError(f"audio file {path} cannot be read ({exc.strerror})") from exc


def _confirm(args: argparse.Namespace, summary: str, transcript: str) -> bool:
    from rich.markup import escape

    out = err_console()
    out.print(escape(summary))  # addresses and the subject are user text: `[bold]` prints as typed
    out.print(f"[bold]Transcript:[/bold]\n{escape(transcript or '(no speech detected)')}", highlight=False)
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to confirm on: review the transcript interactively, or pass --yes")
    answer = input("Send this voice email? [y/N] ").strip().lower()
    return answer in ("y", "yes")


def run(args: argparse.Namespace) -> int:
    if args.json and not args.yes:
        raise ConfigError("--json needs --yes: a script cannot review the transcript")
    settings = settings_from(args)
    from mailvoice.voicesend import (
        VoiceDraft,
        account_context,
        check_addresses,
        reply_draft_fields,
        send_voice_email,
        subject_for,
        transcribe_recording,
    )

    account = account_context(settings, args.account).account
    store = open_store(settings)
    try:
        in_reply_to = ""
        references: tuple[str, ...] = ()
        if args.command == "reply":
            original = store.get_message(args.id)
            to, subject, in_reply_to, references = reply_draft_fields(original)
            cc: tuple[str, ...] = ()
            account = args.account or original.account
        else:
            to = check_addresses(args.to, "--to")
            cc = check_addresses(args.cc, "--cc")
            subject = args.subject
        data, name = _audio(args)
        with err_console().status("transcribing", spinner="dots"):
            recording = transcribe_recording(settings, data, name)
        draft = VoiceDraft(
            to=to,
            cc=cc,
            subject=subject_for(subject, recording.transcript),
            recording=recording,
            in_reply_to=in_reply_to,
            references=references,
        )
        head = f"To: {', '.join(to)}" + (f"\nCc: {', '.join(cc)}" if cc else "") + f"\nSubject: {draft.subject}"
        if not _confirm(args, head, recording.transcript.text):
            console.info("not sent")
            return 1
        sent = asyncio.run(send_voice_email(settings, store, draft, account=account))
    finally:
        store.close()
    if args.json:
        print_json(
            {
                "id": sent.message_id,
                "message_id": sent.message_id_header,
                "sent": sent.delivered,
                "queued": not sent.delivered,
                "to": list(draft.to),
                "cc": list(draft.cc),
                "subject": draft.subject,
                "transcript": recording.transcript.text,
                "sent_folder": sent.sent_folder or None,
                "error": sent.error or None,
            }
        )
    if not sent.delivered:
        console.warn(f"voice email queued, not sent yet ({sent.error}); `mailvoice run` retries it")
        return 1
    where = f"; copy in {sent.sent_folder}" if sent.sent_folder else ""
    console.info(f"sent {sent.message_id_header} to {', '.join(draft.to)}{where}")
    if sent.error:
        console.warn(sent.error)
    return 0
