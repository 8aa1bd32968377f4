"""`mailvoice outbox [--json] [--all]`: mail waiting to be sent, like mailq (pending, retrying, failed, last error)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mailvoice.commands import open_store, print_json, settings_from

if TYPE_CHECKING:
    from mailvoice.store.records import OutboxState, Outgoing

_WAITING: tuple[OutboxState, ...] = ("pending", "sending", "failed")


def status(row: Outgoing) -> str:
    """pending (never tried), retrying (tried, will try again), sending, failed (given up), sent."""
    if row.state == "pending" and row.attempts:
        return "retrying"
    return row.state


def _doc(row: Outgoing) -> dict[str, object]:
    return {
        "id": row.id,
        "status": status(row),
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.state == "pending" else None,
        "created_at": row.created_at.isoformat(),
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
        "size": len(row.raw),
        "sender": row.envelope.sender,
        "recipients": list(row.envelope.recipients),
        "message_id": row.message_id_header,
        "last_error": row.last_error,
    }


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from mailvoice.commands import err_console

    store = open_store(settings_from(args))
    try:
        states: tuple[OutboxState, ...] = (*_WAITING, "sent") if args.all else _WAITING
        rows = sorted(
            (row for state in states for row in store.list_outbox(state, limit=10_000)),
            key=lambda r: (r.created_at, r.id),
        )
    finally:
        store.close()
    if args.json:
        for row in rows:
            print_json(_doc(row))
        return 0
    if not rows:
        err_console().print("outbox is empty" + ("" if args.all else " (nothing waiting to be sent)"))
        return 0
    table = Table(title=f"{len(rows)} mail(s) in the outbox", show_lines=True)
    for col in ("id", "status", "tries", "queued", "next try", "size", "to", "last error"):
        table.add_column(col, overflow="fold")
    for row in rows:
        d = _doc(row)
        table.add_row(
            row.id[:12],
            str(d["status"]),
            str(row.attempts),
            row.created_at.strftime("%Y-%m-%d %H:%M"),
            row.next_attempt_at.strftime("%H:%M:%S") if row.state == "pending" else "",
            f"{len(row.raw) / 1024:.0f} KiB",
            escape(", ".join(row.envelope.recipients)),
            escape(row.last_error),
        )
    from rich.console import Console

    Console().print(table)
    return 0
