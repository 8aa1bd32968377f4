"""The audit trail: an append-only, hash-chained log of who did what, with references only, never content.

Each record's hash covers its fields and the previous record's hash, so `verify` finds a record altered (its hash),
removed from the middle (the next one's `prev` and the gap in `seq`) or from the end (SQLite's sqlite_sequence;
`seq` is never reused). Appends are serialised (SQLite BEGIN IMMEDIATE; a PostgreSQL transaction lock), so
concurrent processes extend one chain; on PostgreSQL a trigger also refuses UPDATE and DELETE on the table.
Bursts of failed logins or of reads by one actor are logged as warnings.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, func, select, text

from mailvoice.store.db import Db, from_db_time, to_db_time
from mailvoice.store.records import utcnow
from mailvoice.store.schema import audit

log = logging.getLogger(__name__)

Action = Literal[
    "message.listed",
    "message.shown",
    "audio.played",
    "audio.exported",
    "keys.rotated",
    "quarantine.retried",
    "mail.sent",
    "login.succeeded",
    "login.failed",
]
ACTIONS: frozenset[str] = frozenset(Action.__args__)  # type: ignore[attr-defined]
GENESIS = "0" * 64
_LOCK = 0x6D76617564697400  # "mvaudit\0": serialises appends across PostgreSQL sessions
BURST_WINDOW = timedelta(minutes=5)
BURSTS: dict[str, int] = {"login.failed": 5, "message.shown": 50, "message.listed": 50, "audio.played": 50}
"""Records of one action by one actor within BURST_WINDOW above which each further one logs a warning."""
_LIMIT = 255


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry of the trail."""

    seq: int
    at: datetime
    actor: str
    """Who: "cli:<os user>", "web:<client address>"."""
    action: str
    target: str
    """What, by reference: a message, quarantine or outbox id, a key id, a route; never content."""
    outcome: str
    prev: str
    hash: str

    def to_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """What `mailvoice audit --verify` found."""

    records: int
    head: str
    """The last record's hash: note it elsewhere to detect a later truncation of the whole tail."""
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers with an arbitrary uid)
        return "cli:?"


def record_hash(prev: str, seq: int, at: datetime, actor: str, action: str, target: str, outcome: str) -> str:
    stamp = to_db_time(at).strftime("%Y-%m-%dT%H:%M:%S.%f")
    fields = (prev, str(seq), stamp, actor, action, target, outcome)
    return hashlib.sha256("\x1f".join(fields).encode("utf-8")).hexdigest()


def _clean(value: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in value)[:_LIMIT]


def _row(row: Any) -> AuditRecord:
    return AuditRecord(
        int(row.seq), from_db_time(row.at), row.actor, row.action, row.target, row.outcome, row.prev, row.hash
    )


def append(conn: Connection, db: Db, actor: str, action: str, target: str, outcome: str) -> AuditRecord:
    """Add one record inside the caller's write transaction."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if db.engine.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    last = conn.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)).first()
    prev = str(last.hash) if last is not None else GENESIS
    seq = int(last.seq) + 1 if last is not None else 1
    if db.engine.dialect.name == "sqlite":  # never reuse the seq of a removed last record: leave the gap
        top = conn.execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")).scalar()
        seq = max(seq, int(top or 0) + 1)
    at = from_db_time(to_db_time(utcnow()))
    actor, target = _clean(actor), _clean(target)
    digest = record_hash(prev, seq, at, actor, action, target, outcome)
    conn.execute(
        audit.insert().values(
            seq=seq,
            at=to_db_time(at),
            actor=actor,
            action=action,
            target=target,
            outcome=outcome,
            prev=prev,
            hash=digest,
        )
    )
    return AuditRecord(seq, at, actor, action, target, outcome, prev, digest)


class AuditQueries:
    """Store methods behind the audit trail and `mailvoice audit`."""

    _db: Db

    def audit(self, action: str, target: str = "", *, actor: str | None = None, outcome: str = "ok") -> None:
        """Append one record (its own transaction); warns when the actor's records of it come in a burst."""
        who = actor if actor is not None else cli_actor()
        with self._db.write() as conn:
            append(conn, self._db, who, action, target, outcome)
            limit = BURSTS.get(action)
            if limit is None:
                return
            since = to_db_time(utcnow() - BURST_WINDOW)
            query = select(func.count()).where(
                audit.c.action == action, audit.c.actor == _clean(who), audit.c.at >= since
            )
            count = int(conn.execute(query).scalar() or 0)
        if count > limit:
            log.warning(
                "audit: %d %s records by %s within %d min (more than %d): check who is behind it",
                count,
                action,
                _clean(who),
                BURST_WINDOW.seconds // 60,
                limit,
            )

    def audit_records(self, since: datetime | None = None, limit: int | None = None) -> list[AuditRecord]:
        query = select(audit).order_by(audit.c.seq)
        if since is not None:
            query = query.where(audit.c.at >= to_db_time(since))
        if limit is not None:
            query = query.limit(limit)
        with self._db.read() as conn:
            return [_row(r) for r in conn.execute(query)]

    def audit_verify(self) -> AuditCheck:
        """Walk the whole chain: every hash recomputed, every link and every seq checked."""
        problems: list[str] = []
        prev, expected_seq, count = GENESIS, None, 0
        with self._db.read() as conn:
            for row in conn.execute(select(audit).order_by(audit.c.seq)).yield_per(1000):
                rec = _row(row)
                count += 1
                if expected_seq is not None and rec.seq != expected_seq:
                    problems.append(f"records {expected_seq}..{rec.seq - 1} are missing (removed)")
                if rec.prev != prev:
                    problems.append(f"record {rec.seq} does not follow the one before it (a record was removed)")
                again = record_hash(rec.prev, rec.seq, rec.at, rec.actor, rec.action, rec.target, rec.outcome)
                if again != rec.hash:
                    problems.append(f"record {rec.seq} was altered (its hash does not match its fields)")
                prev, expected_seq = rec.hash, rec.seq + 1
            if self._db.engine.dialect.name == "sqlite":
                # sqlite_sequence keeps the highest seq ever issued: a removed tail shows up here.
                top = conn.execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")).scalar()
                if top is not None and int(top) >= (expected_seq or 1):
                    problems.append(f"records {expected_seq or 1}..{int(top)} at the end are missing (removed)")
        return AuditCheck(count, prev, tuple(problems))
