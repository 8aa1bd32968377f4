"""`mailvoice doctor`: check the interpreter, config, key, store, models and mail servers, and say what to fix."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from mailvoice.commands import err_console
from mailvoice.config import AccountSettings, Settings
from mailvoice.errors import MailvoiceError


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def _interpreter() -> Check:
    from mailvoice.mail.headers import check_interpreter_email_security

    problems = check_interpreter_email_security()
    version = ".".join(map(str, sys.version_info[:3]))
    if problems:
        # Not fatal: every header mailvoice writes goes through clean_header_text and addresses are parsed by our
        # own strict code, so these interpreter bugs cannot be reached. Upgrading Python is still advised.
        return Check(
            "interpreter",
            True,
            f"Python {version} lacks fixes, hardened around them by mailvoice "
            "(upgrade Python when you can): " + "; ".join(problems),
        )
    return Check("interpreter", True, f"Python {version}, email security fixes present")


def _key(settings: Settings) -> Check:
    from mailvoice.crypto import load_key

    ring = load_key(settings.general.resolved_key_file())
    where = "MAILVOICE_KEY" if ring.source is None else f"{ring.source} (0600)"
    return Check("key", True, f"{where}, {len(ring.keys)} key(s), active {ring.active}")


def _store(settings: Settings) -> Check:
    from mailvoice.commands import open_store

    store = open_store(settings)
    try:
        n = store.count_messages()  # a COUNT: opening every sealed record would take minutes on a big store
        newest = store.list_messages(limit=1)  # the key opens the newest record (raises UnsealError otherwise)
    finally:
        store.close()
    opened = ", the key opens the newest" if newest else ""
    return Check("store", True, f"{_redact(settings.general.resolved_store_url())}: {n} message(s){opened}")


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def _models(settings: Settings) -> list[Check]:
    from mailvoice.engines import load_asr, load_tts

    out = []
    asr = load_asr(settings.asr, settings.general)
    out.append(Check("asr model", True, f"{settings.asr.engine} {settings.asr.model}: loads ({asr.name})"))
    tts = load_tts(settings.tts, settings.general)
    out.append(Check("tts voice", True, f"{settings.tts.engine} {settings.tts.voice}: loads, {tts.sample_rate} Hz"))
    return out


def _imap_login(a: AccountSettings) -> Check:
    """Connect, TLS, log in and select each folder: a wrong password or folder fails here, not at 3 a.m."""
    from mailvoice.mail.imap import ImapSource
    from mailvoice.mail.source import MemoryCursorStore

    source = ImapSource(a, MemoryCursorStore())
    try:
        found = source.examine()
    finally:
        source.close()
    folders = ", ".join(f"{name} ({n})" for name, n in found.items())
    return Check(f"imap {a.name}", True, f"{source.where}: {a.tls}, logged in as {a.username}; folders {folders}")


def _smtp_login(settings: Settings) -> Check:
    import asyncio

    from mailvoice.mail.smtp import check_login

    return Check("smtp", True, asyncio.run(check_login(settings.smtp)))


def _servers(settings: Settings) -> list[Check]:
    out = []
    for a in settings.accounts:
        out += _guard(f"imap {a.name}", lambda a=a: _imap_login(a))  # type: ignore[misc]
    if settings.smtp.host:
        out += _guard("smtp", lambda: _smtp_login(settings))
    else:
        out.append(Check("smtp", True, "no SMTP host: mail is delivered into the local folder"))
    return out


def _postgres(settings: Settings) -> list[Check]:
    """A PostgreSQL store: the server answers and the schema is at the migrations' head."""
    url = settings.general.resolved_store_url()
    if not url.startswith("postgresql"):
        return []
    from sqlalchemy import text

    from mailvoice.store.db import make_engine
    from mailvoice.store.migrations import HEAD, current

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
            at = current(conn)
    except Exception as exc:
        return [
            Check(
                "postgresql",
                False,
                f"{_redact(url)} unreachable ({exc.__class__.__name__}: {exc}); check "
                "host, port, database and PGPASSWORD / ~/.pgpass",
            )
        ]
    finally:
        engine.dispose()
    if at != HEAD:
        return [
            Check(
                "postgresql",
                False,
                f"PostgreSQL {version}: schema at {at or 'nothing'}, expected {HEAD}: "
                "run `python -m mailvoice.store.migrations URL` (or start a worker)",
            )
        ]
    return [Check("postgresql", True, f"PostgreSQL {version}, schema {HEAD}")]


def _broker(settings: Settings) -> list[Check]:
    """The scaled-out deployment's task broker: reachable, and it accepts our login."""
    if not settings.queue.broker_url:
        return []
    from kombu.connection import Connection

    from mailvoice.scale.app import broker_url

    url = broker_url(settings.queue)
    shown = _redact(settings.queue.broker_url)
    try:
        with Connection(url, connect_timeout=5) as conn:  # type: ignore[no-untyped-call]
            conn.ensure_connection(max_retries=1)
            transport = conn.transport_cls
    except Exception as exc:
        return [
            Check(
                "queue broker",
                False,
                f"{shown} unreachable or login refused ({exc}); check queue.broker_url and queue.password_env",
            )
        ]
    return [
        Check(
            "queue broker",
            True,
            f"{shown} reachable ({transport}), queues {settings.queue.mail_queue}, "
            f"{settings.queue.asr_queue}, {settings.queue.tts_queue}",
        )
    ]


def _guard(name: str, fn: Callable[[], Check | list[Check]]) -> list[Check]:
    """Run one check; a failure becomes a failed check whose detail says what to fix."""
    try:
        got = fn()
    except MailvoiceError as exc:
        return [Check(name, False, str(exc))]
    except Exception as exc:  # a doctor reports, it does not crash
        return [Check(name, False, f"{type(exc).__name__}: {exc}")]
    return got if isinstance(got, list) else [got]


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from mailvoice.commands import print_json, settings_from

    checks = _guard("interpreter", _interpreter)
    try:
        settings = settings_from(args)
        where = str(settings.source) if settings.source else "no file: built-in defaults"
        checks.append(Check("config", True, where))
    except MailvoiceError as exc:
        checks.append(Check("config", False, str(exc)))
        settings = None
    if settings is not None:
        checks += _guard("key", lambda: _key(settings))
        checks += _guard("store", lambda: _store(settings))
        checks += _guard("models", lambda: _models(settings))
        checks += _guard("servers", lambda: _servers(settings))
        checks += _guard("postgresql", lambda: _postgres(settings))
        checks += _guard("queue broker", lambda: _broker(settings))
    ok = all(c.ok for c in checks)
    if getattr(args, "json", False):
        print_json({"ok": ok, "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]})
        return 0 if ok else 1
    table = Table(title="mailvoice doctor", show_lines=False)
    table.add_column("check")
    table.add_column("ok")
    table.add_column("detail", overflow="fold")
    for c in checks:
        table.add_row(escape(c.name), "[green]yes[/]" if c.ok else "[bold red]NO[/]", escape(c.detail))
    err_console().print(table)
    return 0 if ok else 1
