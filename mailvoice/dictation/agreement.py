"""Local agreement (LA-2): a word is confirmed once two hypotheses, some time apart, agree on everything up to it."""

from __future__ import annotations

import re
from collections import deque

_NON_WORD = re.compile(r"[^\w']")


def _key(word: str) -> str:
    """Words compare without case or punctuation: Whisper moves commas and capitals between hypotheses."""
    return _NON_WORD.sub("", word.lower())


class LocalAgreement:
    """Commits the longest prefix the newest hypothesis shares with one at least ``min_gap_s`` of audio older.

    Comparing against an older hypothesis (rather than the previous step's) keeps a word that only appeared in the
    last fraction of a second from being confirmed on the strength of two nearly identical windows.
    """

    def __init__(self, min_gap_s: float = 1.0, history: int = 12) -> None:
        self.min_gap_s = min_gap_s
        self.committed: list[str] = []
        self._history: deque[tuple[float, tuple[str, ...]]] = deque(maxlen=history)

    def reset(self) -> None:
        """Start a new window (after an utterance or a cut)."""
        self.committed = []
        self._history.clear()

    def _reference(self, at: float) -> tuple[str, ...] | None:
        older = [words for t, words in self._history if at - t >= self.min_gap_s]
        if older:
            return older[-1]
        return self._history[-1][1] if self._history else None

    def update(self, words: tuple[str, ...], at: float) -> tuple[list[str], list[str]]:
        """(stable, unstable) words after a hypothesis covering audio up to ``at`` seconds."""
        ref = self._reference(at)
        self._history.append((at, words))
        if ref is not None:
            n = 0
            while n < min(len(ref), len(words)) and _key(ref[n]) == _key(words[n]):
                n += 1
            if n > len(self.committed):
                # Confirmed words never go back; take the newest spelling (its punctuation is best informed).
                self.committed = [*self.committed, *words[len(self.committed) : n]]
        k = len(self.committed)
        return list(self.committed), list(words[k:])
