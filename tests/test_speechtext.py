"""Text fit for speech: normalised numbers, dates and money; no URL or address ever read out character by character."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import pytest
from mailcorpus_speech import CASES, NEWSLETTER_HTML

from mailvoice.mail.mime import parse_message
from mailvoice.speechtext import clean_body, mail_for_speech, speak_address, speak_subject
from mailvoice.spoken.normalize import normalize
from mailvoice.spoken.numbers import cardinal, ordinal, year


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("Meet at 3:30 PM.", "Meet at three thirty PM."),
        ("Due 2026-11-25.", "Due November twenty-fifth, twenty twenty-six."),
        ("It costs $12.50 today.", "It costs twelve dollars and fifty cents today."),
        ("Only $1 left", "Only one dollar left"),
        ("Pay €1,200 now", "Pay one thousand two hundred euros now"),
        ("Raised $5M.", "Raised five million dollars."),
        ("A fee of USD 100", "A fee of one hundred dollars"),
        ("Dr. Smith, e.g. today", "Doctor Smith, for example, today"),
        ("pens, paper, etc. and more", "pens, paper, et cetera and more"),
        ("up 12.5% in 2025", "up twelve point five percent in twenty twenty-five"),
        ("the 21st floor", "the twenty-first floor"),
        ("Call 555-123-4567.", "Call five five five, one two three, four five six seven."),
        ("See you Mon, Nov 24 at 10am.", "See you Monday, November twenty-fourth at ten AM."),
        ("At 15:00 or 09:05", "At three PM or nine oh five AM"),
        ("at 2 a.m. Then", "at two AM. Then"),
        ("3-5 days", "three to five days"),
        ("Order No. 4471", "Order number four thousand four hundred seventy-one"),
        ("code 007 and 4839201", "code zero zero seven and four eight three nine two zero one"),
        ("gate B22", "gate B twenty-two"),
        ("ref 7XQ4PL2ZK9M3TR", "ref a reference code"),
        ("on 25 November 2026", "on twenty-fifth of November, twenty twenty-six"),
        ("Tom & Jerry", "Tom and Jerry"),
    ],
)
def test_normalize(written: str, spoken: str) -> None:
    assert normalize(written) == spoken


def test_number_words() -> None:
    assert cardinal(1_234_567) == "one million two hundred thirty-four thousand five hundred sixty-seven"
    assert ordinal(112) == "one hundred twelfth"
    assert ordinal(30) == "thirtieth"
    assert year(1984) == "nineteen eighty-four"
    assert year(2005) == "two thousand five"
    assert year(1905) == "nineteen oh five"


def test_sender_and_subject() -> None:
    assert speak_address("Smith, John", "john@example.com") == "John Smith"
    assert speak_address("", "jane.doe@mail.example.com") == "jane doe at mail dot example dot com"
    assert speak_subject("Re: Fwd: RE: Budget") == "Budget"
    assert speak_subject("") == "no subject"


_FORBIDDEN = re.compile(r"https?|www\.|://|@|/|\\|\d|\.(com|org|net|uk|io)\b", re.IGNORECASE)


def _assert_speakable(text: str) -> None:
    """Nothing a voice would read character by character: no URL, address, path, digit or code token."""
    assert not _FORBIDDEN.search(text), _FORBIDDEN.search(text)
    for token in re.findall(r"\S+", text):
        word = token.strip(".,;:!?()\"'")
        assert len(word) < 20, f"token {word!r} would be spelled out"
        assert not (re.search(r"[A-Za-z]", word) and re.search(r"\d", word)), word


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_is_speakable(name: str) -> None:
    case = CASES[name]()
    spoken = mail_for_speech(parse_message(case.raw))
    _assert_speakable(spoken)
    for phrase in case.must_say:
        assert phrase in spoken, f"{name}: missing {phrase!r} in {spoken!r}"
    for phrase in case.must_not_say:
        assert phrase.lower() not in spoken.lower(), f"{name}: {phrase!r} must not be spoken"


def test_paragraphs_and_list_items_become_pauses() -> None:
    from mailvoice.textsplit import iter_sentences

    text = clean_body("Agenda\n- budget\n- hiring plan\n\nSee you there")
    sentences = list(iter_sentences(text))
    assert [s.text for s in sentences] == ["Agenda.", "Budget.", "Hiring plan.", "See you there."]
    assert sentences[2].ends_paragraph and not sentences[1].ends_paragraph


@pytest.fixture
def network_attempts() -> Iterator[list[str]]:
    """Every socket/URL-opening event while the fixture is active (a real audit hook, nothing replaced)."""
    seen: list[str] = []
    active = [True]

    def hook(event: str, args: tuple[object, ...]) -> None:
        if active[0] and event in ("socket.connect", "socket.getaddrinfo", "urllib.Request", "socket.gethostbyname"):
            seen.append(event)

    sys.addaudithook(hook)
    try:
        yield seen
    finally:
        active[0] = False  # audit hooks cannot be removed; this one goes quiet


def test_html_gives_visible_text_only_and_fetches_nothing(network_attempts: list[str]) -> None:
    case = CASES["html_newsletter"]()
    spoken = mail_for_speech(parse_message(case.raw))
    assert "Your weekly digest" in spoken
    assert "tracking script" not in spoken and "Hidden preheader" not in spoken
    assert "https://evil.example.com" in NEWSLETTER_HTML  # the mail really carried remote references
    assert network_attempts == []


@pytest.mark.slow
def test_spoken_newsletter_heard_back_has_no_spelled_links() -> None:
    """Piper reads the cleaned newsletter; Whisper hears words, never "h t t p" or "slash"."""
    from speech import speak, whisper_engine

    spoken = mail_for_speech(parse_message(CASES["links_everywhere"]().raw))
    heard = whisper_engine().transcribe(speak(spoken)).text.lower()
    assert "link" in heard and "example" in heard
    for spelled in ("http", "h t t p", "slash", "www", "colon"):
        assert spelled not in heard, heard
