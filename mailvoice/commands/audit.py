"""`mailvoice audit [--since AGE|DATE] [--json] [--verify]`: list the audit trail, or check its hash chain."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta

from mailvoice.commands import console, open_store, settings_from
from mailvoice.errors import ConfigError

_AGE = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """ "24h", "7d", "90m", "2w" back from now, or a date/time (ISO 8601, UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    if m := _AGE.match(text):
        return now - timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2).lower()])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ConfigError(
            f"audit --since {text!r} is invalid: give an age (24h, 7d, 90m, 2w) or a date (2026-01-31)"
        ) from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def run(args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else None
    store = open_store(settings_from(args))
    try:
        if args.verify:
            check = store.audit_verify()
            if args.json:
                print(json.dumps({"ok": check.ok, "records": check.records, "head": check.head,
                                  "problems": list(check.problems)}))  # fmt: skip
            for problem in check.problems if not args.json else ():
                console.error(f"audit trail: {problem}")
            if not args.json:
                verdict = "intact" if check.ok else "BROKEN"
                console.info(f"audit trail {verdict}: {check.records} record(s), head {check.head}")
            return 0 if check.ok else 1
        records = store.audit_records(since)
    finally:
        store.close()
    if args.json:
        for r in records:
            print(json.dumps(r.to_json()))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{len(records)} audit record(s)")
    for col in ("seq", "when (UTC)", "actor", "action", "target", "outcome"):
        table.add_column(col, overflow="fold")
    for r in records:
        when = r.at.strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(str(r.seq), when, escape(r.actor), r.action, escape(r.target), r.outcome)
    Console().print(table)
    return 0
