"""Maildir source: a folder kept by mbsync/offlineimap, local delivery, or mailvoice's demo mailbox.

How "done" is recorded, and why: Maildir has no UIDs and only six standard flags (P R S T D F), none of which means
"processed by a bot" (S would tell the user they read it). Acknowledging moves the file to cur/ and adds a lowercase
info letter, the Dovecot way of storing keywords (`:2,<flags>`, letters kept sorted):
- if the folder's `dovecot-keywords` file maps `$MailvoiceDone` to a letter, that letter (so IMAP clients of a
  Dovecot serving the same folder see the same keyword our IMAP source sets);
- otherwise 'z' (Dovecot shows it as the keyword `unknown-25` and keeps it), unless 'z' already names another
  keyword there: then nothing is marked and the ledger alone remembers.
Sync tools that drop unknown letters make us read those messages again; the runner's ledger drops them. Mail that
arrived before the first run (the baseline, from the delivery time in the unique name) is old and is not processed
unless `since` is given. User mail is never deleted, and the S (seen) flag is never touched.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from mailvoice.config import MaildirSettings
from mailvoice.errors import SourceError
from mailvoice.mail.source import Cursor, CursorStore, SourceItem, SourceRef

log = logging.getLogger(__name__)

DEFAULT_DONE_LETTER = "z"
DONE_KEYWORD = "$MailvoiceDone"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_SUBDIRS = ("new", "cur")


@dataclass(frozen=True)
class _Entry:
    path: Path
    key: str
    flags: str
    delivered: float


def split_name(filename: str) -> tuple[str, str]:
    """(unique key, flags) of a Maildir file name: `KEY:2,FLAGS`, or just `KEY` in new/."""
    key, sep, flags = filename.partition(":2,")
    return key, flags if sep else ""


def done_letter(folder: Path) -> str | None:
    """The info letter that marks done in this folder, or None when 'z' is taken by a user keyword."""
    keywords = folder / "dovecot-keywords"
    taken: dict[int, str] = {}
    try:
        for line in keywords.read_text(encoding="utf-8", errors="replace").splitlines():
            idx, _, name = line.strip().partition(" ")
            if idx.isdigit() and name:
                taken[int(idx)] = name
    except FileNotFoundError:
        return DEFAULT_DONE_LETTER
    except OSError as exc:
        raise SourceError(f"Maildir {folder}: cannot read {keywords} ({exc.strerror})") from exc
    for index, keyword in taken.items():
        if keyword == DONE_KEYWORD and 0 <= index < 26:
            return chr(ord("a") + index)
    z = ord(DEFAULT_DONE_LETTER) - ord("a")
    return None if z in taken else DEFAULT_DONE_LETTER


def _day_start(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


class MaildirSource:
    """A Maildir folder as a MailSource; use it from one thread only."""

    def __init__(
        self,
        settings: MaildirSettings,
        cursors: CursorStore,
        *,
        since: date | None = None,
        backlog: date | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        poll_interval: float = 1.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.path = settings.path
        self.folder = str(settings.path)
        self.cursors = cursors
        self.since = since
        """Process mail delivered since this day: on first contact, and (reaching back) later."""
        self.backlog = backlog
        """Like since, on first contact only (general.backlog)."""
        self.old_mail: dict[str, int] = {}
        """Folder -> messages left as old mail at first contact in this session."""
        self.max_message_bytes = max_message_bytes
        self.poll_interval = poll_interval
        self.stop = stop or threading.Event()
        self.baseline = 0.0
        self.letter: str | None = DEFAULT_DONE_LETTER
        self._returned: set[str] = set()
        self._snapshot: tuple[int, ...] = ()

    def connect(self) -> None:
        missing = [d for d in ("new", "cur", "tmp") if not (self.path / d).is_dir()]
        if missing:
            raise SourceError(
                f"Maildir {self.name!r} at {self.path}: not a Maildir (missing "
                f"{', '.join(d + '/' for d in missing)}); fix maildirs.path or create it"
            )
        self.letter = done_letter(self.path)
        if self.letter is None:
            log.warning(
                "Maildir %s: 'z' is a user keyword in dovecot-keywords; done is kept in the ledger only", self.name
            )
        saved = self.cursors.get(self.name, self.folder)
        if saved is None:
            first = self.since or self.backlog
            saved = Cursor(0, 0, _day_start(first) if first else time.time())
            self.cursors.set(self.name, self.folder, saved)
            left = sum(1 for e in self._scan() if e.delivered < int(saved.baseline))
            self.old_mail[""] = left  # a Maildir source is one folder: shown under the source name
            if left:
                log.warning(
                    "Maildir %s: first contact: %d older message(s) left as old mail, not transcribed; to process "
                    'them run `mailvoice run --once --since YYYY-MM-DD`, or set general.backlog (e.g. "7d") '
                    "before a first run",
                    self.name,
                    left,
                )
            else:
                log.info("Maildir %s: first contact", self.name)
        elif self.since is not None and _day_start(self.since) < saved.baseline:
            saved = Cursor(0, 0, _day_start(self.since))  # reach back: done letters and the ledger skip repeats
            self.cursors.set(self.name, self.folder, saved)
        self.baseline = saved.baseline
        self._returned.clear()

    def _scan(self) -> list[_Entry]:
        entries: list[_Entry] = []
        for sub in _SUBDIRS:
            try:
                names = os.listdir(self.path / sub)
            except OSError as exc:
                raise SourceError(f"Maildir {self.name!r}: cannot list {self.path / sub} ({exc.strerror})") from exc
            for filename in names:
                if filename.startswith("."):
                    continue
                key, flags = split_name(filename)
                entries.append(_Entry(self.path / sub / filename, key, flags, self._delivered(key, sub, filename)))
        return entries

    def _delivered(self, key: str, sub: str, filename: str) -> float:
        """Delivery time: the unique name starts with it (Maildir spec); the file's mtime otherwise."""
        head = key.split(".", 1)[0]
        if head.isdigit():
            return float(head)
        try:
            return (self.path / sub / filename).stat().st_mtime
        except OSError:
            return 0.0

    def _state(self) -> tuple[int, ...]:
        out: list[int] = []
        for sub in _SUBDIRS:
            try:
                st = (self.path / sub).stat()
            except OSError:
                out += [0, 0]
            else:
                out += [st.st_mtime_ns, st.st_ino]
        return tuple(out)

    def fetch_new(self, limit: int = 50) -> list[SourceItem]:
        self._snapshot = self._state()
        since = int(self.baseline)  # unique names carry whole seconds: same second as the baseline is new
        fresh = sorted(
            (
                e
                for e in self._scan()
                if e.key not in self._returned and e.delivered >= since and not (self.letter and self.letter in e.flags)
            ),
            key=lambda e: (e.delivered, e.key),
        )
        items: list[SourceItem] = []
        for entry in fresh:
            if len(items) >= limit:
                break
            item = self._read(entry)
            if item is not None:
                self._returned.add(entry.key)
                items.append(item)
        return items

    def _read(self, entry: _Entry) -> SourceItem | None:
        ref = SourceRef(self.name, self.folder, 0, None, entry.key)
        when = datetime.fromtimestamp(entry.delivered, UTC)
        path = entry.path
        for _ in range(3):  # a mail client may rename the file (flag change) between listing and reading
            try:
                with path.open("rb") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    if size > self.max_message_bytes:
                        log.warning(
                            "Maildir %s key %s: %d bytes is over the %d-byte limit; not read",
                            self.name,
                            entry.key,
                            size,
                            self.max_message_bytes,
                        )
                        return SourceItem(ref, b"", size, when, too_large=True)
                    raw = fh.read(self.max_message_bytes + 1)
                return SourceItem(ref, raw, len(raw), when)
            except FileNotFoundError:
                found = self._find(entry.key)
                if found is None:
                    return None
                path = found
            except OSError as exc:
                raise SourceError(f"Maildir {self.name!r}: cannot read {path} ({exc.strerror})") from exc
        return None

    def _find(self, key: str) -> Path | None:
        for sub in _SUBDIRS:
            directory = self.path / sub
            try:
                names = os.listdir(directory)
            except OSError:
                continue
            for filename in names:
                if split_name(filename)[0] == key:
                    return directory / filename
        return None

    def acknowledge_many(self, refs: list[SourceRef]) -> None:
        for ref in refs:
            self.acknowledge(ref)

    def acknowledge(self, ref: SourceRef) -> None:
        """Move to cur/ and add the done letter; the unique name (the key) never changes."""
        key = ref.key
        if ref.account != self.name or not key or "/" in key or key.startswith(".") or "\0" in key:
            raise ValueError(f"{ref} does not belong to Maildir {self.name!r}")
        current = self._find(key)
        if current is None:
            log.info("Maildir %s key %s: gone before acknowledgement (moved or deleted by the user)", self.name, key)
            return
        _, flags = split_name(current.name)
        if self.letter is not None:
            flags = "".join(sorted(set(flags) | {self.letter}))
        target = self.path / "cur" / f"{key}:2,{flags}"
        if target == current:
            return
        try:
            os.rename(current, target)
        except FileNotFoundError:
            log.info("Maildir %s key %s: renamed concurrently; the ledger has it", self.name, key)
        except OSError as exc:
            raise SourceError(f"Maildir {self.name!r}: cannot mark {current} done ({exc.strerror})") from exc

    def wait_for_change(self, timeout: float) -> bool:
        """Poll the mtimes of new/ and cur/ (no inotify): a delivery or a rename (ours too) changes them."""
        deadline = time.monotonic() + timeout
        while True:
            if self._state() != self._snapshot:
                return True
            left = deadline - time.monotonic()
            if left <= 0 or self.stop.wait(min(self.poll_interval, left)):
                return False

    def close(self) -> None:
        self._returned.clear()
