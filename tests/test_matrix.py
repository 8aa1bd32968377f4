"""`mailvoice matrix` end to end against a real Synapse on 127.0.0.1: the real CLI in a subprocess is the bot; a
second real client (the owner, over the client-server API) invites it and posts voice messages made at test time
from real recordings (Ogg/Opus, with the voice-message flag current clients set)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from matrixserver import Client, Synapse, require_synapse

from mailvoice.audio import encode_audio
from mailvoice.audio.decode import decode_audio

pytestmark = pytest.mark.slow

REAL = Path(__file__).parent / "data" / "real"
BOT_PASSWORD = "bot-secret-pw-1"
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 300) -> T:
    deadline = time.monotonic() + timeout
    while (found := probe()) is None or found is False:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
    return found


@dataclass
class Bot:
    home: Path
    env: dict[str, str]
    user_id: str
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailvoice", *args], env=self.env, capture_output=True, text=True, timeout=300
        )

    def start(self) -> None:
        self.starts += 1
        log = self.home / f"bot-{self.starts}.log"
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mailvoice", "-v", "matrix"], env=self.env, stdout=subprocess.DEVNULL, stderr=err
            )

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, log.read_text(errors="replace")[-3000:]
            return "Matrix bot ready" in log.read_text(errors="replace")

        wait_for("the bot to start", ready)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.home.glob("bot-*.log")))


@pytest.fixture(scope="module")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    server = Synapse(tmp_path_factory.mktemp("synapse"), require_synapse())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def alice(synapse: Synapse) -> Client:
    return synapse.register("alice", "alice-pw-1")


@pytest.fixture(scope="module")
def bot(synapse: Synapse, alice: Client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    bot_user = synapse.register("mvbot", BOT_PASSWORD)
    home = tmp_path_factory.mktemp("bot")
    config = home / "config.toml"
    config.write_text(
        f'[general]\ndata_dir = "{home / "data"}"\n[asr]\nthreads = 1\n'
        f'[[maildirs]]\nname = "inbox"\npath = "{home / "Maildir"}"\n'
        f'[[matrix]]\nname = "home"\nhomeserver = "{synapse.base}"\nuser_id = "{bot_user.user_id}"\n'
        f'owners = ["{alice.user_id}"]\npassword_env = "MV_TEST_MATRIX_PASSWORD"\nsync_timeout = 5.0\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVOICE_")}
    env.update(MAILVOICE_CONFIG=str(config), MV_TEST_MATRIX_PASSWORD=BOT_PASSWORD, COLUMNS="300", PYTHONUNBUFFERED="1")
    the_bot = Bot(home, env, bot_user.user_id)
    assert the_bot.cli("init").returncode == 0
    the_bot.start()
    yield the_bot
    the_bot.stop()


@pytest.fixture(scope="module")
def room(alice: Client, bot: Bot) -> str:
    room_id = alice.create_room(invite=bot.user_id)
    wait_for("the bot to join the owner's room", lambda: alice.membership(room_id, bot.user_id) == "join")
    return room_id


def upload_voice(client: Client, name: str, data: bytes | None) -> tuple[str, bytes]:
    """A real recording as Ogg/Opus, made now (none is committed), uploaded to the homeserver."""
    if data is None:
        data = encode_audio(decode_audio((REAL / name).read_bytes(), name=name), "ogg")
    return client.upload(data, "audio/ogg"), data


def post_voice(client: Client, room: str, name: str = "", *, data: bytes | None = None) -> str:
    url, data = upload_voice(client, name, data)
    content = {  # what Element sends for a recorded voice message: m.audio with the MSC3245 voice flag
        "msgtype": "m.audio",
        "body": "Voice message",
        "url": url,
        "info": {"mimetype": "audio/ogg", "size": len(data)},
        "org.matrix.msc1767.audio": {"duration": 3000, "waveform": [0] * 32},
        "org.matrix.msc3245.voice": {},
    }
    return client.send(room, content)


def replies(client: Client, room: str, event_id: str, bot: Bot) -> list[dict[str, Any]]:
    return [
        e
        for e in client.messages(room)
        if e.get("sender") == bot.user_id
        and (e.get("content", {}).get("m.relates_to") or {}).get("m.in_reply_to", {}).get("event_id") == event_id
    ]


def words(text: str) -> set[str]:
    return set(re.sub(r"[^\w\s]", " ", text.lower()).split())


def test_invites_from_others_and_encrypted_rooms_are_refused(
    synapse: Synapse, alice: Client, bot: Bot, room: str
) -> None:
    mallory = synapse.register("mallory", "mallory-pw-1")
    foreign = mallory.create_room(invite=bot.user_id)
    wait_for("the bot to reject a stranger's invite", lambda: mallory.membership(foreign, bot.user_id) == "leave")
    secret = alice.create_room(invite=bot.user_id, encrypted=True)  # no E2E support: declined, not joined
    wait_for("the bot to decline an encrypted room", lambda: alice.membership(secret, bot.user_id) == "leave")
    asked = alice.send(room, {"msgtype": "m.text", "body": "!help"})
    answer = wait_for(
        "the !help answer",
        lambda: (
            [e for e in alice.messages(room) if e.get("sender") == bot.user_id and e["type"] == "m.room.message"]
            or None
        ),
    )
    assert "voice messages" in answer[0]["content"]["body"] and asked
    alice.send(room, {"msgtype": "m.text", "body": "!summary"})
    summary = wait_for(
        "the !summary answer",
        lambda: [e for e in alice.messages(room) if "No new messages" in e.get("content", {}).get("body", "")] or None,
    )
    assert summary[0]["sender"] == bot.user_id  # the maildir account is empty: the summary says so
    session = bot.home / "data" / "matrix" / "home.json"
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    assert BOT_PASSWORD not in session.read_text() and BOT_PASSWORD not in bot.logs()


def test_voice_message_answered_in_its_thread_once_across_restart(alice: Client, bot: Bot, room: str) -> None:
    sent_at = time.monotonic()
    first = post_voice(alice, room, "new-home-in-the-stars.wav")
    reply = wait_for("the transcript reply", lambda: replies(alice, room, first, bot) or None)[0]
    latency = time.monotonic() - sent_at
    print(f"voice message -> threaded reply: {latency:.1f} s; reply event: {json.dumps(reply)[:600]}")
    relates = reply["content"]["m.relates_to"]
    assert relates["rel_type"] == "m.thread" and relates["event_id"] == first
    assert {"home", "stars"} <= words(reply["content"]["body"]), reply["content"]["body"]
    assert reply["content"]["body"].startswith("Transcript (") and ", en)" in reply["content"]["body"]

    hostile = post_voice(alice, room, data=b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile:///etc/passwd\n")
    notice = wait_for("the quarantine notice", lambda: replies(alice, room, hostile, bot) or None)[0]
    assert "quarantine" in notice["content"]["body"] and "passwd" not in json.dumps(notice)
    listed = [json.loads(line) for line in bot.cli("quarantine", "list", "--json").stdout.splitlines()]
    assert [(q["folder"], q["key"]) for q in listed] == [(room, hostile)]

    bot.stop()  # the sync token and device survive; nothing is answered twice
    bot.start()
    second = post_voice(alice, room, "wizard-left.wav")
    answer = wait_for("the reply after restart", lambda: replies(alice, room, second, bot) or None)[0]
    assert {"wizard", "curtain"} <= words(answer["content"]["body"]), answer["content"]["body"]
    time.sleep(2)
    assert len(replies(alice, room, first, bot)) == 1 and len(replies(alice, room, hostile, bot)) == 1
    assert bot.logs().count("logged in as device") == 2
    device_ids = set(re.findall(r"logged in as device (\S+)", bot.logs()))
    assert len(device_ids) == 1, device_ids  # the same device after the restart, no new login


def test_power_cut_between_reply_and_ledger_gives_no_second_reply(alice: Client, bot: Bot, room: str) -> None:
    bot.stop()
    bot.env["MAILVOICE_TEST_CRASH_AT"] = "matrix-replied"
    bot.start()
    third = post_voice(alice, room, "horizon-right.wav")
    died = wait_for("the crash after the reply", lambda: bot.proc is not None and bot.proc.poll() is not None)
    assert died and bot.proc is not None and bot.proc.returncode == -9
    assert len(replies(alice, room, third, bot)) == 1
    del bot.env["MAILVOICE_TEST_CRASH_AT"]
    bot.start()  # replays the unacknowledged batch: transcribes again, resends under the same transaction id
    latest = bot.home / f"bot-{bot.starts}.log"
    wait_for("the replayed event to be recorded", lambda: "transcribed (" in latest.read_text(errors="replace"))
    assert len(replies(alice, room, third, bot)) == 1
    stored = [json.loads(line) for line in bot.cli("messages", "--json").stdout.splitlines()]
    assert len([m for m in stored if m["kind"] == "voicemail"]) == 3
    assert "horizon" not in bot.logs().lower() and "stars" not in bot.logs().lower()  # no transcript in logs


def test_a_room_that_forbids_the_reply_does_not_stall_the_others(alice: Client, bot: Bot, room: str) -> None:
    muted = alice.create_room(invite=bot.user_id)
    wait_for("the bot to join", lambda: alice.membership(muted, bot.user_id) == "join")
    path = f"/_matrix/client/v3/rooms/{muted}/state/m.room.power_levels/"
    levels = alice.call("GET", path)
    alice.call("PUT", path, {**levels, "events_default": 50})  # the creator (alice) may still post
    refused = post_voice(alice, muted, "cards-001.wav")
    wait_for("the refusal to be logged", lambda: "event skipped" in bot.logs())
    answered = post_voice(alice, room, "cards-005.wav")
    wait_for("the reply in the other room", lambda: replies(alice, room, answered, bot) or None)
    assert replies(alice, muted, refused, bot) == []
