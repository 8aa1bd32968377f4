"""One source item through the stages, exactly once.

The stages, in order (the flow is this tuple; each is a method below):

    seen -> parse -> find_audio -> seen_content -> transcribe -> compose -> commit

Only `commit` has an effect: one store transaction holding the ledger row, the sealed message(s) and the sealed
outbox mail(s). The runner acknowledges the item at its source only after `process` returned, so a crash anywhere
before re-processes the item and a crash after finds it in the ledger. A Quarantine raised by any stage parks the
item (sealed raw copy + reason) in the same kind of transaction; the rest of the mailbox goes on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from mailvoice.crashpoints import crashpoint
from mailvoice.errors import AudioError, EngineError, MimeLimitError, Quarantine
from mailvoice.types import Transcript

if TYPE_CHECKING:
    from mailvoice.config import Settings
    from mailvoice.mail.mime import ParsedMail
    from mailvoice.mail.source import SourceItem
    from mailvoice.mail.voicemail import AudioPart
    from mailvoice.store import Store
    from mailvoice.store.records import NewMessage, NewOutgoing
    from mailvoice.store.records import SourceRef as StoreRef

log = logging.getLogger(__name__)

STAGES = ("seen", "parse", "find_audio", "seen_content", "transcribe", "compose", "commit")

Transcribe = Callable[[bytes, str], Transcript]
"""Decode + transcribe one audio part (runs the model in its own worker thread)."""


@dataclass(frozen=True, slots=True)
class Context:
    """Per-source facts the stages need."""

    account: str
    address: str
    """The mailbox owner's address (From of our mails when no SMTP sender is set)."""
    recipients: tuple[str, ...]
    """Where transcripts go."""


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one item; the runner acknowledges it at the source unless status is 'failed'."""

    status: Literal["delivered", "text", "duplicate", "quarantined"]
    detail: str = ""
    message_ids: tuple[str, ...] = ()


@dataclass
class _Work:
    item: SourceItem
    ctx: Context
    parsed: ParsedMail | None = None
    parts: list[AudioPart] = field(default_factory=list)
    mid_hash: str = ""
    content_hash: str = ""
    transcripts: list[tuple[AudioPart, Transcript]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    messages: list[NewMessage] = field(default_factory=list)
    outgoing: list[NewOutgoing] = field(default_factory=list)
    retry_of: str | None = None
    """Quarantine id when `mailvoice quarantine retry` re-runs a parked item."""
    work_id: str | None = None
    """Work item id when a scaled-out worker processes an item the poller queued (mailvoice.scale)."""
    batched: bool = False
    """In a `process_many` batch: the ledger was asked for the whole batch at once, and a text record is checked
    against the ledger (place and content) inside the batch's commit instead of on its own."""


_OWN = re.compile(rb"^x-mailvoice:[ \t]*(transcript|notice|summary|voice)", re.IGNORECASE | re.MULTILINE)


def is_own_mail(raw: bytes) -> bool:
    """A mail mailvoice generated (it may land in a watched folder): never transcribe it again."""
    head = re.split(rb"\r?\n\r?\n", raw[:65536], maxsplit=1)[0]
    return _OWN.search(head) is not None


