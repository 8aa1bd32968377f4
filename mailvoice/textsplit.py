"""Split text into paragraphs and sentences, so TTS speaks the first sentence before the rest is rendered."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_SENTENCE_CHARS = 300
"""Longer sentences are cut at clause boundaries so no single chunk delays the first audio for long."""

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_SPACES = re.compile(r"\s+")
# A sentence ends at . ! ? … (plus closing quotes/brackets) followed by whitespace.
_SENTENCE_END = re.compile(r"""(?<=[.!?…])(["'”’)\]]*)\s+""")
_CLAUSE_END = re.compile(r"(?<=[;:,])\s+")
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "inc",
        "ltd",
        "co",
        "corp",
        "dept",
        "approx",
        "no",
        "fig",
        "e.g",
        "i.e",
        "a.m",
        "p.m",
        "u.s",
    ]
)


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence to speak and whether a paragraph ends after it."""

    text: str
    ends_paragraph: bool
    """True after the last sentence of a paragraph (a longer pause follows)."""
    last: bool = False
    """True for the last sentence of the text (no pause follows)."""

    def pause(self, sentence_pause: float, paragraph_pause: float) -> float:
        """Seconds of silence after this sentence."""
        if self.last:
            return 0.0
        return paragraph_pause if self.ends_paragraph else sentence_pause


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs are separated by blank lines; inner whitespace collapses to single spaces."""
    paragraphs = (_SPACES.sub(" ", p).strip() for p in _PARAGRAPH_BREAK.split(text))
    return [p for p in paragraphs if p]


def _is_abbreviation(fragment: str) -> bool:
    """True when the fragment ends with an abbreviation or an initial: its period ends no sentence."""
    last = fragment.rsplit(" ", 1)[-1].rstrip(".").lower()
    if not fragment.endswith("."):
        return False
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())


def _cut_long(sentence: str, limit: int) -> list[str]:
    """Cut an over-long sentence at clause punctuation, then at spaces, into pieces of ``limit`` chars."""
    if len(sentence) <= limit:
        return [sentence]
    pieces: list[str] = []
    current = ""
    for clause in _CLAUSE_END.split(sentence):
        while len(clause) > limit:
            cut = clause.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            if current:
                pieces.append(current)
                current = ""
            pieces.append(clause[:cut].strip())
            clause = clause[cut:].strip()
        if current and len(current) + 1 + len(clause) > limit:
            pieces.append(current)
            current = clause
        else:
            current = f"{current} {clause}".strip()
    if current:
        pieces.append(current)
    return [p for p in pieces if p]


def split_sentences(paragraph: str, *, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """The sentences of one paragraph; abbreviations ("Dr.", "e.g.") and initials stay inside."""
    text = _SPACES.sub(" ", paragraph).strip()
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    pending = ""
    for match in _SENTENCE_END.finditer(text):
        fragment = text[start : match.end(1)]
        start = match.end()
        candidate = f"{pending} {fragment}".strip() if pending else fragment
        next_char = text[start : start + 1]
        if _is_abbreviation(fragment) or (next_char.isalpha() and next_char.islower()):
            pending = candidate  # "Dr. Smith", "e.g. this": the period does not end the sentence
            continue
        sentences.append(candidate)
        pending = ""
    tail = text[start:]
    last = f"{pending} {tail}".strip() if pending else tail.strip()
    if last:
        sentences.append(last)
    return [piece for s in sentences for piece in _cut_long(s, max_chars)]


def iter_sentences(text: str, *, max_chars: int = MAX_SENTENCE_CHARS) -> Iterator[Sentence]:
    """Sentences of the whole text in order, marking paragraph ends and the last sentence."""
    paragraphs = split_paragraphs(text)
    for p_index, paragraph in enumerate(paragraphs):
        sentences = split_sentences(paragraph, max_chars=max_chars)
        for index, sentence in enumerate(sentences):
            ends = index == len(sentences) - 1
            yield Sentence(sentence, ends_paragraph=ends, last=ends and p_index == len(paragraphs) - 1)
