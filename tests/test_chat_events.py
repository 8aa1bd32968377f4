"""Matrix events from other people's clients are untrusted JSON: parsing never raises and never guesses."""

from __future__ import annotations

from typing import Any

import pytest

from mailvoice.chat.events import AudioMessage, threaded, txn_id


def event(content: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "event_id": "$e1", "sender": "@a:x", "content": content, **extra}


def test_a_voice_message_in_a_thread_is_answered_in_that_thread() -> None:
    content = {
        "msgtype": "m.audio",
        "url": "mxc://x/abc",
        "info": {"mimetype": "audio/ogg", "size": 1234},
        "org.matrix.msc3245.voice": {},
        "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"},
    }
    msg = AudioMessage.parse("!r:x", event(content))
    assert msg is not None and msg.voice and not msg.encrypted_file
    assert (msg.url, msg.declared_size, msg.mimetype, msg.thread_root) == ("mxc://x/abc", 1234, "audio/ogg", "$root")
    relates = threaded(msg, "t", "t")["m.relates_to"]
    assert relates["event_id"] == "$root" and relates["m.in_reply_to"] == {"event_id": "$e1"}


@pytest.mark.parametrize(
    "content",
    [
        {"msgtype": "m.audio", "url": 42, "info": "big", "m.relates_to": ["x"]},
        {"msgtype": "m.audio", "info": {"size": True}, "m.relates_to": {"rel_type": "m.thread", "event_id": 7}},
        {"msgtype": "m.audio", "file": {"url": "mxc://x/enc"}},
    ],
)
def test_malformed_audio_events_parse_to_something_the_bot_refuses(content: dict[str, Any]) -> None:
    msg = AudioMessage.parse("!r:x", event(content))
    assert msg is not None
    assert msg.declared_size is None and msg.thread_root == "$e1"
    assert msg.url == "" or msg.encrypted_file  # the bot quarantines: no mxc:// URL to download


@pytest.mark.parametrize(
    "source", [event("text"), event({"msgtype": "m.text", "body": "hi"}), {"type": "m.room.member"}]
)
def test_other_events_are_not_audio(source: dict[str, Any]) -> None:
    assert AudioMessage.parse("!r:x", source) is None


def test_the_same_answer_gets_the_same_transaction_id() -> None:
    assert txn_id("!r", "$e", "transcript") == txn_id("!r", "$e", "transcript")
    assert len({txn_id("!r", "$e", "transcript"), txn_id("!r", "$f", "transcript"), txn_id("!r", "$e", "help")}) == 3