class _Done(Exception):
    """Control flow: the item needs no further stage."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.status)
        self.result = result


class Pipeline:
    """Runs the stages for one item at a time; thread-safe as long as the store is."""

    def __init__(self, settings: Settings, store: Store, transcribe: Transcribe) -> None:
        self._settings = settings
        self._store = store
        self._asr = transcribe

    def process(
        self, item: SourceItem, ctx: Context, *, retry_of: str | None = None, work_id: str | None = None
    ) -> Result:
        """Run every stage; returns once the outcome is durably committed (or known to be a duplicate)."""
        work = _Work(item=item, ctx=ctx, retry_of=retry_of, work_id=work_id)
        try:
            for stage in STAGES:
                getattr(self, f"_stage_{stage}")(work)
        except _Done as done:
            return done.result
        except Quarantine as q:
            return self._quarantine(work, q.reason)
        raise AssertionError("commit stage always ends the pipeline")  # pragma: no cover

    def process_many(
        self, items: Sequence[SourceItem], ctx: Context, stop: Callable[[], bool] | None = None
    ) -> Iterator[tuple[SourceItem, Result]]:
        """Each item's outcome, in order, once durably committed; text records share one store transaction.

        A text record (no audio) waits after `compose` and is committed with the others in one transaction when a
        voicemail comes, at the end, or when ``stop()`` turns true (checked before each item; the rest is left for
        the next run). A result is yielded only after its commit, so the caller acknowledges only what is stored.
        """
        pending: list[_Work] = []
        known = self._known_uids(items)

        def flush() -> Iterator[tuple[SourceItem, Result]]:
            if not pending:
                return
            outcomes = self._store.record_processed_many([(self._ref(w), w.messages, w.outgoing) for w in pending])
            crashpoint("stored")
            for w, outcome in zip(pending, outcomes, strict=True):
                if outcome == "duplicate":
                    yield w.item, Result("duplicate", "recorded by an earlier or concurrent run")
                else:
                    yield w.item, Result("text", "; ".join(w.failures), tuple(m.id for m in w.messages))
            pending.clear()

        for item in items:
            if stop is not None and stop():
                break
            work = _Work(item=item, ctx=ctx, batched=True)
            r = item.ref
            if r.uid is not None and (r.account, r.folder, r.uidvalidity, r.uid) in known:
                yield item, Result("duplicate", "already in the ledger")
                continue
            try:
                for stage in STAGES[:-1]:
                    getattr(self, f"_stage_{stage}")(work)
                if not work.parts and not work.outgoing:
                    pending.append(work)
                    continue
                yield from flush()
                self._stage_commit(work)
            except _Done as done:
                yield item, done.result
            except Quarantine as q:
                yield item, self._quarantine(work, q.reason)
        yield from flush()

    def _known_uids(self, items: Sequence[SourceItem]) -> set[tuple[str, str, int, int]]:
        """(account, folder, uidvalidity, uid) of the batch's IMAP items the ledger has: one query per folder."""
        groups: dict[tuple[str, str, int], list[int]] = {}
        for i in items:
            r = i.ref
            if r.uid is not None:
                groups.setdefault((r.account, r.folder, r.uidvalidity), []).append(r.uid)
        known: set[tuple[str, str, int, int]] = set()
        for (account, folder, validity), uids in groups.items():
            known.update((account, folder, validity, u) for u in self._store.seen_uids(account, folder, validity, uids))
        return known

    # -- stages ---------------------------------------------------------------------------------------------------

    def _stage_seen(self, w: _Work) -> None:
        r = w.item.ref
        if w.retry_of is not None or w.work_id is not None:
            return  # the ledger row exists already (quarantined, or 'queued' by the poller)
        if w.batched and r.uid is not None:
            known = False  # asked for the whole batch in process_many
        else:
            known = (
                self._store.seen(r.account, r.folder, r.uidvalidity, r.uid)
                if r.uid is not None
                else self._store.seen_key(r.account, r.folder, r.key or "")
            )
        if known:
            raise _Done(Result("duplicate", "already in the ledger"))
        if w.item.too_large:
            raise Quarantine(f"message is {w.item.size} bytes, over the size limit")

    def _stage_parse(self, w: _Work) -> None:
        from mailvoice.mail.mime import parse_message

        crashpoint("fetched")
        try:
            w.parsed = parse_message(w.item.raw)
        except MimeLimitError as exc:
            raise Quarantine(f"refused by the MIME parser: {exc}") from exc

    def _stage_find_audio(self, w: _Work) -> None:
        from mailvoice.mail.voicemail import find_audio_parts

        assert w.parsed is not None
        if is_own_mail(w.item.raw):
            w.parts = []  # our own transcript mail landing in a watched folder: never transcribe it again
            return
        w.parts = find_audio_parts(w.parsed)

    def _stage_seen_content(self, w: _Work) -> None:
        from mailvoice.store.records import content_hash, message_id_hash

        assert w.parsed is not None
        w.mid_hash = message_id_hash(w.parsed.message_id_normalized, w.item.raw)
        w.content_hash = content_hash([p.data for p in w.parts], w.item.raw)
        fresh = w.retry_of is None and w.work_id is None
        in_batch_commit = w.batched and not w.parts  # record_processed_many checks the content in its transaction
        if fresh and not in_batch_commit and self._store.seen_content(w.ctx.account, w.mid_hash, w.content_hash):
            # Same mail under another UID (renumbered, UIDVALIDITY changed): nothing is sent twice.
            raise _Done(Result("duplicate", "same Message-ID and content already processed"))

    def _stage_transcribe(self, w: _Work) -> None:
        for part in w.parts:
            if not part.sniffed_ok:
                w.failures.append(
                    f"{part.filename}: declared {part.content_type} but the bytes are not a supported audio format"
                )
                continue
            try:
                w.transcripts.append((part, self._asr(part.data, part.filename)))
            except (AudioError, EngineError) as exc:
                w.failures.append(f"{part.filename}: {exc}")
        if w.parts and not w.transcripts:
            raise Quarantine("; ".join(w.failures))
        crashpoint("transcribed")

    def _stage_compose(self, w: _Work) -> None:
        from mailvoice.compose import compose_text_record, compose_voicemail

        assert w.parsed is not None
        if not w.parts:
            w.messages.append(compose_text_record(w.parsed, w.ctx, self._source_label(w)))
            return
        for part, transcript in w.transcripts:
            msg, out = compose_voicemail(
                self._settings, w.parsed, w.ctx, part, transcript, notes=tuple(w.failures), source=self._source_label(w)
            )
            w.messages.append(msg)
            if out is not None:
                w.outgoing.append(out)

    def _stage_commit(self, w: _Work) -> None:
        if w.retry_of is not None:
            outcome = self._store.record_retried(w.retry_of, w.messages, w.outgoing)
        elif w.work_id is not None:
            outcome = self._store.record_work_done(w.work_id, w.messages, w.outgoing)
        else:
            outcome = self._store.record_processed(self._ref(w), w.messages, w.outgoing)
        if outcome == "duplicate":
            raise _Done(Result("duplicate", "recorded by an earlier or concurrent run"))
        crashpoint("stored")
        status: Literal["delivered", "text"] = "delivered" if w.outgoing else "text"
        raise _Done(Result(status, "; ".join(w.failures), tuple(m.id for m in w.messages)))

    # -- helpers --------------------------------------------------------------------------------------------------

    def _ref(self, w: _Work) -> StoreRef:
        from mailvoice.store.records import SourceRef

        r = w.item.ref
        return SourceRef(
            account=r.account,
            folder=r.folder,
            message_id_hash=w.mid_hash or "-",
            content_hash=w.content_hash or "-",
            uidvalidity=r.uidvalidity,
            uid=r.uid,
            key=r.key,
        )

    @staticmethod
    def _source_label(w: _Work) -> str:
        r = w.item.ref
        where = f"uid {r.uid} (uidvalidity {r.uidvalidity})" if r.uid is not None else f"key {r.key}"
        return f"{r.account}/{r.folder} {where}"

    def _notice(self, w: _Work, reason: str) -> NewOutgoing | None:
        """The owner hears about a quarantined mail (never our own mail, which would loop)."""
        from mailvoice.compose import compose_quarantine_notice

        if is_own_mail(w.item.raw):
            return None
        try:
            return compose_quarantine_notice(
                self._settings, w.parsed, w.ctx, reason, had_audio=bool(w.parts), source=self._source_label(w)
            )
        except Exception:  # a notice must never stop the quarantine itself
            log.exception("%s: could not compose the quarantine notice", self._source_label(w))
            return None

    def _quarantine(self, w: _Work, reason: str) -> Result:
        from mailvoice.store.records import message_id_hash

        if not w.mid_hash:
            mid = w.parsed.message_id_normalized if w.parsed is not None else None
            w.mid_hash = message_id_hash(mid, w.item.raw)
        log.warning("quarantined %s: %s", self._source_label(w), reason)
        if w.retry_of is not None:
            self._store.quarantine_again(w.retry_of, reason)
            return Result("quarantined", reason)
        notice = self._notice(w, reason)
        notices = (notice,) if notice is not None else ()
        if w.work_id is not None:
            outcome = self._store.record_work_quarantined(w.work_id, self._ref(w), reason, w.item.raw, notices)
        else:
            outcome = self._store.record_quarantined(self._ref(w), reason, w.item.raw, notices)
        if outcome == "duplicate":
            return Result("duplicate", "quarantined by an earlier run")
        return Result("quarantined", reason)
