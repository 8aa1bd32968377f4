"""The `mailvoice` command: a thin argparse front that imports each command's module only when it runs."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Any

from mailvoice import __version__
from mailvoice.errors import MailvoiceError, MissingExtraError

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
    "audit": "audit",
    "worker": "worker",
    "scheduler": "scheduler",
    "outbox": "outboxcmd",
    "demo": "demo",
    "wyoming": "wyoming",
    "matrix": "matrix",
    "models": "modelscmd",
}

# An optional dependency's top-level module -> the extra that installs it (a missing one exits 2 with the pip line).
EXTRAS: dict[str, str] = {
    "uvicorn": "web",
    "starlette": "web",
    "websockets": "web",
    "sounddevice": "mic",
    "TTS": "coqui",
    "torch": "coqui",
    "torchaudio": "coqui",
    "celery": "scale",
    "kombu": "scale",
    "psycopg": "postgres",
    "alembic": "postgres",
    "wyoming": "wyoming",
    "nio": "matrix",
}


def _common() -> argparse.ArgumentParser:
    """Options every command also takes after its name (`mailvoice doctor --config F`)."""
    c = argparse.ArgumentParser(add_help=False)
    c.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    c.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    c.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return c


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mailvoice",
        description="Offline voice email bot: transcribes voicemail attachments into encrypted text messages, "
        "speaks mail, sends voice email.",
    )
    p.add_argument("--version", action="version", version=f"mailvoice {__version__}")
    p.add_argument("--config", metavar="FILE", help="config file (default: $MAILVOICE_CONFIG or the user config dir)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="log lines as text or one JSON object each (default: general.log_format)",
    )
    sub = _Sub(p.add_subparsers(dest="command", metavar="COMMAND"), _common())

    s = sub.add_parser("init", help="create the data dir, the 0600 key file and a starter config")
    s.add_argument("--force", action="store_true", help="overwrite an existing config file (never the key file)")

    s = sub.add_parser("keys", help="manage encryption keys")
    ks = _Sub(s.add_subparsers(dest="keys_command", metavar="ACTION", required=True), sub.common)
    ks.add_parser("rotate", help="make a new key active and re-seal every record under it")
    kp = ks.add_parser("pgp", help="recipients' OpenPGP public keys for encrypted delivery")
    kps = kp.add_subparsers(dest="pgp_command", metavar="ACTION", required=True)
    k = kps.add_parser("import", help="check and keep public key files (armored or binary); '-' reads stdin")
    k.add_argument("files", nargs="+", metavar="FILE")
    k = kps.add_parser("list", help="every key mailvoice knows, with its state")
    k.add_argument("--json", action="store_true")
    k = kps.add_parser("remove", help="remove imported keys by fingerprint (16+ hex digits) or address")
    k.add_argument("key", metavar="FINGERPRINT|ADDRESS")

    s = sub.add_parser("doctor", help="check config, key, store, models, and log in to the mail servers")
    s.add_argument("--json", action="store_true", help="the checks as one JSON object on stdout")

    s = sub.add_parser("models", help="installed and installable models, with their figures measured here")
    s.add_argument("--json", action="store_true", help="one JSON object per model per line")

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
    s.add_argument("--json", action="store_true", help="with --once: the counts as one JSON object on stdout")

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
    qs = _Sub(s.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True), sub.common)
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
    s.add_argument("--token", help=argparse.SUPPRESS)  # refused with a hint: argv shows in `ps`
    s.add_argument(
        "--token-file",
        metavar="FILE",
        help="access token in a 0600 file (default: $MAILVOICE_WEB_TOKEN, else generated and printed)",
    )
    s.add_argument(
        "--behind-tls-proxy",
        action="store_true",
        help="allow a non-loopback --host: an HTTPS reverse proxy terminates TLS in front of this server",
    )
    s.add_argument("--max-connections", type=int, default=100, metavar="N", help="open connections at once")
    s.add_argument(
        "--max-per-client",
        type=int,
        default=16,
        metavar="N",
        help="connections from one address at once (behind a reverse proxy every client is the proxy)",
    )

    s = sub.add_parser("audit", help="the audit trail: who read, played, sent, rotated or logged in, and when")
    s.add_argument("--since", metavar="AGE|DATE", help="e.g. 24h, 7d or 2026-01-31 (default: everything)")
    s.add_argument("--json", action="store_true", help="one JSON object per record per line")
    s.add_argument(
        "--verify", action="store_true", help="check the hash chain: exit 1 if a record was removed or altered"
    )

    s = sub.add_parser("summary", help="a spoken summary of the inbox")
    s.add_argument("--account", metavar="A")
    s.add_argument("--since", default="24h", metavar="AGE", help="e.g. 24h, 3d (default 24h)")
    s.add_argument("-o", "--output", metavar="OUT", help="write the audio here (.ogg, .mp3, .wav)")
    s.add_argument("--send", action="store_true", help="mail it to the owner")
    s.add_argument("--json", action="store_true", help="the result as one JSON object on stdout")

    s = sub.add_parser("send", help="send a voice email: audio in, transcript + audio out")
    s.add_argument("--to", action="append", default=[], metavar="ADDR", required=True)
    s.add_argument("--cc", action="append", default=[], metavar="ADDR")
    s.add_argument("--subject", metavar="S")
    s.add_argument("--account", metavar="NAME")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--audio", metavar="FILE")
    g.add_argument("--record", action="store_true", help="record from the microphone")
    s.add_argument("--yes", action="store_true", help="send without showing the transcript for review")
    s.add_argument("--json", action="store_true", help="the result as one JSON object on stdout (needs --yes)")

    s = sub.add_parser("reply", help="reply to a stored message by voice")
    s.add_argument("id")
    s.add_argument("--account", metavar="NAME")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--audio", metavar="FILE")
    g.add_argument("--record", action="store_true")
    s.add_argument("--yes", action="store_true")
    s.add_argument("--json", action="store_true", help="the result as one JSON object on stdout (needs --yes)")

    s = sub.add_parser("outbox", help="mail waiting to be sent: pending, retrying, failed, with the last error")
    s.add_argument("--json", action="store_true", help="one JSON object per mail per line")
    s.add_argument("--all", action="store_true", help="include mail already sent")

    s = sub.add_parser("demo", help="the main job on a bundled mailbox, in its own folder: no account, no server")
    s.add_argument("--home", metavar="DIR", help="demo state (default: $MAILVOICE_HOME, else a user data folder)")

    s = sub.add_parser("wyoming", help="serve ASR and TTS to Home Assistant (Wyoming protocol; extra: wyoming)")
    s.add_argument("--uri", metavar="URI", help="tcp://HOST:PORT or unix:///path (default: [wyoming] uri)")

    s = sub.add_parser("matrix", help="Matrix bot: transcribe voice messages in owners' rooms (extra: matrix)")
    s.add_argument("--account", metavar="NAME", help="one [[matrix]] account (default: all)")

    s = sub.add_parser("bench", help="benchmarks: speed and memory as ratios against a baseline in the same process")
    s.add_argument("what", choices=["asr", "tts", "mail", "dictation", "scale", "quality"])
    s.add_argument("--json", action="store_true")
    s.add_argument(
        "--data", metavar="DIR", help="quality/dictation: a folder of recordings with manifest.json (tests/data/real)"
    )
    s.add_argument("--seconds", type=float, default=30.0, help="length of the benchmark speech (tts/dictation)")
    s.add_argument(
        "--sockets", type=int, default=0, metavar="N", help="dictation: N browser sockets at once against `serve`"
    )
    s.add_argument("--quick", action="store_true", help="asr: one or two clips per group (while developing)")
    return p


class _Sub:
    """A subparsers action whose every parser also takes the common options."""

    def __init__(self, action: Any, common: argparse.ArgumentParser) -> None:
        self.action = action
        self.common = common

    def add_parser(self, name: str, **kw: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self.action.add_parser(name, parents=[self.common], **kw)
        return parser


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra that provides the module an import could not find, or None when it is not an optional one."""
    top = (exc.name or "").split(".")[0]
    return EXTRAS.get(top)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from mailvoice import logsetup

    logsetup.configure(args.verbose, args.log_format)
    from mailvoice.crypto import scrub_environment

    scrub_environment()  # the key never reaches a child process
    module = importlib.import_module(f"mailvoice.commands.{_COMMANDS[args.command]}")
    from mailvoice.commands import console

    try:
        rc: int = module.run(args)
    except MailvoiceError as exc:
        cause = exc.__cause__
        extra = missing_extra(cause) if isinstance(cause, ModuleNotFoundError) else None
        message = str(exc)
        if extra is not None and f"mailvoice[{extra}]" not in message:
            message += f" (optional extra {extra!r}: pip install 'mailvoice[{extra}]')"
        console.error(message)
        return 2 if extra is not None or isinstance(exc, MissingExtraError) else 1
    except ModuleNotFoundError as exc:
        extra = missing_extra(exc)
        if extra is None:
            raise
        console.error(
            f"`mailvoice {args.command}` needs the optional {extra!r} extra ({exc.name} is not installed): "
            f"pip install 'mailvoice[{extra}]'"
        )
        return 2
    except KeyboardInterrupt:
        return 130
    return rc
