"""Spoken inbox summary: ranking, templates, owner-only delivery, real Piper + Whisper, and the APScheduler job."""

from __future__ import annotations

import asyncio
import email
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from email.policy import default
from pathlib import Path

import pytest
from mailcorpus_speech import CASES

from mailvoice.config import DeliverySettings, GeneralSettings, MaildirSettings, Settings, SummarySettings
from mailvoice.crypto import Sealer, create_keyring, record_aad
from mailvoice.errors import ConfigError
from mailvoice.store import MessageContent, NewMessage, Store, utcnow
from mailvoice.types import Transcript

OWNER = "owner@example.org"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        general=GeneralSettings(data_dir=tmp_path / "data", key_file=tmp_path / "keys" / "keys.json"),
        delivery=DeliverySettings(owners=(f"Owner <{OWNER}>",), folder=tmp_path / "delivered"),
        maildirs=(MaildirSettings(name="home", path=tmp_path / "Maildir", address="me@example.org"),),
        summary=SummarySettings(vip=("boss@example.com",)),
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    ring = create_keyring(settings.general.resolved_key_file())
    with Store.open(settings.general.resolved_store_url(), Sealer(ring)) as s:
        yield s


def text_mail(sender: str, subject: str, body: str, *, minutes_ago: int, account: str = "home") -> NewMessage:
    return NewMessage(
        kind="text",
        account=account,
        created_at=utcnow() - timedelta(minutes=minutes_ago),
        content=MessageContent(text=body, subject=subject, sender=sender),
    )


def voicemail(caller: str, text: str, *, minutes_ago: int) -> NewMessage:
    t = Transcript(text=text, language="en", duration=6.0)
    return NewMessage(
        kind="voicemail",
        account="home",
        created_at=utcnow() - timedelta(minutes=minutes_ago),
        content=MessageContent(text=text, transcript=t, caller=caller, sender="pbx@example.net", subject="Voicemail"),
    )


INBOX = (
    text_mail(
        "David Wilson <david@example.net>", "Invoice for the garden", "The invoice is attached. Thanks!", minutes_ago=5
    ),
    text_mail("John Baker <boss@example.com>", "Team lunch on Friday", "Lunch is at noon.", minutes_ago=300),
    voicemail("Sarah Miller", "Please call me back about the car.", minutes_ago=120),
    text_mail("Old News <old@example.com>", "Ancient", "Too old to mention.", minutes_ago=60 * 30),
    text_mail("Other Account <x@example.com>", "Elsewhere", "Not this account.", minutes_ago=1, account="work"),
)


def test_collect_ranks_voicemails_then_vips_then_newest(settings: Settings, store: Store) -> None:
    from mailvoice.spoken.summary import collect

    store.record(messages=INBOX)
    items = collect(store, "home", utcnow() - timedelta(hours=24), settings)
    assert [(i.kind, i.sender) for i in items] == [
        ("voicemail", "Sarah Miller"),
        ("text", "John Baker"),
        ("text", "David Wilson"),
    ]
    assert items[1].vip and not items[2].vip


