"""IMAP source (imapclient, synchronous): new mail by UID cursor, IDLE or polling, acknowledge by keyword.

Facts this module is built around (see RELIABILITY.md):
- First contact baselines from UIDNEXT: old mail is not processed unless `since` is given.
- Dovecot answers `UID SEARCH UID n:*` with the last message when nothing is new: uids <= cursor are dropped.
- On a UIDVALIDITY change, or when UIDNEXT falls below the cursor (renumbered), the folder is rescanned:
  every message without the done keyword that arrived since the baseline; the runner's ledger drops repeats.
- imapclient has no socket timeout by default and passes CR/LF in quoted arguments: timeouts are always set, and
  only validated folder names from the config reach a command.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mailvoice.backoff import Backoff, retry
from mailvoice.config import AccountSettings, is_loopback, read_secret
from mailvoice.errors import ConfigError, SourceError
from mailvoice.mail.source import Cursor, CursorStore, SourceItem, SourceRef

log = logging.getLogger(__name__)

DONE_KEYWORD = "$MailvoiceDone"
REARM_IDLE_S = 290.0
"""Leave and re-enter IDLE this often: far below the 29-minute server limit and NAT idle timeouts."""
IDLE_SLICE_S = 1.0
BODY_BATCH = 20
BODY_BATCH_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
BASELINE_SLACK_S = 15 * 60.0
"""A rescan also takes mail this much older than the baseline: INTERNALDATE is the server's clock (whole
seconds), the baseline ours; losing new mail to clock skew is worse than a few old messages more."""
_FORBIDDEN = frozenset('\r\n\0"\\')


def validate_mailbox_name(name: str, key: str) -> str:
    """A folder name from the config, checked so it cannot smuggle a command into IMAP."""
    if not name or len(name) > 512 or any(c in _FORBIDDEN or ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise ConfigError(
            f"setting {key} = {name!r} is invalid: expected a folder name without quotes, "
            "backslashes or control characters (CR, LF, NUL)"
        )
    return name


def _no_ctl(value: str, what: str) -> str:
    if any(c in "\r\n\0" for c in value):
        raise ConfigError(f"{what} contains CR, LF or NUL; fix the setting")
    return value


@dataclass
class _Folder:
    """Session state of one folder; rebuilt from the persisted cursor at each connect."""

    name: str
    uidvalidity: int
    seen_upto: int
    """Highest UID handed out (or baselined) in this session."""
    baseline: float
    pending: set[int] = field(default_factory=set)
    """Handed out, not yet acknowledged: the persisted cursor stays below the smallest."""
    queue: list[int] = field(default_factory=list)
    """Rescan UIDs still to hand out, ascending."""
    rescan: bool = False
    keywords_ok: bool = True
    saved: Cursor | None = None


class ImapSource:
    """One IMAP account (several folders) as a MailSource; use it from one thread only."""

    def __init__(
        self,
        settings: AccountSettings,
        cursors: CursorStore,
        *,
        since: date | None = None,
        backlog: date | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        stop: threading.Event | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.port = settings.port or (993 if settings.tls == "implicit" else 143)
        self.where = f"IMAP account {settings.name!r} ({settings.host}:{self.port})"
        self.folders = tuple(validate_mailbox_name(f, f"accounts.{settings.name}.folders") for f in settings.folders)
        if settings.after == "move":
            validate_mailbox_name(settings.move_to, f"accounts.{settings.name}.move_to")
        _no_ctl(settings.username, f"accounts.{settings.name}.username")
        if settings.tls == "none":
            if not settings.allow_plaintext:
                raise ConfigError(
                    f"{self.where}: tls = 'none' would send the password in clear; use tls = "
                    "'implicit' or 'starttls', or set allow_plaintext = true for a loopback host"
                )
            if not is_loopback(settings.host):
                raise ConfigError(
                    f"{self.where}: allow_plaintext is only honoured for a loopback host "
                    "(localhost, 127.0.0.1, ::1); use tls = 'implicit' or 'starttls'"
                )
        if settings.ca_file is not None and not settings.ca_file.is_file():
            raise ConfigError(f"{self.where}: ca_file {settings.ca_file} does not exist")
        self.cursors = cursors
        self.since = since
        """Process mail since this day: on first contact, and (reaching back) when a cursor exists."""
        self.backlog = backlog
        """Like since, but on first contact only (general.backlog)."""
        self.old_mail: dict[str, int] = {}
        """Folder -> messages left as old mail at first contact in this session (for the run summary)."""
        self.max_message_bytes = max_message_bytes
        self.stop = stop or threading.Event()
        self.backoff = backoff or Backoff(base=1.0, cap=300.0)
        self._client: Any = None
        self._caps: set[bytes] = set()
        self._selected: str | None = None
        self._states: dict[str, _Folder] = {}
        self._warned: set[str] = set()

    # ---------------------------------------------------------------- connection

    def _tls_context(self) -> ssl.SSLContext:
        cafile = str(self.settings.ca_file) if self.settings.ca_file else None
        return ssl.create_default_context(cafile=cafile)

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn library and socket errors into SourceError naming the account and host:port."""
        from imapclient.exceptions import IMAPClientError, LoginError

        try:
            yield
        except (SourceError, ConfigError):
            raise
        except ssl.SSLCertVerificationError as exc:
            ca = f"ca_file {self.settings.ca_file}" if self.settings.ca_file else "the system CAs (no ca_file set)"
            raise SourceError(
                f"{self.where}: TLS certificate verification failed against {ca}: "
                f"{exc.verify_message}; set ca_file to the CA that signed the server "
                "certificate"
            ) from exc
        except LoginError as exc:
            where = self.settings.password_env or self.settings.password_file
            raise SourceError(
                f"{self.where}: login as {self.settings.username!r} refused ({exc}); check the password in {where}"
            ) from exc
        except (IMAPClientError, OSError, EOFError) as exc:
            raise SourceError(f"{self.where}: {action} failed: {exc or type(exc).__name__}") from exc

    def connect(self) -> None:
        """Connect, (STARTTLS,) log in and select each folder; one attempt. Raises SourceError or ConfigError."""
        self.login()
        for folder in self.folders:  # first contact baselines here: what is there now is old mail
            self._sync(folder)

    def examine(self) -> dict[str, int]:
        """Log in and EXAMINE each folder (read-only, no cursor touched): folder -> messages in it (doctor)."""
        self.login()
        found: dict[str, int] = {}
        for folder in self.folders:
            with self._errors(f"EXAMINE {folder}"):
                found[folder] = int(self.client.select_folder(folder, readonly=True).get(b"EXISTS", 0))
        return found

    def detach(self) -> Any:
        """Hand the logged-in client over to the caller (who logs it out); this source forgets it."""
        client, self._client = self.client, None
        return client

    def login(self) -> None:
        """Connect, STARTTLS when configured, and log in; touches no folder."""
        from imapclient import IMAPClient, SocketTimeout
        from imapclient.exceptions import CapabilityError

        self.close()
        s = self.settings
        password = _no_ctl(read_secret(self.where, s.password_env, s.password_file), f"{self.where}: password")
        ctx = self._tls_context() if s.tls != "none" else None
        with self._errors("connect"):
            client = IMAPClient(
                s.host,
                self.port,
                ssl=s.tls == "implicit",
                ssl_context=ctx,
                timeout=SocketTimeout(connect=s.timeout, read=s.timeout),
            )
        try:
            with self._errors("log in"):
                client.normalise_times = False
                if s.tls == "starttls":
                    if b"STARTTLS" not in client.capabilities():
                        raise SourceError(
                            f"{self.where}: the server offers no STARTTLS; use tls = 'implicit' "
                            "(usually port 993) or fix the server"
                        ) from CapabilityError("STARTTLS")
                    client.starttls(ssl_context=ctx)
                client.login(s.username, password)
                self._caps = set(client.capabilities())
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        self._client = client
        log.info("%s: connected (%s)", self.where, s.tls)

    def reconnect(self, max_attempts: int | None = None) -> None:
        """Reconnect with exponential backoff and full jitter; permanent errors (login, certificate) re-raise."""

        def note(exc: BaseException, delay: float) -> None:
            log.warning("%s: %s; retrying in %.1f s", self.where, exc, delay)

        retry(
            self.connect,
            transient=is_transient,
            backoff=self.backoff,
            stop=self.stop,
            max_attempts=max_attempts,
            on_retry=note,
        )

    def close(self) -> None:
        client, self._client = self._client, None
        self._selected = None
        self._states.clear()  # unacknowledged items come back next session: nothing is lost
        if client is None:
            return
        try:
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise SourceError(f"{self.where}: not connected (call connect() or reconnect())")
        return self._client

    # ---------------------------------------------------------------- folder state

    def _select(self, folder: str) -> dict[bytes, Any]:
        with self._errors(f"SELECT {folder}"):
            sel: dict[bytes, Any] = self.client.select_folder(folder)
            if b"UIDNEXT" not in sel or b"UIDVALIDITY" not in sel:
                sel.update(self.client.folder_status(folder, ["UIDNEXT", "UIDVALIDITY"]))
        self._selected = folder
        return sel

    def _sync(self, folder: str) -> tuple[_Folder, int]:
        """Select the folder and reconcile the session state with UIDVALIDITY/UIDNEXT; returns it and UIDNEXT."""
        sel = self._select(folder)
        validity, uidnext = int(sel[b"UIDVALIDITY"]), int(sel[b"UIDNEXT"])
        perm = sel.get(b"PERMANENTFLAGS", ())
        keywords_ok = b"\\*" in perm or DONE_KEYWORD.encode() in perm
        st = self._states.get(folder)
        if st is None:
            saved = self.cursors.get(self.name, folder)
            if saved is None:
                st = self._baseline(folder, validity, uidnext, int(sel.get(b"EXISTS", 0)))
            elif saved.uidvalidity == validity and saved.last_uid < uidnext:
                st = _Folder(folder, validity, saved.last_uid, saved.baseline, saved=saved)
                if self.since is not None and _day_start(self.since) < saved.baseline:
                    self._reach_back(st, self.since)
            else:
                st = self._rescan(folder, validity, uidnext, saved.baseline, saved)
        elif st.uidvalidity != validity or uidnext - 1 < st.seen_upto:
            st = self._rescan(folder, validity, uidnext, st.baseline, st.saved)
        st.keywords_ok = keywords_ok
        self._states[folder] = st
        return st, uidnext

    def _baseline(self, folder: str, validity: int, uidnext: int, exists: int) -> _Folder:
        since = self.since or self.backlog
        if since is None:
            st = _Folder(folder, validity, uidnext - 1, time.time())
            left = exists
        else:
            with self._errors("SEARCH SINCE"):
                uids = [int(u) for u in self.client.search(["SINCE", since])]
            # Handed out like a rescan (INTERNALDATE checked again: SINCE is day-granular, UIDs need not follow
            # arrival dates); the cursor is persisted once they are all acknowledged.
            st = _Folder(folder, validity, uidnext - 1, _day_start(since), queue=sorted(uids), rescan=True)
            left = max(0, exists - len(uids))
            log.info("%s/%s: first contact, %d message(s) since %s", self.where, folder, len(uids), since)
        self.old_mail[folder] = left
        if left:
            log.warning(
                "%s/%s: first contact: %d older message(s) left as old mail, not transcribed; to process them "
                'run `mailvoice run --once --since YYYY-MM-DD`, or set general.backlog (e.g. "7d") before a '
                "first run",
                self.where,
                folder,
                left,
            )
        else:
            log.info("%s/%s: first contact, baseline at UIDNEXT %d", self.where, folder, uidnext)
        self._save(st, force=True)
        return st

    def _reach_back(self, st: _Folder, since: date) -> None:
        """An explicit --since older than the baseline: hand out what arrived since then and is not marked done
        (the ledger drops anything processed without the keyword)."""
        with self._errors("SEARCH SINCE"):
            uids = [int(u) for u in self.client.search(["SINCE", since, "UNKEYWORD", DONE_KEYWORD])]
        older = sorted(u for u in uids if u <= st.seen_upto)
        st.baseline = _day_start(since)
        if older:
            st.queue, st.rescan = older, True
        log.info("%s/%s: --since %s reaches back over %d message(s)", self.where, st.name, since, len(older))
        self._save(st, force=True)

    def _rescan(self, folder: str, validity: int, uidnext: int, baseline: float, saved: Cursor | None) -> _Folder:
        # (UIDVALIDITY, UID) no longer names the same messages: take everything not marked done that arrived
        # since the baseline; SINCE is day-granular, so INTERNALDATE is checked again when fetching.
        since = datetime.fromtimestamp(baseline, UTC).date() - timedelta(days=1)
        with self._errors("SEARCH UNKEYWORD"):
            uids = sorted(int(u) for u in self.client.search(["UNKEYWORD", DONE_KEYWORD, "SINCE", since]))
        log.warning(
            "%s/%s: UIDVALIDITY or UIDs changed (now %d, UIDNEXT %d): rescanning %d message(s) "
            "not marked done; the ledger drops repeats",
            self.where,
            folder,
            validity,
            uidnext,
            len(uids),
        )
        return _Folder(folder, validity, uidnext - 1, baseline, queue=uids, rescan=True, saved=saved)

    def _save(self, st: _Folder, *, force: bool = False) -> None:
        """Persist the cursor below every unacknowledged UID (a rescan persists only once it is drained)."""
        if st.rescan:
            if st.queue or st.pending:
                return
            st.rescan = False
        last = min(st.pending) - 1 if st.pending else st.seen_upto
        cursor = Cursor(st.uidvalidity, last, st.baseline)
        if force or st.saved is None or (st.saved.uidvalidity, st.saved.last_uid) != (st.uidvalidity, last):
            self.cursors.set(self.name, st.name, cursor)
            st.saved = cursor

    # ---------------------------------------------------------------- fetching

    def fetch_new(self, limit: int = 50) -> list[SourceItem]:
        items: list[SourceItem] = []
        for folder in self.folders:
            room = limit - len(items)
            if room <= 0:
                break
            st, uidnext = self._sync(folder)
            if st.queue:
                uids = st.queue[:room]
                del st.queue[:room]
                items.extend(self._fetch(st, uids, check_date=True))
            else:
                with self._errors("UID SEARCH"):
                    found = self.client.search(["UID", f"{st.seen_upto + 1}:*"])
                # Dovecot returns the last message again when nothing is new.
                new = sorted(int(u) for u in found if int(u) > st.seen_upto)
                uids = new[:room]
                if uids:
                    items.extend(self._fetch(st, uids, check_date=False))
                    st.seen_upto = uids[-1]
                if len(uids) == len(new):
                    # Every UID below UIDNEXT (as of SELECT) that still exists was found: the gap is expunged
                    # mail, so skip it, or the poller would see "UIDNEXT moved" forever.
                    st.seen_upto = max(st.seen_upto, uidnext - 1)
            self._save(st)
        return items

    def _fetch(self, st: _Folder, uids: list[int], *, check_date: bool) -> list[SourceItem]:
        with self._errors("FETCH"):
            meta = self.client.fetch(uids, ["FLAGS", "RFC822.SIZE", "INTERNALDATE"])
        out: dict[int, SourceItem] = {}
        want: list[tuple[int, int, datetime | None]] = []
        for uid in uids:
            m = meta.get(uid)
            if m is None:
                continue  # expunged meanwhile
            flags = {f.decode() if isinstance(f, bytes) else str(f) for f in m.get(b"FLAGS", ())}
            if DONE_KEYWORD in flags:
                continue  # done in an earlier session (the keyword outlives UID changes)
            when = m.get(b"INTERNALDATE")
            if check_date and isinstance(when, datetime) and when.timestamp() < st.baseline - BASELINE_SLACK_S:
                continue  # old mail found by a rescan
            size = int(m.get(b"RFC822.SIZE", 0))
            if size > self.max_message_bytes:
                log.warning(
                    "%s/%s uid %d: %d bytes is over the %d-byte limit; not fetched",
                    self.where,
                    st.name,
                    uid,
                    size,
                    self.max_message_bytes,
                )
                out[uid] = SourceItem(self._ref(st, uid), b"", size, when, too_large=True)
            else:
                want.append((uid, size, when))
        for batch in _batches(want):
            with self._errors("FETCH BODY.PEEK[]"):
                bodies = self.client.fetch([u for u, _, _ in batch], ["BODY.PEEK[]"])
            for uid, size, when in batch:
                raw = bodies.get(uid, {}).get(b"BODY[]")
                if isinstance(raw, bytes):
                    out[uid] = SourceItem(self._ref(st, uid), raw, size, when)
        st.pending.update(out)
        return [out[u] for u in sorted(out)]

    def _ref(self, st: _Folder, uid: int) -> SourceRef:
        return SourceRef(self.name, st.name, st.uidvalidity, uid)

    # ---------------------------------------------------------------- acknowledging

    def acknowledge(self, ref: SourceRef) -> None:
        self.acknowledge_many([ref])

    def acknowledge_many(self, refs: list[SourceRef]) -> None:
        """Acknowledge a batch: one STORE (and one cursor save) per folder instead of one per message."""
        by_folder: dict[str, list[SourceRef]] = {}
        for ref in refs:
            if ref.account != self.name or ref.uid is None:
                raise ValueError(f"{ref} does not belong to {self.where}")
            by_folder.setdefault(ref.folder, []).append(ref)
        for folder, group in by_folder.items():
            self._acknowledge_folder(folder, group)

    def _acknowledge_folder(self, folder: str, refs: list[SourceRef]) -> None:
        st = self._states.get(folder)
        if st is None or self._selected != folder:
            # UIDVALIDITY cannot change while a folder stays selected; after a new SELECT it is checked again.
            st, _ = self._sync(folder)
        stale = [r for r in refs if r.uidvalidity != st.uidvalidity]
        for ref in stale:
            log.warning(
                "%s: %s: UIDVALIDITY changed since the fetch; not marked at the source (the ledger has it)",
                self.where,
                ref,
            )
        uid = [r.uid for r in refs if r.uidvalidity == st.uidvalidity and r.uid is not None]
        if not uid:
            return
        s, ref = self.settings, refs[0]
        with self._errors(f"acknowledge {ref}" + (f" and {len(uid) - 1} more" if len(uid) > 1 else "")):
            if s.mark_done == "keyword":
                if st.keywords_ok:
                    self.client.add_flags(uid, [DONE_KEYWORD], silent=True)
                else:
                    self._warn_once(
                        f"kw:{folder}",
                        "%s/%s: the server does not allow keywords; relying on the ledger only",
                        self.where,
                        folder,
                    )
            elif s.mark_done == "seen":
                self.client.add_flags(uid, [b"\\Seen"], silent=True)
            if s.after == "move":
                if b"MOVE" in self._caps:
                    self.client.move(uid, s.move_to)
                else:
                    self.client.copy(uid, s.move_to)
                    self._delete(uid)
            elif s.after == "delete":
                self._delete(uid)
        st.pending.difference_update(uid)
        self._save(st)

    def _delete(self, uid: list[int]) -> None:
        self.client.add_flags(uid, [b"\\Deleted"], silent=True)
        if b"UIDPLUS" in self._caps:
            self.client.uid_expunge(uid)  # only this message, never the user's other \Deleted mail
        else:
            self._warn_once(
                "uidplus",
                "%s: no UIDPLUS; messages stay flagged \\Deleted until the user's client expunges",
                self.where,
            )

    def _warn_once(self, key: str, msg: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)

    # ---------------------------------------------------------------- waiting

    def uses_idle(self) -> bool:
        """IDLE only for a single folder on a server that offers it; otherwise STATUS polling."""
        return self.settings.idle and len(self.folders) == 1 and b"IDLE" in self._caps

    def wait_for_change(self, timeout: float) -> bool:
        self.client  # noqa: B018 - raises when not connected
        if self.uses_idle():
            return self._idle_wait(timeout)
        return self._poll_wait(timeout)

    def _idle_wait(self, timeout: float) -> bool:
        folder = self.folders[0]
        st = self._states.get(folder)
        if st is None or st.queue:
            return True  # never fetched, or a rescan is still draining: fetch first
        if self._selected != folder:
            self._select(folder)
        deadline = time.monotonic() + timeout
        with self._errors("IDLE"):
            while not self.stop.is_set() and time.monotonic() < deadline:
                if self._arrived_before_idle(st) or self._idle_once(deadline):
                    return True
        return False

    def _arrived_before_idle(self, st: _Folder) -> bool:
        """Mail that came since the last fetch or between re-arms: Dovecot does not announce it when IDLE starts,
        and SEARCH does not see it before the session syncs; NOOP syncs (and probes the link)."""
        _, resps = self.client.noop()
        if any(_is_new_mail(r) for r in resps):
            return True
        return any(int(u) > st.seen_upto for u in self.client.search(["UID", f"{st.seen_upto + 1}:*"]))

    def _idle_once(self, deadline: float) -> bool:
        """One IDLE command, left after REARM_IDLE_S, at the deadline, on news, or on a suspected EOF."""
        changed = False
        self.client.idle()
        armed = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= deadline or now - armed >= REARM_IDLE_S:
                break
            step = min(IDLE_SLICE_S, deadline - now)
            resps = self.client.idle_check(timeout=step)
            if any(_is_new_mail(r) for r in resps):
                changed = True
                break
            if not resps and time.monotonic() - now < step / 2:
                break  # readable but nothing parsed: maybe EOF; idle_done() tells
        _, resps = self.client.idle_done()
        return changed or any(_is_new_mail(r) for r in resps)

    def _poll_wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            step = min(self.settings.poll_interval, deadline - time.monotonic())
            if step > 0 and self.stop.wait(step):
                return False
            with self._errors("NOOP"):
                self.client.noop()  # probes a half-dead link
                for folder in self.folders:
                    st = self._states.get(folder)
                    if st is None:
                        return True
                    status = self.client.folder_status(folder, ["UIDNEXT", "UIDVALIDITY"])
                    if (
                        int(status[b"UIDVALIDITY"]) != st.uidvalidity
                        or int(status[b"UIDNEXT"]) - 1 != st.seen_upto
                        or st.queue
                    ):
                        return True
            if time.monotonic() >= deadline:
                return False


