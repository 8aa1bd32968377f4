"""Issue 16 at the unit level: Message-ID tokens cleaned, the exact header case composed, the per-mail budget in the
decoder, and an unexpected exception in each stage quarantining only that item (real store, real parser)."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email.policy import default
from pathlib import Path

import pytest
from audiogen import silence_pyav
from mailcorpus import asterisk_mail, text_only_mail

from mailvoice.audio import decode_audio
from mailvoice.config import AudioSettings, GeneralSettings, Settings
from mailvoice.crashpoints import FAULT_ENV, FAULT_MARK
from mailvoice.crypto import Sealer, create_keyring
from mailvoice.errors import AudioBudgetError, AudioTooLongError
from mailvoice.mail.headers import clean_message_id, clean_message_ids
from mailvoice.mail.mime import parse_message
from mailvoice.mail.source import SourceItem, SourceRef
from mailvoice.mail.voicemail import find_audio_parts
from mailvoice.pipeline import STAGES, Context, Pipeline
from mailvoice.store import Store
from mailvoice.types import Transcript

OWNER = "me@example.org"


def hostile_voicemail() -> bytes:
    """UTF-8 Message-ID, and References with an undecodable 8-bit byte (raised UnicodeEncodeError on 3.11/3.12)."""
    raw = asterisk_mail(msgid="<placeholder@pbx>")
    head = "Message-ID: <été@phone.example>\r\n".encode() + b"References: <a@pbx.example.com> <caf\xe9@old.example>"
    return raw.replace(b"Message-ID: <placeholder@pbx>", head, 1)


@pytest.mark.parametrize(
    ("token", "kept"),
    [
        ("<Asterisk-5-1234567890-100-4242@pbx.example.com>", True),
        ("  <a@b>  ", True),
        ("<été@phone.example>", False),  # UTF-8: not writable in an ASCII header
        ("<caf\udce9@old.example>", False),  # an undecodable 8-bit byte (surrogate escape)
        ("<a\r\nBcc: x@evil@b>", False),
        ("<a\x00b@c>", False),
        ("<a b@c>", False),
        ("<a\\b@c>", False),
        ("<" + "x" * 300 + "@b>", False),
        ("a@b", False),
        ("", False),
    ],
)
def test_message_id_tokens_are_kept_only_when_safe_to_write_back(token: str, kept: bool) -> None:
    assert clean_message_id(token) == (token.strip() if kept else None)


def test_references_keep_valid_tokens_in_order_deduplicated_and_bounded() -> None:
    refs = ["<a@x> <caf\udce9@x> junk <b@x>\r\n <a@x>", "<c\x01@x> <d@x>"]
    assert clean_message_ids(refs) == ("<b@x>", "<a@x>", "<d@x>")
    many = [" ".join(f"<m{i}@x>" for i in range(50))]
    assert clean_message_ids(many) == tuple(f"<m{i}@x>" for i in range(30, 50))


def test_the_exact_header_case_composes_into_a_seven_bit_mail() -> None:
    from mailvoice.compose import compose_quarantine_notice, compose_voicemail

    parsed = parse_message(hostile_voicemail())
    assert parsed.message_id == "<été@phone.example>" and "<caf\udce9@old.example>" in parsed.references
    parts = find_audio_parts(parsed)
    ctx = Context("work", OWNER, (OWNER,))
    transcript = Transcript(text="Please call me back.", language="en", duration=2.0)
    messages, out = compose_voicemail(Settings(), parsed, ctx, [(parts[0], transcript)], notes=(), source="work")
    notice = compose_quarantine_notice(Settings(), parsed, ctx, "reason", had_audio=True, source="work")
    for raw in (out.raw, notice.raw):
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert head.isascii()
        mail = email.message_from_bytes(raw, policy=default)
        assert mail["In-Reply-To"] is None and mail["References"] is None  # nothing safe to thread on
    assert messages[0].content.references == ("<a@pbx.example.com>",)


def flac_silence(seconds: float) -> bytes:
    return silence_pyav("flac", "flac", 8000, seconds, frame=32768, options={"frame_size": "32768"})


def test_budget_refuses_a_declared_length_before_decoding() -> None:
    data = flac_silence(864)
    with pytest.raises(AudioBudgetError, match=r"declares 86\d s .* 100 s left .*audio\.max_mail_duration") as err:
        decode_audio(data, name="part 3", budget=100.0)
    assert err.value.declared
    assert decode_audio(data, name="part 3", budget=900.0).duration > 860  # within budget: decoded as before


def test_budget_stops_an_undeclared_length_while_decoding() -> None:
    data = bytearray(flac_silence(864))
    fields = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)  # STREAMINFO total samples: unknown
    data[18:26] = fields.to_bytes(8, "big")
    with pytest.raises(AudioBudgetError, match=r"decodes to more than 10\d s .* 100 s left") as err:
        decode_audio(bytes(data), name="part 1", budget=100.0)
    assert not err.value.declared
    with pytest.raises(AudioTooLongError):  # the per-part limit still comes first
        decode_audio(bytes(data), name="part 1", settings=AudioSettings(max_duration=60), budget=100.0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'mv.db'}", Sealer(create_keyring(tmp_path / "keys.json")))
    yield s
    s.close()


def _item(raw: bytes, uid: int) -> SourceItem:
    return SourceItem(SourceRef("work", "INBOX", 7, uid), raw, len(raw), None)


@pytest.mark.parametrize("stage", STAGES)
def test_an_unexpected_exception_in_any_stage_quarantines_that_item_only(
    stage: str, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_asr(data: bytes, name: str, budget: float) -> Transcript:
        raise AssertionError("text mails never reach the transcriber")

    monkeypatch.setenv(FAULT_ENV, stage)
    pipeline = Pipeline(Settings(general=GeneralSettings(data_dir=tmp_path)), store, no_asr)
    ctx = Context("work", OWNER, (OWNER,))
    faulty = pipeline.process(_item(FAULT_MARK + b" yes\r\n" + text_only_mail(), 1), ctx)
    assert faulty.status == "quarantined"
    after = pipeline.process(_item(text_only_mail().replace(b"<lunch@", b"<lunch-2@"), 2), ctx)
    assert after.status == "text"
    [q] = store.list_quarantine()
    assert q.uid == 1 and q.reason.startswith(f"InjectedFault in the {stage} stage at ")
    assert "Lunch" not in q.reason and "dave" not in q.reason.lower()  # a reference, never content
    assert pipeline.process(_item(FAULT_MARK + b" yes\r\n" + text_only_mail(), 1), ctx).status == "duplicate"
