"""PGP/MIME delivery, read back by real GnuPG: protected headers, intact parts, key refusals and the policy."""

from __future__ import annotations

import dataclasses
import email
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from gpgreader import Gpg, new_gpg

from mailvoice.config import DeliverySettings, GeneralSettings, Settings
from mailvoice.errors import ConfigError, PgpKeyError, PgpRequiredError
from mailvoice.pgpkeys import import_key, load_keys, lookup
from mailvoice.pgpmime import encrypt_mail, is_encrypted, protect, protect_outgoing
from mailvoice.render import VoicemailMail, build_voicemail_mail
from mailvoice.store.records import Envelope, NewOutgoing
from mailvoice.types import Attachment, Segment, Transcript

OWNER = "owner@example.org"
CALLER = "Marcus Whitfield"
TEXT = "Hello this is Marcus from Northwind Logistics about the delivery tomorrow morning"
AUDIO = b"RIFF" + bytes(range(256)) * 64


@dataclasses.dataclass
class Keys:
    gpg: Gpg
    dir: Path
    owner: Path
    other: Path
    sign_only: Path
    expired: Path
    revoked: Path


@pytest.fixture(scope="module")
def keys() -> Iterator[Keys]:
    gpg = new_gpg()
    out = gpg.home / "exported"
    out.mkdir()
    gpg.generate(OWNER)
    gpg.generate("other@example.org")
    gpg.generate("signonly@example.org", encrypt=False)
    gpg.generate("old@example.org", faked_time="20200101T000000", expire="1d")
    gpg.revoke(gpg.generate("revoked@example.org"))
    names = ("owner", "other", "signonly", "old", "revoked")
    addrs = (OWNER, "other@example.org", "signonly@example.org", "old@example.org", "revoked@example.org")
    paths = [gpg.export(a, out / f"{n}.asc") for n, a in zip(names, addrs, strict=True)]
    try:
        yield Keys(gpg, out, *paths)
    finally:
        gpg.close()


def settings_for(tmp_path: Path, **delivery: Any) -> Settings:
    return Settings(general=GeneralSettings(data_dir=tmp_path / "data"), delivery=DeliverySettings(**delivery))


def transcript_mail() -> bytes:
    t = Transcript(text=TEXT, language="en", duration=7.0, segments=(Segment(0.0, 7.0, TEXT, -0.2, 0.01),))
    vm = VoicemailMail(
        caller=CALLER,
        transcript=t,
        received="Tue 01 Dec 2026 09:00 UTC",
        original_subject="New voicemail from 5551234",
        original_message_id="<vm-1@pbx.example.com>",
        original_references="",
        audio=Attachment("msg0001.wav", "audio/wav", AUDIO),
    )
    msg = build_voicemail_mail(
        vm, sender="bot@example.org", recipients=(OWNER,), message_id="<t1@example.org>", uncertain_below=0.5
    )
    return msg.as_bytes(policy=SMTP)


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


def assert_outer_leaks_nothing(raw: bytes) -> EmailMessage:
    outer = parse(raw)
    assert outer.get_content_type() == "multipart/encrypted"
    assert outer.get_param("protocol") == "application/pgp-encrypted"
    parts = list(outer.iter_parts())
    assert [p.get_content_type() for p in parts] == ["application/pgp-encrypted", "application/octet-stream"]
    assert "Version: 1" in str(parts[0].get_content())
    # everything but the ciphertext (random base64 may spell any short word by chance)
    lowered = re.sub(rb"-----BEGIN PGP MESSAGE-----.*-----END PGP MESSAGE-----", b"", raw, flags=re.S).lower()
    assert len(lowered) < 2000
    for secret in (b"marcus", b"northwind", b"whitfield", b"5551234", b"msg0001", b"riff"):
        assert secret not in lowered, secret
    return outer


