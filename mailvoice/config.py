"""Typed settings, parsed once at the edge from a TOML file plus ``MAILVOICE_*`` environment overrides.

Lookup order for the file: ``--config``, ``$MAILVOICE_CONFIG``, then ``<user config dir>/mailvoice/config.toml``
(absent is fine: the embedded defaults apply). An override names a section and a key with a double underscore:
``MAILVOICE_ASR__BEAM_SIZE=3``, ``MAILVOICE_GENERAL__STORE_URL=sqlite:////tmp/x.db``.
Every bad value raises ConfigError naming the key, the value and the expected form.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from mailvoice.errors import ConfigError

ENV_PREFIX = "MAILVOICE_"

TlsMode = Literal["implicit", "starttls", "none"]


_BACKLOG = re.compile(r"^\s*(\d+)\s*([hdw])\s*$", re.IGNORECASE)
_BACKLOG_HOURS = {"h": 1, "d": 24, "w": 24 * 7}


def parse_backlog(value: str) -> timedelta | None:
    """general.backlog ("7d", "48h", "2w") as a timedelta; "" or "off" is None."""
    if value.strip().lower() in ("", "off", "0"):
        return None
    m = _BACKLOG.match(value)
    if m is None:
        raise ConfigError(
            f"setting general.backlog = {value!r} is invalid: expected a number and a unit h, d or w "
            '(e.g. "7d"), or "off"'
        )
    return timedelta(hours=int(m.group(1)) * _BACKLOG_HOURS[m.group(2).lower()])


def _user_dir(kind: Literal["config", "data"]) -> Path:
    import platformdirs

    if kind == "config":
        return Path(platformdirs.user_config_dir("mailvoice"))
    return Path(platformdirs.user_data_dir("mailvoice"))


@dataclass(frozen=True)
class GeneralSettings:
    data_dir: Path = field(default_factory=lambda: _user_dir("data"))
    """State: store, quarantine, delivered folder, demo mailbox."""
    store_url: str = ""
    """SQLAlchemy URL; empty means sqlite:///<data_dir>/mailvoice.db."""
    key_file: Path | None = None
    """The 0600 key file; None means <data_dir>/keys.json (created by `mailvoice init`)."""
    allow_downloads: bool = False
    """Let engines fetch model weights from a hub when no package or path provides them."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"
    """Log lines at this level and above (any case); -v / -vv on the command line say more."""
    log_format: Literal["text", "json"] = "text"
    """json: one object per line (time, level, logger, message: references only, never content)."""
    backlog: str = ""
    """On first contact with a mailbox, also process mail this old ("7d", "48h", "2w"); empty = none (what is
    there already is left as old mail; `mailvoice run --once --since DATE` processes it later)."""

    def backlog_age(self) -> timedelta | None:
        return parse_backlog(self.backlog)

    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir / 'mailvoice.db'}"

    def resolved_key_file(self) -> Path:
        return self.key_file or self.data_dir / "keys.json"


@dataclass(frozen=True)
class AudioSettings:
    max_bytes: int = 50 * 1024 * 1024
    """Largest encoded attachment accepted."""
    max_duration: float = 15 * 60.0
    """Longest decoded audio accepted, in seconds."""
    decode_timeout: float = 60.0
    """Wall-time limit for decoding one file, in seconds."""
    max_parts_per_mail: int = 10
    """Audio parts transcribed per incoming mail; the others are named in the transcript mail."""
    max_mail_duration: float = 30 * 60.0
    """Decoded audio per incoming mail, in seconds (all parts together); checked before and while decoding."""
    highpass_hz: float = 80.0
    """High-pass cut-off for DC/rumble removal; 0 disables."""
    normalize: bool = True
    """Loudness-normalise decoded speech before recognition."""
    target_dbfs: float = -20.0
    """RMS target level for normalisation."""


@dataclass(frozen=True)
class AsrSettings:
    engine: str = "faster-whisper"
    model: str = "tiny.en"
    """A model package name from models/manifest.toml, a directory path, or (with downloads) a hub model name."""
    language: str = "auto"
    """ISO 639-1 code, or "auto" to detect."""
    beam_size: int = 5
    greedy_first: bool = False
    """Decode greedily first, beam search only for windows whose scores fail the guards (beam on demand). Off by
    default: on real and telephone-band speech tiny.en lost words greedily that beam 5 kept (see README)."""
    min_window: float = 30.0
    """Shortest encoder input in seconds (audio + zero frames). 30 = Whisper's full window, bare faster-whisper's
    accuracy; 15 runs 3-30 s clips about twice as fast at a measured WER cost (see README's performance table)."""
    vad_filter: bool = True
    word_timestamps: bool = True
    initial_prompt: str = ""
    hotwords: str = ""
    threads: int = 0
    """CPU threads for inference; 0 = all cores."""
    compute_type: str = "int8"
    no_speech_threshold: float = 0.6
    """A segment whose no_speech_prob is above this and whose avg_logprob is below logprob_threshold is dropped."""
    logprob_threshold: float = -1.0
    languages: tuple[str, ...] = ()
    """With a multilingual model: the languages detection may pick (ISO 639-1 codes); empty = any."""
    translate: bool = False
    """With a multilingual model: add an English translation below a transcript in another language."""


@dataclass(frozen=True)
class TtsSettings:
    engine: str = "piper"
    voice: str = "joe"
    """A voice name from models/manifest.toml, an .onnx path (piper), or a model directory (coqui)."""
    format: Literal["ogg", "mp3", "wav"] = "ogg"
    language: str = ""
    """Language whose number rules the spoken text follows ("de", "en_GB"); empty = the voice's own language."""
    length_scale: float = 1.0
    sentence_pause: float = 0.35
    paragraph_pause: float = 0.8
    threads: int = 0


@dataclass(frozen=True)
class AccountSettings:
    name: str
    host: str
    username: str
    port: int = 0
    """0 = 993 for implicit TLS, 143 otherwise."""
    password_env: str = ""
    """Name of the environment variable holding the password."""
    password_file: Path | None = None
    tls: TlsMode = "implicit"
    ca_file: Path | None = None
    allow_plaintext: bool = False
    """Only honoured for a loopback host."""
    folders: tuple[str, ...] = ("INBOX",)
    recipients: tuple[str, ...] = ()
    """Where transcripts go; empty = the account's own address."""
    address: str = ""
    """The account's own address; empty = username when it contains '@'."""
    idle: bool = True
    poll_interval: float = 60.0
    timeout: float = 30.0
    mark_done: Literal["keyword", "seen", "none"] = "keyword"
    after: Literal["keep", "delete", "move"] = "keep"
    move_to: str = ""


@dataclass(frozen=True)
class MaildirSettings:
    name: str
    path: Path
    recipients: tuple[str, ...] = ()
    address: str = ""


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    """Empty = no SMTP: deliver into <data_dir>/delivered (a Maildir)."""
    port: int = 0
    username: str = ""
    password_env: str = ""
    password_file: Path | None = None
    tls: TlsMode = "starttls"
    ca_file: Path | None = None
    allow_plaintext: bool = False
    sender: str = ""
    """From address of mails mailvoice sends."""
    timeout: float = 30.0
    retry_base: float = 30.0
    """First retry after up to this many seconds (full jitter), doubling per attempt."""
    retry_cap: float = 3600.0
    """Longest wait between two retries, in seconds."""


@dataclass(frozen=True)
class DeliverySettings:
    attach_audio: bool = True
    mark_uncertain_below: float = 0.5
    """Words whose probability is below this are marked in the transcript mail."""
    folder: Path | None = None
    """Local Maildir for delivery when no SMTP host is set; None = <data_dir>/delivered."""
    owners: tuple[str, ...] = ()
    """Addresses that may receive summaries and trigger voice sends."""
    templates_dir: Path | None = None
    """A folder of user-edited templates; files missing there fall back to the built-in ones."""
    keep_audio: bool = True
    """Keep the (sealed) voicemail audio in the store."""
    subject_style: Literal["thread", "reply", "informative"] = "thread"
    """Transcript mail subject: "Re: <original subject>" (threads in Gmail and Thunderbird), the same plus
    "— caller (0:42)" (Thunderbird only: Gmail forks a changed subject), or "Voicemail from caller (0:42): words"."""
    pgp: Literal["required", "when-key", "off"] = "when-key"
    """OpenPGP (PGP/MIME) for every mail mailvoice sends: "when-key" encrypts when each recipient has a usable key
    (else plaintext), "required" never sends plaintext (holds the mail, tells the owner once), "off" never encrypts."""
    pgp_keys: tuple[Path, ...] = ()
    """Recipients' public key files or folders, read besides <data_dir>/pgp-keys (`mailvoice keys pgp import`)."""
    pgp_sign_key: Path | None = None
    """A 0600 file holding mailvoice's own unprotected OpenPGP secret key: encrypted mail is signed with it."""


@dataclass(frozen=True)
class SummarySettings:
    cron: str = ""
    """When every account gets its spoken summary: a crontab line ("0 7 * * mon-fri"; six fields = seconds
    first); empty = no scheduled summary."""
    account_cron: tuple[str, ...] = ()
    """Per-account overrides as "NAME=CRON" (or "NAME=off")."""
    timezone: str = ""
    """IANA zone for the cron times (e.g. "Europe/Berlin"); empty = the machine's local zone."""
    since: str = "24h"
    """How far back a scheduled summary looks (e.g. 24h, 3d)."""
    vip: tuple[str, ...] = ()
    """Senders spoken first: addresses, or "@domain" for a whole domain."""
    format: Literal["ogg", "mp3"] = "ogg"
    send: bool = True
    """Mail each scheduled summary to the owners (delivery.owners, else the account's address)."""
    folder: Path | None = None
    """Also write each summary's audio file into this folder."""
    max_items: int = 20
    sentences: int = 2
    """Sentences of each mail body or voicemail transcript read out."""


@dataclass(frozen=True)
class VoiceEmailSettings:
    format: Literal["ogg", "mp3"] = "ogg"
    """Audio attached to voice emails: Ogg/Opus (small) or MP3 (plays in every mail client)."""
    sent_folder: str = ""
    """Where a copy goes (IMAP APPEND); empty = the server's \\Sent special-use folder, else "Sent"."""
    append_sent: bool = True


@dataclass(frozen=True)
class FeedSettings:
    """The private podcast feed that `mailvoice serve` offers (/feed/<token>.xml)."""

    base_url: str = ""
    """The public address podcast apps reach the server at ("https://mail.example.org/mailvoice"); empty = the
    address the connection came in on. Never taken from the Host header."""
    trusted_proxies: tuple[str, ...] = ()
    """Reverse proxies (IPs or networks) whose X-Forwarded-Proto / -Host / -Prefix are believed (when no base_url)."""
    format: Literal["mp3", "m4a"] = "mp3"
    """Episode audio: MP3 or M4A (AAC); encoded on first request and cached sealed."""
    title: str = "mailvoice inbox summaries"
    author: str = "mailvoice"
    email: str = ""
    """itunes:owner e-mail; empty = the first of delivery.owners."""
    category: str = "Technology"
    """An Apple Podcasts category."""


@dataclass(frozen=True)
class QueueSettings:
    """The scaled-out deployment (`mailvoice worker`, `mailvoice scheduler`); unused by `mailvoice run`."""

    broker_url: str = ""
    """Celery broker without a password: amqp://mailvoice@host:5672/mailvoice (RabbitMQ) or redis://host:6379/0."""
    password_env: str = ""
    """Environment variable holding the broker password (put into broker_url at connect time)."""
    password_file: Path | None = None
    mail_queue: str = "mailvoice.mail"
    """Polling mailboxes and sending the outbox."""
    asr_queue: str = "mailvoice.asr"
    """Transcribing voicemail: place these workers where the cores are."""
    tts_queue: str = "mailvoice.tts"
    """Synthesizing spoken summaries."""
    outbox_interval: float = 10.0
    """Seconds between the scheduler's outbox sends (a worker also sends right after each transcript)."""
    requeue_after: float = 900.0
    """A queued voicemail whose task was lost (publisher died) is enqueued again after this many seconds."""


@dataclass(frozen=True)
class WyomingSettings:
    """`mailvoice wyoming`: ASR and TTS for Home Assistant's Assist over the Wyoming protocol."""

    uri: str = "tcp://127.0.0.1:10300"
    """tcp://HOST:PORT or unix:///path; a non-loopback host lets the LAN in (Wyoming has no authentication)."""
    max_audio_seconds: float = 60.0
    """Longest utterance accepted per transcription (also capped by audio.max_duration)."""
    max_event_bytes: int = 1024 * 1024
    """Largest event data or payload accepted; a bigger one closes the connection."""
    max_text_chars: int = 5000
    """Longest text accepted per synthesis."""
    idle_timeout: float = 60.0
    """Seconds a connection may stay silent before it is closed."""
    max_connections: int = 8
    """Connections served at once; more are refused with an error event."""


@dataclass(frozen=True)
class MatrixSettings:
    """One `[[matrix]]` bot account: transcribes voice messages in the rooms its owners invite it to."""

    name: str
    homeserver: str
    """Client-server API base URL: https://matrix.example.org (http:// only for a loopback host)."""
    user_id: str
    """The bot's account, @bot:example.org."""
    owners: tuple[str, ...]
    """Only invites from these users are accepted; everyone else's are rejected."""
    password_env: str = ""
    """Environment variable holding the password (used once, to log in and create the device)."""
    password_file: Path | None = None
    access_token_env: str = ""
    """Or an existing access token (with device_id) instead of a password."""
    access_token_file: Path | None = None
    device_id: str = ""
    device_name: str = "mailvoice"
    sync_timeout: float = 30.0
    """Seconds a sync long-poll waits for news."""


@dataclass(frozen=True)
class Settings:
    general: GeneralSettings = field(default_factory=GeneralSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    asr: AsrSettings = field(default_factory=AsrSettings)
    tts: TtsSettings = field(default_factory=TtsSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    summary: SummarySettings = field(default_factory=SummarySettings)
    voice_email: VoiceEmailSettings = field(default_factory=VoiceEmailSettings)
    feed: FeedSettings = field(default_factory=FeedSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    wyoming: WyomingSettings = field(default_factory=WyomingSettings)
    accounts: tuple[AccountSettings, ...] = ()
    maildirs: tuple[MaildirSettings, ...] = ()
    matrix: tuple[MatrixSettings, ...] = ()
    source: Path | None = None
    """The file these settings came from, if any."""


_SECTIONS: dict[str, type[Any]] = {
    "general": GeneralSettings,
    "audio": AudioSettings,
    "asr": AsrSettings,
    "tts": TtsSettings,
    "smtp": SmtpSettings,
    "delivery": DeliverySettings,
    "summary": SummarySettings,
    "voice_email": VoiceEmailSettings,
    "feed": FeedSettings,
    "queue": QueueSettings,
    "wyoming": WyomingSettings,
}
_LISTS: dict[str, type[Any]] = {"accounts": AccountSettings, "maildirs": MaildirSettings, "matrix": MatrixSettings}

T = TypeVar("T")


def _expected(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_expected(a) for a in get_args(tp) if a is not type(None)) + " (or empty)"
    if origin is tuple:
        return f"a list of {_expected(get_args(tp)[0])}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a file path"}.get(
        tp, str(tp)
    )


def _coerce(key: str, value: Any, tp: Any, *, from_env: bool) -> Any:
    """Convert one raw value to the annotated type, or raise ConfigError naming key, value and form."""

    def bad() -> ConfigError:
        return ConfigError(f"setting {key} = {value!r} is invalid: expected {_expected(tp)}")

    origin = get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in get_args(tp) if a is not type(None)]
        if value is None or (from_env and value == ""):
            return None
        return _coerce(key, value, inner[0], from_env=from_env)
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise bad()
    if origin is tuple:
        if from_env and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise bad()
        return tuple(_coerce(f"{key}[{i}]", v, get_args(tp)[0], from_env=from_env) for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        truthy, falsy = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
        if from_env and isinstance(value, str) and value.lower() in truthy + falsy:
            return value.lower() in truthy
        raise bad()
    if tp is int:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        if from_env and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad() from None
        raise bad()
    if tp is float:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int | float):
            return float(value)
        if from_env and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad() from None
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    if tp is Path:
        if isinstance(value, str) and value:
            return Path(value).expanduser()
        raise bad()
    raise bad()


def _build(cls: type[T], raw: Mapping[str, Any], prefix: str, *, from_env: bool = False) -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown setting {prefix}{key}: known keys in [{prefix.rstrip('.')}] are {known}")
        kwargs[key] = _coerce(f"{prefix}{key}", value, hints[key], from_env=from_env)
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"[{prefix.rstrip('.')}] is missing required setting(s): {', '.join(missing)}")
    return cls(**kwargs)


def default_config_path() -> Path:
    return _user_dir("config") / "config.toml"


def load_settings(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Parse the config file and the environment into Settings (once, at the edge)."""
    env = os.environ if environ is None else environ
    explicit = path is not None or bool(env.get("MAILVOICE_CONFIG"))
    cfg_path = Path(path or env.get("MAILVOICE_CONFIG") or default_config_path()).expanduser()
    raw: dict[str, Any] = {}
    if cfg_path.exists():
        try:
            raw = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {cfg_path} is not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"config file {cfg_path} cannot be read: {exc.strerror}") from exc
    elif explicit:
        raise ConfigError(f"config file {cfg_path} does not exist (run `mailvoice init` or fix the path)")

    unknown = set(raw) - set(_SECTIONS) - set(_LISTS)
    if unknown:
        raise ConfigError(
            f"unknown section(s) {', '.join(sorted(unknown))} in {cfg_path}: known sections are "
            + ", ".join(sorted([*_SECTIONS, *_LISTS]))
        )

    env_raw: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in _SECTIONS:
            raise ConfigError(
                f"environment variable {name}: unknown section {section!r}; known: {', '.join(sorted(_SECTIONS))}"
            )
        env_raw.setdefault(section, {})[key] = value

    kwargs: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        table = raw.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] in {cfg_path} must be a table")
        if section == "general":
            table, env_raw[section] = _upper_level(table), _upper_level(env_raw.get(section, {}))
            if not env_raw[section]:
                del env_raw[section]
        merged = _build(cls, table, f"{section}.")
        if section in env_raw:
            overrides = _build_partial(cls, env_raw[section], f"{section}.")
            merged = dataclasses.replace(merged, **overrides)
        kwargs[section] = merged
    for section, cls in _LISTS.items():
        items = raw.get(section, [])
        if not isinstance(items, list):
            raise ConfigError(f"[[{section}]] in {cfg_path} must be an array of tables")
        built = tuple(_build(cls, item, f"{section}[{i}].") for i, item in enumerate(items))
        names = [b.name for b in built]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ConfigError(f"[[{section}]] names must be unique; repeated: {', '.join(sorted(dupes))}")
        kwargs[section] = built
    parse_backlog(kwargs["general"].backlog)  # a bad value fails here, naming the key
    return Settings(**kwargs, source=cfg_path if cfg_path.exists() else None)


def _upper_level(table: Mapping[str, Any]) -> dict[str, Any]:
    """log_level is accepted in any case ("info"), as the logging module spells it."""
    out = dict(table)
    if isinstance(out.get("log_level"), str):
        out["log_level"] = out["log_level"].upper()
    return out


def _build_partial(cls: type[Any], raw: Mapping[str, str], prefix: str) -> dict[str, Any]:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            raise ConfigError(
                f"environment override MAILVOICE_{prefix.rstrip('.').upper()}__{key.upper()}: "
                f"unknown key; known keys are {', '.join(sorted(names))}"
            )
        out[key] = _coerce(f"{prefix}{key}", value, hints[key], from_env=True)
    return out


def read_secret(what: str, env_name: str, file: Path | None, environ: Mapping[str, str] | None = None) -> str:
    """A password from the named environment variable or file; the error names where it was looked for."""
    env = os.environ if environ is None else environ
    if env_name:
        value = env.get(env_name)
        if value:
            return value
    if file is not None:
        return read_private_file(file, f"{what}: password file")
    where = f"environment variable {env_name}" if env_name else "password_env / password_file"
    raise ConfigError(f"{what}: no password found; set {where}")


def read_private_file(path: Path, what: str) -> str:
    """A secret file's text, refused when it is not a regular file or looser than 0640 (0600/0640/0400/0440)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO planted there must not hang us
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        if mode & 0o037:
            raise ConfigError(f"{what} {path} has mode {stat.S_IMODE(mode):04o}, open to others; run: chmod 600 {path}")
        data = fh.read()
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from exc


def is_loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")
