"""`mailvoice quarantine retry ID`: re-run a parked item from its sealed copy, without the source."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailvoice.errors import ConfigError

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.pipeline import Result
    from mailvoice.store import Store


async def retry_quarantined(settings: Settings, store: Store, ident: str) -> Result:
    """Process the quarantined mail again; on success it is recorded and its transcript sent."""
    from mailvoice.mail.source import SourceItem, SourceRef
    from mailvoice.runner import Runner, contexts

    q = store.get_quarantined(ident)
    ctx = contexts(settings).get(q.account)
    if ctx is None:
        raise ConfigError(f"quarantine {q.id}: source {q.account!r} is no longer configured; add it back to retry")
    item = SourceItem(
        ref=SourceRef(q.account, q.folder, q.uidvalidity, q.uid, q.key), raw=q.raw, size=len(q.raw), internal_date=None
    )
    runner = Runner(settings, store)
    try:
        result = runner.pipeline.process(item, ctx, retry_of=q.id)
        await runner.outbox.flush()
    finally:
        runner.transcriber.close()
    return result
