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

from mailvoice.crashpoints import crashpoint, fault
from mailvoice.errors import (
    AudioBudgetError,
    AudioError,
    EngineError,
    MailvoiceError,
    MimeLimitError,
    PipelineError,
    Quarantine,
)
from mailvoice.logref import log_unexpected, where
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

Transcribe = Callable[[bytes, str, float], Transcript]
"""Decode + transcribe one audio part (runs the model in its own worker thread): data, a label naming the part
(never its filename: it reaches logs and error messages), and the seconds of audio the mail may still decode."""


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
    """Why parts were not transcribed, by reference only (part number, type, size): logged and stored in clear."""
    notes: list[str] = field(default_factory=list)
    """The same for the transcript mail (sealed in the outbox), naming each part by its filename."""
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
        log.debug("%s: processing, %d bytes", item.ref, item.size)
        ended = self._run_stages(work, STAGES)
        if ended is None:
            raise AssertionError("commit stage always ends the pipeline")  # pragma: no cover
        return ended

    def _run_stages(self, work: _Work, stages: Sequence[str]) -> Result | None:
        """Run these stages in order; the item's result when one of them ended it, else None (more stages follow).

        mailvoice's own errors (the store, a key, a setting) go up: nothing is wrong with the item, the runner retries
        it later. Any other exception is a bug or an input no stage foresaw: that item alone is quarantined (or
        parked), by type and place, never by message, and the run goes on.
        """
        stage = stages[0]
        try:
            for stage in stages:
                fault(stage, work.item.raw)
                getattr(self, f"_stage_{stage}")(work)
        except _Done as done:
            return done.result
        except Quarantine as q:
            return self._quarantine_or_park(work, q.reason)
        except MailvoiceError:
            raise
        except Exception as exc:
            log_unexpected(log, f"{work.item.ref} stage {stage}", exc)
            return self._quarantine_or_park(work, f"{type(exc).__name__} in the {stage} stage at {where(exc)}")
        return None

    def park(self, item: SourceItem, ctx: Context, exc: BaseException) -> Result:
        """Quarantine an item whose own quarantine failed: no parsing, no notice, only its reference and raw copy."""
        from mailvoice.store.records import content_hash, message_id_hash

        fault("park", item.raw)
        work = _Work(item=item, ctx=ctx)
        work.mid_hash = message_id_hash(None, item.raw)
        work.content_hash = content_hash([], item.raw)
        reason = f"{type(exc).__name__} at {where(exc)} while handling the item; parked unparsed"
        log.warning("%s: parked in quarantine (%s)", item.ref, type(exc).__name__)
        outcome = self._store.record_quarantined(self._ref(work), reason, item.raw)
        if outcome == "duplicate":
            return Result("duplicate", "quarantined by an earlier run")
        return Result("quarantined", reason)

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
            log.debug("%s: processing, %d bytes", item.ref, item.size)
            r = item.ref
            if r.uid is not None and (r.account, r.folder, r.uidvalidity, r.uid) in known:
                yield item, Result("duplicate", "already in the ledger")
                continue
            ended = self._run_stages(work, STAGES[:-1])
            if ended is not None:
                yield item, ended
                continue
            if not work.parts and not work.outgoing:
                pending.append(work)
                continue
            yield from flush()
            ended = self._run_stages(work, STAGES[-1:])
            if ended is None:
                raise AssertionError("commit stage always ends the pipeline")  # pragma: no cover
            yield item, ended
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

    def _quarantine_or_park(self, work: _Work, reason: str) -> Result:
        """Quarantine the item; if even that fails unexpectedly, park it unparsed (never leave it to loop)."""
        try:
            return self._quarantine(work, reason)
        except MailvoiceError:
            raise
        except Exception as exc:
            log_unexpected(log, f"{work.item.ref}: quarantine failed", exc)
            try:
                return self.park(work.item, work.ctx, exc)
            except MailvoiceError:
                raise
            except Exception as again:
                log_unexpected(log, f"{work.item.ref}: parking failed", again)
                raise PipelineError(
                    f"{work.item.ref}: {type(again).__name__} while parking an item that failed with "
                    f"{type(exc).__name__}; it stays at the source and is retried after a backoff"
                ) from again

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
        audio = self._settings.audio
        left = audio.max_mail_duration
        for number, part in enumerate(w.parts, 1):
            ref = f"part {number} ({part.content_type}, {len(part.data)} bytes)"
            if number > audio.max_parts_per_mail:
                why = f"over the per-mail budget of {audio.max_parts_per_mail} audio parts (audio.max_parts_per_mail)"
            elif not part.sniffed_ok:
                why = f"declared {part.content_type} but the bytes are not a supported audio format"
            elif left <= 0:
                why = f"over the per-mail budget of {audio.max_mail_duration:.0f} s of audio (audio.max_mail_duration)"
            else:
                try:
                    transcript = self._asr(part.data, f"part {number}", left)
                except AudioBudgetError as exc:
                    if not exc.declared:
                        left = 0.0  # what it decoded before the refusal used the rest of the budget
                    why = str(exc).removeprefix(f"'part {number}': ")
                except (AudioError, EngineError) as exc:
                    why = str(exc).removeprefix(f"'part {number}': ")
                else:
                    left -= transcript.duration
                    w.transcripts.append((part, transcript))
                    continue
            w.failures.append(f"{ref}: {why}")
            w.notes.append(f"{part.filename}: {why}")
        if w.parts and not w.transcripts:
            raise Quarantine("no audio part could be transcribed: " + "; ".join(w.failures))
        crashpoint("transcribed")

    def _stage_compose(self, w: _Work) -> None:
        from mailvoice.compose import compose_text_record, compose_voicemail

        assert w.parsed is not None
        if not w.parts:
            w.messages.append(compose_text_record(w.parsed, w.ctx, self._source_label(w)))
            return
        messages, out = compose_voicemail(
            self._settings, w.parsed, w.ctx, w.transcripts, notes=tuple(w.notes), source=self._source_label(w)
        )
        w.messages.extend(messages)
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
        detail = "; ".join(w.notes) or reason  # the notice is sealed in the outbox: it may name the files
        try:
            return compose_quarantine_notice(
                self._settings, w.parsed, w.ctx, detail, had_audio=bool(w.parts), source=self._source_label(w)
            )
        except Exception as exc:  # a notice must never stop the quarantine itself
            log_unexpected(log, f"{self._source_label(w)}: quarantine notice", exc)
            return None

    def _quarantine(self, w: _Work, reason: str) -> Result:
        from mailvoice.store.records import message_id_hash

        if not w.mid_hash:
            mid = w.parsed.message_id_normalized if w.parsed is not None else None
            w.mid_hash = message_id_hash(mid, w.item.raw)
        log.warning("quarantined %s: %s", self._source_label(w), reason)
        fault("quarantine", w.item.raw)
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
