"""The text being dictated: utterances appended, commands applied, and no doubled punctuation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailvoice.dictation.commands import ACTIONS, PUNCTUATION, CommandName, parse

_TRAILING_PUNCT = re.compile(r"[.,;:!?]+$")
_I_WORDS = re.compile(r"^I(?:'[a-z]+)?\b")


@dataclass
class Entry:
    """What one utterance wrote (scratch that removes one entry)."""

    text: str
    suffix: str = ""
    """Punctuation and line breaks spoken after it."""


@dataclass
class Draft:
    """The dictated text as entries; ``text`` renders it."""

    entries: list[Entry] = field(default_factory=list)
    base: str = ""
    """Text the user typed or edited (the browser's text box); utterances append after it."""

    def set_text(self, text: str) -> None:
        """The user edited the whole text: it becomes the base, the utterance history is gone."""
        self.base = text
        self.entries = []

    @property
    def text(self) -> str:
        out = self.base
        for e in self.entries:
            out = _join(out, e.text) + e.suffix if e.text else _punctuate(out, e.suffix)
        return out

    def apply(self, utterance: str) -> tuple[CommandName, ...]:
        """Add one utterance's final text; return the actions it asked for (send, save_draft, cancel)."""
        parsed = parse(utterance)
        actions: list[CommandName] = []
        entry = Entry(parsed.text) if parsed.text else None
        if entry is not None:
            self.entries.append(entry)
        for cmd in parsed.commands:
            if cmd in ACTIONS:
                actions.append(cmd)
            elif cmd == "scratch":
                if self.entries:
                    self.entries.pop()
                entry = None
            elif cmd == "cap":
                if self.entries:
                    last = self.entries[-1]
                    last.text = " ".join(w[:1].upper() + w[1:] for w in last.text.split(" "))
            else:
                self._add_mark(cmd)
        return tuple(actions)

    def _add_mark(self, cmd: CommandName) -> None:
        if not self.entries:
            self.entries.append(Entry(""))
        last = self.entries[-1]
        if cmd in PUNCTUATION:
            mark = PUNCTUATION[cmd]
            # Whisper already punctuated: replace its mark (and any earlier spoken one) rather than add.
            if last.suffix and not last.suffix.strip():
                return  # punctuation after a line break means nothing
            last.suffix = ""
            last.text = _TRAILING_PUNCT.sub("", last.text)
            last.suffix = mark
        elif cmd == "new_line":
            last.suffix += "\n"
        elif cmd == "new_paragraph":
            last.suffix = last.suffix.rstrip("\n") + "\n\n"


def _punctuate(text: str, suffix: str) -> str:
    if suffix and suffix[0] in ".,;:!?":
        return _TRAILING_PUNCT.sub("", text.rstrip()) + suffix
    return text + suffix


def _join(before: str, text: str) -> str:
    """Append an utterance: a space, and a capital only where a sentence starts."""
    if not before:
        return text[:1].upper() + text[1:]
    stripped = before.rstrip(" ")
    if stripped.endswith("\n"):
        return stripped + text[:1].upper() + text[1:]
    if stripped.endswith((",", ":", ";")) and not _I_WORDS.match(text) and not text[:2].isupper():
        text = text[:1].lower() + text[1:]  # Whisper capitalises each utterance; after a comma it is mid-sentence
    elif stripped.endswith((".", "?", "!")):
        text = text[:1].upper() + text[1:]
    return stripped + " " + text
