"""Voice commands and the draft they edit: pure text, no models."""

from __future__ import annotations

import pytest

from mailvoice.dictation.commands import parse
from mailvoice.dictation.draft import Draft


@pytest.mark.parametrize(
    ("utterance", "text", "commands"),
    [
        ("Hello world.", "Hello world.", ()),
        ("Hello world period.", "Hello world", ("period",)),
        ("Hello world. Period.", "Hello world.", ("period",)),
        ("Period.", "", ("period",)),
        ("comma", "", ("comma",)),
        ("How are you question mark", "How are you", ("question",)),
        ("How are you? Question mark?", "How are you?", ("question",)),
        ("Thanks period new paragraph", "Thanks", ("period", "new_paragraph")),
        ("New line.", "", ("new_line",)),
        ("Scratch that.", "", ("scratch",)),
        ("acme widgets cap that", "acme widgets", ("cap",)),
        ("Send it.", "", ("send",)),
        ("See you soon. Send it.", "See you soon.", ("send",)),
        ("Save draft.", "", ("save_draft",)),
        ("Cancel.", "", ("cancel",)),
        ("I had to cancel.", "I had to cancel.", ()),
        ("Please send it", "Please send it", ()),
        ("The word is literal period.", "The word is period.", ()),
        ("Literal comma", "comma", ()),
        ("A literal translation.", "A literal translation.", ()),
        ("The trial period ends today.", "The trial period ends today.", ()),
        ("", "", ()),
        ("Comment.", "", ("comma",)),
        ("I have a comment.", "I have a comment.", ()),
        ("Cut that.", "", ("cap",)),
        ("No, scratch that.", "", ("scratch",)),
        ("Let's scratch that.", "", ("scratch",)),
        ("Okay, new paragraph.", "", ("new_paragraph",)),
        ("No.", "No.", ()),
    ],
)
def test_parse(utterance: str, text: str, commands: tuple[str, ...]) -> None:
    parsed = parse(utterance)
    assert parsed.text == text
    assert parsed.commands == commands


def dictate(*utterances: str) -> tuple[str, list[str]]:
    draft = Draft()
    actions: list[str] = []
    for u in utterances:
        actions.extend(draft.apply(u))
    return draft.text, actions


@pytest.mark.parametrize(
    ("utterances", "expected"),
    [
        (("Hi Bob.", "Comma.", "Thanks for the report."), "Hi Bob, thanks for the report."),
        (("Hi Bob comma", "I think it works."), "Hi Bob, I think it works."),
        (("Is it done? Question mark.",), "Is it done?"),
        (("It is done. Period.",), "It is done."),
        (("It is done, period.",), "It is done."),
        (("Dear Ann, new line", "the plan is ready."), "Dear Ann,\nThe plan is ready."),
        (("First part. New paragraph.", "second part."), "First part.\n\nSecond part."),
        (("Keep this.", "Drop this.", "Scratch that."), "Keep this."),
        (("Keep this.", "drop this scratch that"), "Keep this."),
        (("Keep this.", "Drop this.", "No, scratch that."), "Keep this."),
        (("We met at", "acme widgets", "cap that"), "We met at Acme Widgets"),
        (("Done. Period. Period.",), "Done."),
        (("Comma.",), ","),
        (("Line one. New line. Period.",), "Line one.\n"),
    ],
)
def test_draft(utterances: tuple[str, ...], expected: str) -> None:
    text, actions = dictate(*utterances)
    assert text == expected
    assert actions == []


def test_actions_are_reported_not_written() -> None:
    text, actions = dictate("Hello Bob.", "Send it.")
    assert (text, actions) == ("Hello Bob.", ["send"])
    text, actions = dictate("Hello Bob. Save draft.")
    assert (text, actions) == ("Hello Bob.", ["save_draft"])
    assert dictate("Cancel.")[1] == ["cancel"]


def test_user_edit_becomes_base() -> None:
    draft = Draft()
    draft.apply("Hello Bob.")
    draft.set_text("Hello Robert")
    draft.apply("Comma.")
    draft.apply("See you.")
    assert draft.text == "Hello Robert, see you."
