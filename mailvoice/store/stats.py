"""Counts for monitoring (`/metrics`): read from plain columns, nothing is decrypted."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from mailvoice.store.db import Db
from mailvoice.store.schema import ledger, outbox, quarantine


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """How much the store holds, by state."""

    ledger: dict[str, int]
    """Source items handled: "done" (processed) and "quarantined"."""
    quarantine: dict[str, int]
    """Quarantined items: "open", "retried", "resolved"."""
    outbox: dict[str, int]
    """Outgoing mail: "pending", "sending", "sent", "failed"."""


class StatsQueries:
    """Store methods behind the Prometheus metrics."""

    _db: Db

    def counts(self) -> StoreCounts:
        with self._db.read() as conn:
            found = [
                {str(state): int(n) for state, n in conn.execute(select(t.c.state, func.count()).group_by(t.c.state))}
                for t in (ledger, quarantine, outbox)
            ]
        return StoreCounts(*found)