def _day_start(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _is_new_mail(resp: Any) -> bool:
    return isinstance(resp, tuple) and len(resp) >= 2 and resp[1] in (b"EXISTS", b"RECENT")


def _batches(want: list[tuple[int, int, datetime | None]]) -> Iterator[list[tuple[int, int, datetime | None]]]:
    """Body fetches in groups bounded by count and bytes, so memory stays flat on a burst."""
    batch: list[tuple[int, int, datetime | None]] = []
    total = 0
    for entry in want:
        if batch and (len(batch) >= BODY_BATCH or total + entry[1] > BODY_BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(entry)
        total += entry[1]
    if batch:
        yield batch


def is_transient(exc: BaseException) -> bool:
    """Connection trouble is worth retrying; bad credentials, certificates or settings are not."""
    from imapclient.exceptions import CapabilityError, LoginError

    if isinstance(exc, ConfigError):
        return False
    return not isinstance(exc.__cause__, LoginError | CapabilityError | ssl.SSLCertVerificationError)


def open_client(settings: AccountSettings) -> Any:
    """A logged-in IMAPClient for one-off commands (APPEND to Drafts or Sent), with the source's TLS, CA file,
    timeout, secret and error rules; the caller logs it out."""
    from mailvoice.mail.source import MemoryCursorStore

    source = ImapSource(settings, MemoryCursorStore())
    source.login()
    return source.detach()
