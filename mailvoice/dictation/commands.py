"""Voice commands inside dictated text: punctuation, layout, editing and the actions that end a dictation.

A command counts only when spoken alone or at the end of an utterance ("... see you soon period"), several may
follow each other ("... period new paragraph"), and "literal <word>" writes the word instead. The three actions
that leave the dictation ("send it", "save draft", "cancel") are taken at the end of an utterance only when the
words before them close a sentence (Whisper ends a sentence when the speaker paused): "I had to cancel" is text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

CommandName = Literal[
    "period",
    "comma",
    "question",
    "exclamation",
    "colon",
    "new_line",
    "new_paragraph",
    "scratch",
    "cap",
    "send",
    "save_draft",
    "cancel",
]
ACTIONS: frozenset[CommandName] = frozenset({"send", "save_draft", "cancel"})
PUNCTUATION: dict[CommandName, str] = {"period": ".", "comma": ",", "question": "?", "exclamation": "!", "colon": ":"}
PHRASES: dict[tuple[str, ...], CommandName] = {
    ("period",): "period",
    ("full", "stop"): "period",
    ("comma",): "comma",
    ("question", "mark"): "question",
    ("exclamation", "mark"): "exclamation",
    ("exclamation", "point"): "exclamation",
    ("colon",): "colon",
    ("new", "line"): "new_line",
    ("newline",): "new_line",
    ("new", "paragraph"): "new_paragraph",
    ("scratch", "that"): "scratch",
    ("cap", "that"): "cap",
    ("send", "it"): "send",
    ("save", "draft"): "save_draft",
    ("save", "as", "draft"): "save_draft",
    ("save", "the", "draft"): "save_draft",
    ("cancel",): "cancel",
}
ALONE_ALIASES: dict[tuple[str, ...], CommandName] = {
    ("comment",): "comma",
    ("coma",): "comma",
    ("cut", "that"): "cap",
    ("tap", "that"): "cap",
}
"""What Whisper tiny.en hears for a command said on its own; honoured only as the whole utterance."""
FILLERS = frozenset(
    {
        "let's",
        "lets",
        "no",
        "oh",
        "ok",
        "okay",
        "um",
        "uh",
        "er",
        "so",
        "well",
        "actually",
        "sorry",
        "oops",
        "and",
        "hmm",
    }
)
"""Words that, alone before a command, are part of saying it ("No, scratch that."), not text to write."""
LITERAL = "literal"
_LONGEST = max(len(p) for p in PHRASES)
_EDGE = re.compile(r"^[^\w']+|[^\w']+$")
_SENTENCE_END = (".", "?", "!")


def _key(word: str) -> str:
    return _EDGE.sub("", word.lower())


@dataclass(frozen=True, slots=True)
class Parsed:
    """One utterance split into the text to write and the commands that follow it, in spoken order."""

    text: str
    commands: tuple[CommandName, ...] = ()


def _match_tail(keys: list[str]) -> tuple[CommandName, int] | None:
    """The command phrase that ends ``keys`` (longest first) and its length in words."""
    for n in range(min(_LONGEST, len(keys)), 0, -1):
        name = PHRASES.get(tuple(keys[-n:]))
        if name is not None:
            return name, n
    return None


def _unescape(words: list[str]) -> list[str]:
    """ "literal period" -> "period": drop "literal" where a command phrase follows it."""
    out: list[str] = []
    i = 0
    while i < len(words):
        if _key(words[i]) == LITERAL and i + 1 < len(words):
            rest = [_key(w) for w in words[i + 1 : i + 1 + _LONGEST]]
            if any(tuple(rest[:n]) in PHRASES for n in range(1, len(rest) + 1)):
                i += 1
                continue
        out.append(words[i])
        i += 1
    return out


def parse(utterance: str) -> Parsed:
    """Split an utterance's final text into its text and its trailing commands."""
    words = utterance.split()
    alone = ALONE_ALIASES.get(tuple(_key(w) for w in words))
    if alone is not None:
        return Parsed("", (alone,))
    commands: list[CommandName] = []
    while words:
        keys = [_key(w) for w in words]
        found = _match_tail(keys)
        if found is None:
            break
        name, n = found
        before = words[:-n]
        if before and _key(before[-1]) == LITERAL:
            break  # "literal period": the phrase is text
        if name in ACTIONS and before and not before[-1].endswith(_SENTENCE_END):
            break  # "... I had to cancel": text, not the end of the dictation
        commands.insert(0, name)
        words = before
    if commands and all(_key(w) in FILLERS for w in words):
        words = []  # "No, scratch that." / "Okay, new paragraph.": the command alone
    return Parsed(" ".join(_unescape(words)), tuple(commands))