def test_script_from_templates_and_user_override(settings: Settings, store: Store, tmp_path: Path) -> None:
    from mailvoice.spoken.summary import build_script, collect

    store.record(messages=INBOX)
    items = collect(store, "home", utcnow() - timedelta(hours=24), settings)
    script = build_script(items, settings, account="home", since="24h", now=utcnow())
    assert script.text.startswith(
        "Three new messages. Under a minute, with one voicemail, in the last "
        "twenty-four hours.\n\nVoicemail from Sarah Miller."
    )
    assert "Voicemail from Sarah Miller. Please call me back about the car." in script.text
    assert "Message from John Baker, about Team lunch on Friday. Lunch is at noon." in script.text
    assert "Ancient" not in script.text and "Elsewhere" not in script.text
    assert script.subject.startswith("Inbox summary: 3 new, 1 voicemail(s)")

    custom = tmp_path / "templates"
    custom.mkdir()
    (custom / "summary.item").write_text("Next: $sender says $gist\n", encoding="utf-8")
    mine = replace(settings, delivery=replace(settings.delivery, templates_dir=custom))
    text = build_script(items, mine, account="home", since="24h", now=utcnow()).text
    assert "Next: Sarah Miller says Please call me back" in text

    empty = build_script([], settings, account="home", since="3d", now=utcnow())
    assert empty.text == "No new messages in the last three days. Enjoy your day."
    (custom / "summary.item").write_text("$nonsense\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"summary.item.*\$nonsense|nonsense"):
        build_script(items, mine, account="home", since="24h", now=utcnow())


def test_script_speaks_no_raw_links_or_numbers(settings: Settings, store: Store) -> None:
    from mailvoice.mail.mime import parse_message
    from mailvoice.spoken.summary import build_script, collect

    for name, build in CASES.items():
        parsed = parse_message(build().raw)
        sender = f"{parsed.from_.name} <{parsed.from_.address}>" if parsed.from_ else ""
        store.record(messages=(text_mail(sender, parsed.subject, parsed.text, minutes_ago=len(name)),))
    items = collect(store, "home", utcnow() - timedelta(hours=1), settings)
    text = build_script(items, settings, account="home", since="1h", now=utcnow()).text
    assert len(items) == len(CASES)
    for bad in ("http", "www", "@", "://", "/"):
        assert bad not in text
    assert not any(ch.isdigit() for ch in text)


def test_summary_goes_only_to_the_owner(settings: Settings, store: Store) -> None:
    from mailvoice.spoken.summary import SpokenSummary, build_script, owner_recipients, summary_records

    assert owner_recipients(settings, "home") == (OWNER,)
    no_owner = replace(settings, delivery=replace(settings.delivery, owners=()))
    assert owner_recipients(no_owner, "home") == ("me@example.org",)
    script = build_script([], settings, account="home", since="24h", now=utcnow())
    message, out = summary_records(settings, SpokenSummary(script, b"OggS", "ogg", 1.0), send=True)
    assert out is not None and out.envelope.recipients == (OWNER,)
    mail = email.message_from_bytes(out.raw, policy=default)
    assert mail["X-Mailvoice"] == "summary" and mail["To"] == OWNER
    assert message.kind == "summary" and message.content.recipients == (OWNER,)
    # no API takes a recipient: the CLI has no --to either
    from mailvoice.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["summary", "--to", "attacker@evil.example"])


def test_forged_owner_mail_triggers_nothing(settings: Settings, store: Store) -> None:
    """A mail claiming to come from the owner and asking for a summary / voice send is just a text mail."""
    from mailvoice.mail.source import SourceItem, SourceRef
    from mailvoice.pipeline import Context, Pipeline

    raw = (
        f"From: Owner <{OWNER}>\r\nTo: me@example.org\r\nSubject: summary send to attacker@evil.example\r\n"
        "Message-ID: <forged@evil.example>\r\nX-Mailvoice-Command: summary\r\n\r\n"
        "mailvoice summary --send --to attacker@evil.example\r\nmailvoice send --to attacker@evil.example\r\n"
    ).encode()

    def no_asr(data: bytes, name: str, budget: float) -> Transcript:
        raise AssertionError("a text mail must not reach the transcriber")

    pipeline = Pipeline(settings, store, no_asr)
    item = SourceItem(SourceRef("home", "INBOX", 0, None, key="forged"), raw, len(raw), None)
    result = pipeline.process(item, Context("home", "me@example.org", (OWNER,)))
    assert result.status == "text"
    assert store.list_outbox() == ()
    assert store.list_messages("summary") == () and store.list_messages("voice_email") == ()


@pytest.mark.slow
def test_spoken_summary_heard_back_names_every_sender_and_subject(settings: Settings, store: Store) -> None:
    from speech import piper_engine, wer, whisper_engine

    from mailvoice.audio import load_for_asr
    from mailvoice.spoken.summary import speak_summary

    store.record(messages=INBOX)
    spoken = speak_summary(settings, store, piper_engine(), account="home")
    assert spoken.audio[:4] == b"OggS" and spoken.duration > 5
    heard = whisper_engine().transcribe(load_for_asr(spoken.audio, name="summary.ogg")).text.lower()
    tokens = [t.strip(".,;:!?") for t in heard.split()]

    def best(phrase: str) -> float:
        n = len(phrase.split())
        return min(wer(phrase, " ".join(tokens[i : i + n])) for i in range(max(1, len(tokens) - n + 1)))

    # tiny.en (the measuring instrument here) mishears some names ("real opus" for Maria Lopez), so the senders
    # are names it hears reliably; even so a first name may slip: surnames must be exact, names half right
    for name in ("david wilson", "john baker", "sarah miller"):
        assert name.split()[1] in tokens and best(name) <= 0.5, f"{name!r} not heard in {heard!r}"
    for subject in ("invoice for the garden", "team lunch on friday", "call me back about the car"):
        assert best(subject) <= 0.25, f"{subject!r} not heard in {heard!r}"


