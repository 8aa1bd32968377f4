"""The `mailvoice` command: a thin argparse front that imports each command's module only when it runs."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from mailvoice import __version__
from mailvoice.errors import MailvoiceError

log = logging.getLogger(__name__)

# subcommand -> module under mailvoice.commands exposing `run(args) -> int`
_COMMANDS: dict[str, str] = {
    "init": "setup",
    "doctor": "doctor",
    "keys": "setup",
    "transcribe": "transcribe",
    "speak": "speak",
    "run": "runcmd",
    "messages": "messages",
    "show": "messages",
    "quarantine": "messages",
    "bench": "bench",
    "dictate": "dictate",
    "serve": "serve",
    "summary": "summary",
    "send": "send",
    "reply": "send",
    "worker": "worker",
    "scheduler": "scheduler",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mailvoice",
        description="Offline voice email bot: transcribes voicemail attachments into encrypted text messages, "
        "speaks mail, sends voice email.",
    )
    p.add_argument("--version", action="version", version=f"mailvoice {__version__}")
    p.add_argument("--config", metavar="FILE", help="config file (default: $MAILVOICE_CONFIG or the user config dir)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("init", help="create the data dir, the 0600 key file and a starter config")
    s.add_argument("--force", action="store_true", help="overwrite an existing config file (never the key file)")

    s = sub.add_parser("keys", help="manage encryption keys")
    ks = s.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    ks.add_parser("rotate", help="make a new key active and re-seal every record under it")

    sub.add_parser("doctor", help="check models, key, config, servers and the interpreter's security fixes")

    s = sub.add_parser("transcribe", help="transcribe audio files offline")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--json", action="store_true", help="one JSON object per file per line")
    s.add_argument("--language", help="ISO 639-1 code, or 'auto'")
    s.add_argument("--model", help="ASR model name or path (default from config: tiny.en)")

    s = sub.add_parser("speak", help="speak text, a text file, a mail (.eml) or a stored message into an audio file")
    s.add_argument("text", nargs="?", help="text to speak")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--file", metavar="F", help="a UTF-8 text file")
    src.add_argument("--eml", metavar="F", help="a mail file (RFC 5322)")
    src.add_argument("--message", metavar="ID", help="a stored message id")
    s.add_argument("-o", "--output", required=True, metavar="OUT", help="OUT.ogg, OUT.mp3 or OUT.wav")

    s = sub.add_parser("run", help="run the mail bot (daemon); --once processes what is waiting and exits")
    s.add_argument("--once", action="store_true", help="process what is waiting, deliver, and exit (cron-friendly)")
    s.add_argument("--since", metavar="DATE", help="also process older mail received since DATE (YYYY-MM-DD)")

    s = sub.add_parser("worker", help="scaled-out worker: consume poll, transcribe, summary and send tasks")
    s.add_argument(
        "--queues",
        action="append",
        default=[],
        metavar="Q",
        help="mail, asr, tts (comma-separated or repeated; default: all three)",
    )
    s.add_argument("--name", metavar="N", help="worker name (default: mailvoice-PID@HOST)")

    sub.add_parser("scheduler", help="scaled-out scheduler: enqueue polls, sends and summaries for the workers")

    s = sub.add_parser("messages", help="list stored messages (decrypted)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--kind", help="voicemail, text, summary, voice_email, dictation")
    s.add_argument("--limit", type=int, default=50)

    s = sub.add_parser("show", help="show one stored message (decrypted)")
    s.add_argument("id")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("quarantine", help="list or retry quarantined mail")
    qs = s.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)
    q = qs.add_parser("list", help="items still waiting (open); --all includes retried and resolved ones")
    q.add_argument("--json", action="store_true")
    q.add_argument("--all", action="store_true")
    q = qs.add_parser("retry")
    q.add_argument("id")

    s = sub.add_parser("dictate", help="live dictation from the microphone or a file, then send or save a draft")
    s.add_argument("--to", action="append", default=[], metavar="ADDR")
    s.add_argument("--subject", metavar="S")
    s.add_argument("--account", metavar="NAME", help="account for drafts and the sender (default: the first)")
    s.add_argument(
        "--input",
        default="mic",
        metavar="mic|FILE",
        help="'mic' (sounddevice) or an audio file played at real-time pace",
    )
    s.add_argument("--json", action="store_true", help="partial/final events as JSON lines")
    s.add_argument("--fast", action="store_true", help="with --input FILE: feed as fast as possible, not real time")

    s = sub.add_parser("serve", help="web page: browser dictation, transcripts, spoken summaries, podcast feed")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--token", help="access token (default: from config, else generated and printed)")

    s = sub.add_parser("summary", help="a spoken summary of the inbox")
    s.add_argument("--account", metavar="A")
    s.add_argument("--since", default="24h", metavar="AGE", help="e.g. 24h, 3d (default 24h)")
    s.add_argument("-o", "--output", metavar="OUT", help="write the audio here (.ogg, .mp3, .wav)")
    s.add_argument("--send", action="store_true", help="mail it to the owner")

    s = sub.add_parser("send", help="send a voice email: audio in, transcript + audio out")
    s.add_argument("--to", action="append", default=[], metavar="ADDR", required=True)
    s.add_argument("--cc", action="append", default=[], metavar="ADDR")
    s.add_argument("--subject", metavar="S")
    s.add_argument("--account", metavar="NAME")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--audio", metavar="FILE")
    g.add_argument("--record", action="store_true", help="record from the microphone")
    s.add_argument("--yes", action="store_true", help="send without showing the transcript for review")

    s = sub.add_parser("reply", help="reply to a stored message by voice")
    s.add_argument("id")
    s.add_argument("--account", metavar="NAME")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--audio", metavar="FILE")
    g.add_argument("--record", action="store_true")
    s.add_argument("--yes", action="store_true")

    s = sub.add_parser("bench", help="benchmarks: speed and memory as ratios against a baseline in the same process")
    s.add_argument("what", choices=["asr", "tts", "mail", "dictation", "scale"])
    s.add_argument("--json", action="store_true")
    s.add_argument("--seconds", type=float, default=30.0, help="length of the benchmark speech (tts/dictation)")
    s.add_argument("--quick", action="store_true", help="asr: one or two clips per group (while developing)")
    return p


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    _configure_logging(args.verbose)
    from mailvoice.crypto import scrub_environment

    scrub_environment()  # the key never reaches a child process
    module = importlib.import_module(f"mailvoice.commands.{_COMMANDS[args.command]}")
    try:
        rc: int = module.run(args)
    except MailvoiceError as exc:
        from mailvoice.commands import console

        console.error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    return rc