def test_transcript_mail_decrypts_with_gpg_and_keeps_every_part(keys: Keys, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    import_key(settings, keys.owner.read_bytes(), keys.owner)
    raw = protect(settings, transcript_mail(), (OWNER,))
    outer = assert_outer_leaks_nothing(raw)
    assert outer["Subject"] == "Voicemail"
    assert outer["To"] == OWNER and outer["In-Reply-To"] == "<vm-1@pbx.example.com>"
    assert outer["X-Mailvoice"] == "transcript"  # a copy in a watched folder is still recognised as ours

    plain, status = keys.gpg.decrypt(raw)
    assert "DECRYPTION_OKAY" in status
    inner = parse(plain)
    assert inner.get_param("protected-headers") == "v1"
    assert inner["Subject"] == "Re: New voicemail from 5551234"  # the real (threading) subject travels inside
    assert inner["HP-Outer"] is not None
    body = inner.get_body(preferencelist=("plain",))
    assert body is not None and "Northwind" in str(body.get_content()) and CALLER in str(body.get_content())
    html = inner.get_body(preferencelist=("html",))
    assert html is not None and "Northwind" in str(html.get_content())
    (att,) = list(inner.iter_attachments())
    assert att.get_filename() == "msg0001.wav" and att.get_content() == AUDIO


def test_signed_mail_verifies_with_gpg(keys: Keys, tmp_path: Path) -> None:
    import pysequoia

    tsk = pysequoia.Tsk.generate("mailvoice <bot@example.org>")
    sign_key = tmp_path / "sign.key"
    sign_key.write_bytes(bytes(tsk))
    sign_key.chmod(0o600)
    keys.gpg.run("--import", stdin=str(tsk.extract_certificate()).encode())
    settings = settings_for(tmp_path, pgp_sign_key=sign_key)
    import_key(settings, keys.owner.read_bytes(), keys.owner)
    raw = protect(settings, transcript_mail(), (OWNER,))
    plain, _ = keys.gpg.decrypt(raw)
    signed = parse(plain)
    assert signed.get_content_type() == "multipart/signed"
    assert str(signed.get_param("micalg")).startswith("pgp-sha")
    content, sig = list(signed.iter_parts())
    assert sig.get_content_type() == "application/pgp-signature"
    assert content.get_param("protected-headers") == "v1"
    # RFC 3156: the signature covers the first part's exact bytes, CRLF line ends
    boundary = signed.get_boundary()
    assert boundary is not None
    signed_bytes = plain.split(f"--{boundary}\r\n".encode(), 2)[1].rsplit(b"\r\n", 1)[0]
    (tmp_path / "content").write_bytes(signed_bytes)
    (tmp_path / "content.sig").write_bytes(sig.get_payload(decode=True))
    verify = keys.gpg.run("--status-fd", "1", "--verify", str(tmp_path / "content.sig"), str(tmp_path / "content"))
    assert b"GOODSIG" in verify.stdout
    sign_key.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        protect(settings, transcript_mail(), (OWNER,))
    # before the outbox, a bad signing key never loses the mail (the outbox retries and names the fix)
    out = NewOutgoing(message_id_header="<t1@x.org>", raw=transcript_mail(), envelope=Envelope("b@x.org", (OWNER,)))
    assert protect_outgoing(settings, out) is out


@pytest.mark.parametrize(
    ("which", "why"),
    [
        ("sign_only", "no valid encryption subkey"),
        ("expired", "expired on 2020-01-02"),
        ("revoked", "is revoked"),
    ],
)
def test_unusable_keys_are_refused_at_import_and_at_send(keys: Keys, tmp_path: Path, which: str, why: str) -> None:
    settings = settings_for(tmp_path, pgp="required", pgp_keys=(getattr(keys, which),))
    with pytest.raises(PgpKeyError, match=why):
        import_key(settings, getattr(keys, which).read_bytes(), getattr(keys, which))
    assert not (tmp_path / "data" / "pgp-keys").exists() or not any((tmp_path / "data" / "pgp-keys").iterdir())
    address = load_keys(settings)[0].addresses[0]
    with pytest.raises(PgpRequiredError) as info:  # a configured key file with the same key is refused too
        protect(settings, transcript_mail(), (address,))
    assert why in info.value.missing[0][1]


def test_secret_key_is_refused(keys: Keys, tmp_path: Path) -> None:
    import pysequoia

    settings = settings_for(tmp_path)
    secret = bytes(pysequoia.Tsk.generate("x <x@example.org>"))
    for data in (secret, str(pysequoia.Tsk.from_bytes(secret)).encode()):
        with pytest.raises(PgpKeyError, match="secret key"):
            import_key(settings, data, Path("x.key"))


def test_policy_missing_and_wrong_keys(keys: Keys, tmp_path: Path) -> None:
    raw = transcript_mail()
    out = NewOutgoing(message_id_header="<t1@example.org>", raw=raw, envelope=Envelope("bot@example.org", (OWNER,)))
    # when-key, no key at all: plaintext, unchanged
    assert protect_outgoing(settings_for(tmp_path / "a"), out) is out
    # a key for another address only ("wrong key"): required refuses, when-key sends plaintext
    wrong = settings_for(tmp_path / "b", pgp="required", pgp_keys=(keys.other,))
    with pytest.raises(PgpRequiredError) as info:
        protect(wrong, raw, (OWNER,))
    assert info.value.missing == ((OWNER, "no OpenPGP key for this address"),)
    assert OWNER not in str(info.value)
    assert protect(dataclasses.replace(wrong, delivery=DeliverySettings(pgp_keys=(keys.other,))), raw, (OWNER,)) == raw
    # the enqueue hook leaves it for the outbox (which holds it), never drops it
    assert protect_outgoing(wrong, out) is out
    # off: never encrypts, even with a key
    off = settings_for(tmp_path / "c", pgp="off", pgp_keys=(keys.owner,))
    assert protect(off, raw, (OWNER,)) == raw
    # two recipients, one without a key: required refuses the whole mail
    both = settings_for(tmp_path / "d", pgp="required", pgp_keys=(keys.owner,))
    with pytest.raises(PgpRequiredError):
        protect(both, raw, (OWNER, "nokey@example.org"))
    enc = protect(both, raw, (OWNER,))
    assert is_encrypted(enc) and protect(both, enc, (OWNER,)) == enc  # never encrypted twice


def test_lookup_uses_every_usable_key_of_an_address(keys: Keys) -> None:
    found = load_keys(settings_for(keys.dir, pgp_keys=(keys.dir,)))
    result = lookup(found, (f"Owner <{OWNER.upper()}>", "other@example.org", "old@example.org"))
    assert sorted(a for k in result.keys for a in k.addresses) == ["other@example.org", OWNER]
    assert result.missing[0][0] == "old@example.org" and "expired" in result.missing[0][1]


def test_encrypted_to_several_recipients_each_can_read(keys: Keys, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, pgp_keys=(keys.owner, keys.other))
    found = lookup(load_keys(settings), (OWNER, "other@example.org"))
    raw = encrypt_mail(transcript_mail(), found.keys)
    listing = keys.gpg.run("--list-packets", stdin=parse(raw).get_payload()[1].get_payload().encode(), check=False)
    assert listing.stdout.count(b":pubkey enc packet:") == 2


def test_cli_keys_import_list_remove(keys: Keys, tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[general]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVOICE_")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "mailvoice", "--config", str(cfg), "keys", "pgp", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    bad = cli("import", str(keys.expired))
    assert bad.returncode == 1 and "expired on 2020-01-02" in bad.stderr and "Traceback" not in bad.stderr
    assert cli("import", str(keys.sign_only)).returncode == 1
    ok = cli("import", str(keys.owner))
    assert ok.returncode == 0, ok.stderr
    listed = cli("list", "--json")
    assert listed.returncode == 0 and f'"{OWNER}"' in listed.stdout and '"usable": true' in listed.stdout
    fpr = keys.gpg.fingerprint(OWNER)
    stored = tmp_path / "data" / "pgp-keys" / f"{fpr.lower()}.asc"
    assert stored.stat().st_mode & 0o077 == 0 and b"PUBLIC KEY BLOCK" in stored.read_bytes()
    assert cli("remove", fpr[-16:]).returncode == 0
    assert not stored.exists()
    assert cli("remove", OWNER).returncode == 1


def test_mail_is_encrypted_before_it_enters_the_sealed_outbox(keys: Keys, tmp_path: Path) -> None:
    from mailvoice.compose import compose_quarantine_notice
    from mailvoice.crypto import Sealer, create_keyring
    from mailvoice.pipeline import Context
    from mailvoice.spoken.summary import SpokenSummary, build_script, summary_records
    from mailvoice.store import Store, utcnow

    settings = dataclasses.replace(
        settings_for(tmp_path, owners=(OWNER,), pgp_keys=(keys.owner,)),
        general=GeneralSettings(data_dir=tmp_path / "data", key_file=tmp_path / "keys.json"),
    )
    script = build_script([], settings, account="home", since="24h", now=utcnow())
    message, summary = summary_records(settings, SpokenSummary(script, b"OggS" + AUDIO, "ogg", 1.0), send=True)
    ctx = Context(account="home", address="bot@example.org", recipients=(OWNER,))
    notice = compose_quarantine_notice(settings, None, ctx, "bad audio from Marcus", had_audio=True, source="x")
    assert summary is not None
    ring = create_keyring(settings.general.resolved_key_file())
    with Store.open(settings.general.resolved_store_url(), Sealer(ring)) as store:
        store.record(messages=(message,), outgoing=(summary, notice))
        for queued in (store.get_outgoing(summary.id), store.get_outgoing(notice.id)):
            assert is_encrypted(queued.raw)  # what the outbox holds is already PGP/MIME
            inner = parse(keys.gpg.decrypt(queued.raw)[0])
            assert inner.get_param("protected-headers") == "v1"
    assert parse(notice.raw)["Subject"] == "..." and b"marcus" not in notice.raw.lower()
    summary_inner = parse(keys.gpg.decrypt(summary.raw)[0])
    (spoken,) = list(summary_inner.iter_attachments())
    assert spoken.get_content() == b"OggS" + AUDIO


def test_when_key_with_an_unusable_key_sends_plaintext_and_says_why(
    keys: Keys, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path, pgp_keys=(keys.expired,))
    raw = transcript_mail()
    with caplog.at_level("WARNING", logger="mailvoice.pgpmime"):
        assert protect(settings, raw, ("old@example.org",)) == raw
    fpr = keys.gpg.fingerprint("old@example.org")
    assert any(fpr in r.getMessage() and "expired on 2020-01-02" in r.getMessage() for r in caplog.records)
    assert not any("old@example.org" in r.getMessage() for r in caplog.records)  # logs name keys, not people