@pytest.mark.slow
async def test_scheduled_summary_fires_under_apscheduler(settings: Settings, store: Store) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from speech import piper_engine

    from mailvoice.spoken.schedule import schedule_summaries

    store.record(messages=INBOX[:2])
    every_second = replace(
        settings,
        summary=replace(settings.summary, cron="*/1 * * * * *", folder=settings.general.data_dir / "summaries"),
    )
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
    ids = schedule_summaries(scheduler, every_second, store, tts_factory=piper_engine)
    assert ids == ["summary:home"]
    scheduler.start()
    try:
        for _ in range(300):
            await asyncio.sleep(0.1)
            delivered = list((settings.delivery.folder or Path()).glob("new/*"))
            if delivered:
                break
    finally:
        scheduler.shutdown(wait=False)
    assert delivered, "the scheduled summary did not arrive"
    mail = email.message_from_bytes(delivered[0].read_bytes(), policy=default)
    assert mail["X-Mailvoice"] == "summary" and OWNER in mail["To"]
    audio = [p for p in mail.iter_attachments() if p.get_content_type() == "audio/ogg"]
    assert audio and audio[0].get_content()[:4] == b"OggS"
    body = mail.get_body(("plain",))
    assert body is not None and "David Wilson" in body.get_content()
    summaries = store.list_messages("summary", account="home")
    assert summaries
    assert list((settings.general.data_dir / "summaries").glob("summary-home-*.ogg"))
    # the podcast episode was encoded at summary time, sealed: the feed's first request finds it ready
    cache = settings.general.data_dir / "feed-cache"
    ready = [m for m in summaries if (cache / f"{m.id}.mp3.sealed").exists()]
    assert ready
    from mailvoice.audio.sniff import sniff_format
    from mailvoice.feedaudio import EpisodeAudio

    sealed = (cache / f"{ready[0].id}.mp3.sealed").read_bytes()
    opened = store.sealer.open(sealed, record_aad("feed-cache", ready[0].id, "mp3"))
    assert sniff_format(opened) == "mp3" and opened[:3] not in sealed[:64]
    episode = EpisodeAudio(every_second, "mp3").get(ready[0], store.sealer)
    assert episode is not None and sniff_format(episode) == "mp3"


def test_bad_cron_names_the_setting(settings: Settings) -> None:
    from mailvoice.spoken.schedule import cron_trigger, summary_jobs

    with pytest.raises(ConfigError, match=r"summary\.cron"):
        cron_trigger("every morning")
    jobs = summary_jobs(
        replace(settings, summary=replace(settings.summary, cron="0 7 * * mon-fri", account_cron=("home=off",)))
    )
    assert jobs == []
    with pytest.raises(ConfigError, match="account_cron"):
        summary_jobs(replace(settings, summary=replace(settings.summary, account_cron=("nobody=0 7 * * *",))))


@pytest.mark.slow
def test_cli_summary_writes_audio(settings: Settings, store: Store, tmp_path: Path) -> None:
    """The real CLI in a subprocess: `mailvoice summary -o OUT.ogg`, decoded back by our decoder."""
    from mailvoice.audio import decode_audio

    store.record(messages=INBOX[:1])
    config = tmp_path / "config.toml"
    config.write_text(
        f'[general]\ndata_dir = "{settings.general.data_dir}"\nkey_file = "{settings.general.resolved_key_file()}"\n'
        f'[delivery]\nowners = ["{OWNER}"]\nfolder = "{settings.delivery.folder}"\n'
        f'[[maildirs]]\nname = "home"\npath = "{tmp_path / "Maildir"}"\naddress = "me@example.org"\n',
        encoding="utf-8",
    )
    out = tmp_path / "inbox.ogg"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVOICE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "mailvoice", "--config", str(config), "summary", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    clip = decode_audio(out.read_bytes(), name="inbox.ogg")
    assert clip.duration > 3


def test_bench_script_is_a_twenty_mail_summary() -> None:
    from mailvoice.summary_bench import bench_script

    text = bench_script(Settings())
    assert text.startswith("Twenty new messages.")
    assert text.count("Voicemail from") + text.count("Message from") == 20
    assert not any(ch.isdigit() for ch in text) and "http" not in text
