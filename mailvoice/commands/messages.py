"""`mailvoice messages`, `mailvoice show ID`, `mailvoice quarantine list|retry ID`: the decrypted store."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING, Any

from mailvoice.commands import console, open_store, settings_from

if TYPE_CHECKING:
    from mailvoice.store.records import Message


def _message_json(m: Message, *, full: bool) -> dict[str, Any]:
    c = m.content
    doc: dict[str, Any] = {
        "id": m.id,
        "kind": m.kind,
        "account": m.account,
        "created_at": m.created_at.isoformat(),
        "state": m.state,
        "duration": m.duration,
        "language": m.language,
        "caller": c.caller,
        "subject": c.subject,
        "from": c.sender,
        "text": c.text,
    }
    if full:
        doc["source"] = c.source
        doc["audio_filename"] = c.audio_filename
        doc["recipients"] = list(c.recipients)
        if c.transcript is not None:
            doc["transcript"] = c.transcript.to_json()
    return doc


def _list(args: argparse.Namespace) -> int:
    store = open_store(settings_from(args))
    try:
        rows = store.list_messages(args.kind, limit=args.limit)
        store.audit("message.listed", f"kind={args.kind or 'any'} count={len(rows)}")
    finally:
        store.close()
    if args.json:
        for m in rows:
            print(json.dumps(_message_json(m, full=False), ensure_ascii=False))
        return 0
    print_messages(rows)
    return 0


def print_messages(rows: tuple[Message, ...]) -> None:
    """The decrypted messages as a table on stdout (every user-supplied cell escaped for rich)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from mailvoice.render import format_duration

    table = Table(title=f"{len(rows)} message(s)", show_lines=True)
    for col in ("id", "kind", "when", "from", "text"):
        table.add_column(col, overflow="fold")
    for m in rows:
        who = m.content.caller or m.content.sender
        if m.duration:
            who += f" ({format_duration(m.duration)})"
        text = m.content.text if m.kind != "text" else f"{m.content.subject}"
        table.add_row(
            m.id[:12], m.kind, m.created_at.strftime("%Y-%m-%d %H:%M"), escape(who), escape(text or "(no speech)")
        )
    Console().print(table)


def _show(args: argparse.Namespace) -> int:
    store = open_store(settings_from(args))
    try:
        m = store.get_message(args.id)
        store.audit("message.shown", m.id)
    finally:
        store.close()
    doc = _message_json(m, full=True)
    if args.json:
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return 0
    for key in ("id", "kind", "account", "created_at", "caller", "from", "subject", "duration", "language", "source"):
        if doc.get(key):
            print(f"{key}: {doc[key]}")
    print()
    print(m.content.text or "(no speech)")
    return 0


def _quarantine(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    settings = settings_from(args)
    store = open_store(settings)
    try:
        if args.quarantine_command == "list":
            rows = store.list_quarantine(None if args.all else "open", limit=1000)
            if args.json:
                for q in rows:
                    print(
                        json.dumps(
                            {
                                "id": q.id,
                                "account": q.account,
                                "folder": q.folder,
                                "uid": q.uid,
                                "key": q.key,
                                "state": q.state,
                                "reason": q.reason,
                                "created_at": q.created_at.isoformat(),
                                "attempts": q.attempts,
                            }
                        )
                    )
                return 0
            table = Table(title=f"{len(rows)} quarantined item(s)")
            for col in ("id", "state", "source", "reason"):
                table.add_column(col, overflow="fold")
            for q in rows:
                src = f"{q.account}/{q.folder} " + (f"uid {q.uid}" if q.uid is not None else f"{q.key}")
                table.add_row(q.id[:12], q.state, escape(src), escape(q.reason))
            from rich.console import Console

            Console().print(table)
            return 0
        from mailvoice.retry import retry_quarantined

        result = asyncio.run(retry_quarantined(settings, store, args.id))
        store.audit("quarantine.retried", args.id, outcome=result.status)
        console.info(f"quarantine {args.id}: {result.status} {result.detail}".rstrip())
        return 0 if result.status in ("delivered", "text", "duplicate") else 1
    finally:
        store.close()


def run(args: argparse.Namespace) -> int:
    if args.command == "messages":
        return _list(args)
    if args.command == "show":
        return _show(args)
    return _quarantine(args)
