"""The poll side: drain a mailbox under its lease, take each new voicemail in as a sealed work item, acknowledge.

Mail without audio (and mail the pipeline refuses) is finished right here by the ordinary Pipeline: it needs no
model. A voicemail is stored sealed with its ledger row 'queued' in one transaction, its process task enqueued,
and only then acknowledged at the source. A crash before the acknowledgement re-fetches it next time and finds
it in the ledger; a crash before the enqueue leaves it queued, and the sweep enqueues it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailvoice.crashpoints import crashpoint
from mailvoice.errors import MimeLimitError

if TYPE_CHECKING:
    from mailvoice.mail.source import MailSource, SourceItem
    from mailvoice.pipeline import Context, Pipeline
    from mailvoice.store import Store

log = logging.getLogger(__name__)

BATCH = 50


def admit(store: Store, pipeline: Pipeline, item: SourceItem, ctx: Context) -> str | None:
    """The work item id of a new voicemail to transcribe; None when the item is already done (or known)."""
    from mailvoice.mail.mime import parse_message
    from mailvoice.mail.voicemail import find_audio_parts
    from mailvoice.pipeline import is_own_mail
    from mailvoice.store.records import SourceRef, content_hash, message_id_hash

    r = item.ref
    if r.uid is not None and store.seen(r.account, r.folder, r.uidvalidity, r.uid):
        return None
    if item.too_large:
        pipeline.process(item, ctx)  # quarantines it
        return None
    try:
        parsed = parse_message(item.raw)
    except MimeLimitError:
        pipeline.process(item, ctx)  # quarantines it, with the parser's reason
        return None
    parts = [] if is_own_mail(item.raw) else find_audio_parts(parsed)
    if not parts:
        result = pipeline.process(item, ctx)  # a text record: no model needed
        log.info("%s: %s %s", r, result.status, result.detail)
        return None
    ref = SourceRef(
        account=r.account,
        folder=r.folder,
        message_id_hash=message_id_hash(parsed.message_id_normalized, item.raw),
        content_hash=content_hash([p.data for p in parts], item.raw),
        uidvalidity=r.uidvalidity,
        uid=r.uid,
        key=r.key,
    )
    wid = store.record_queued(ref, item.raw, item.size, item.internal_date)
    log.info("%s: %s", r, f"queued as {wid}" if wid else "already known")
    return wid


def drain(store: Store, pipeline: Pipeline, source: MailSource, ctx: Context, enqueue: Callable[[str], None]) -> int:
    """Take in everything new in one (connected) source; returns how many items were acknowledged."""
    handled = 0
    while True:
        items = source.fetch_new(BATCH)
        if not items:
            return handled
        done = []
        try:
            for item in items:
                wid = admit(store, pipeline, item, ctx)
                if wid is not None:
                    enqueue(wid)
                done.append(item.ref)
        finally:
            if done:
                source.acknowledge_many(done)
                crashpoint("acknowledged")
                handled += len(done)
