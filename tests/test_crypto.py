"""Keys and sealing: round trips, tampering, moved ciphertexts, unknown keys, key file modes, rotation, env key."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailvoice import crypto
from mailvoice.crypto import (
    KEY_ENV,
    Keyring,
    Sealer,
    blob_key_id,
    create_keyring,
    env_keyring,
    key_id_for,
    load_key,
    load_keyring,
    record_aad,
    scrub_environment,
)
from mailvoice.errors import KeyFileError, UnsealError

AAD = record_aad("messages", "0123abcd", "payload")


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "keys.json"


@pytest.fixture
def ring(key_path: Path) -> Keyring:
    return create_keyring(key_path)


@pytest.fixture(autouse=True)
def _no_captured_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "_captured_env_key", None)
    monkeypatch.delenv(KEY_ENV, raising=False)


def test_seal_open_round_trip(ring: Keyring) -> None:
    sealer = Sealer(ring)
    blob = sealer.seal(b"hello voicemail", AAD)
    assert b"hello voicemail" not in blob
    assert sealer.open(blob, AAD) == b"hello voicemail"
    assert blob_key_id(blob) == ring.active
    assert sealer.seal(b"hello voicemail", AAD) != blob  # fresh nonce each time


def test_json_round_trip(ring: Keyring) -> None:
    sealer = Sealer(ring)
    value = {"text": "Grüße, 你好", "n": [1, 2.5, None]}
    assert sealer.open_json(sealer.seal_json(value, AAD), AAD) == value


@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=512), aad=st.binary(max_size=64))
def test_round_trip_any_bytes(plaintext: bytes, aad: bytes) -> None:
    sealer = Sealer(Keyring(active="k", keys={"k": b"\x07" * 32}))
    assert sealer.open(sealer.seal(plaintext, aad), aad) == plaintext


def test_bit_flip_in_any_byte_is_refused(ring: Keyring) -> None:
    sealer = Sealer(ring)
    blob = sealer.seal(b"secret words", AAD)
    for index in range(len(blob)):
        for bit in (0x01, 0x80):
            tampered = bytearray(blob)
            tampered[index] ^= bit
            with pytest.raises(UnsealError):
                sealer.open(bytes(tampered), AAD)


def test_truncated_or_extended_blob_is_refused(ring: Keyring) -> None:
    sealer = Sealer(ring)
    blob = sealer.seal(b"secret words", AAD)
    for cut in (0, 1, 2, 10, len(blob) - 1):
        with pytest.raises(UnsealError):
            sealer.open(blob[:cut], AAD)
    with pytest.raises(UnsealError):
        sealer.open(blob + b"\x00", AAD)


def test_ciphertext_moved_to_another_row_or_field_is_refused(ring: Keyring) -> None:
    sealer = Sealer(ring)
    a = sealer.seal(b"for row a", record_aad("messages", "aaaa", "payload"))
    b = sealer.seal(b"for row b", record_aad("messages", "bbbb", "payload"))
    with pytest.raises(UnsealError, match="moved"):
        sealer.open(a, record_aad("messages", "bbbb", "payload"))
    with pytest.raises(UnsealError):
        sealer.open(b, record_aad("messages", "aaaa", "payload"))
    with pytest.raises(UnsealError):
        sealer.open(a, record_aad("messages", "aaaa", "audio"))
    with pytest.raises(UnsealError):
        sealer.open(a, record_aad("outbox", "aaaa", "payload"))


def test_unknown_key_id_names_it(ring: Keyring) -> None:
    other = Keyring(active="feedface", keys={"feedface": os.urandom(32)})
    blob = Sealer(other).seal(b"x", AAD)
    with pytest.raises(UnsealError, match="feedface") as info:
        Sealer(ring).open(blob, AAD)
    assert str(ring.source) in str(info.value)


def test_key_file_created_private(key_path: Path) -> None:
    ring = create_keyring(key_path)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    doc = json.loads(key_path.read_text())
    assert doc["version"] == 1 and doc["active"] == ring.active
    assert base64.b64decode(doc["keys"][ring.active]) == ring.keys[ring.active]
    assert len(ring.keys[ring.active]) == 32
    assert "keys=" not in repr(ring)  # never printed by accident


def test_key_file_never_overwritten(key_path: Path, ring: Keyring) -> None:
    before = key_path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        create_keyring(key_path)
    assert key_path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_loose_key_file_refused_with_chmod(key_path: Path, ring: Keyring, mode: int) -> None:
    os.chmod(key_path, mode)
    with pytest.raises(KeyFileError) as info:
        load_keyring(key_path)
    assert f"chmod 600 {key_path}" in str(info.value)
    assert isinstance(info.value, PermissionError)


def test_owner_only_modes_accepted(key_path: Path, ring: Keyring) -> None:
    for mode in (0o600, 0o400):
        os.chmod(key_path, mode)
        loaded = load_keyring(key_path)
        assert loaded.active == ring.active and dict(loaded.keys) == dict(ring.keys)


def test_missing_key_file_says_run_init(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="mailvoice init"):
        load_keyring(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"version": 2, "active": "a", "keys": {}}',
        b'{"version": 1, "active": "a", "keys": {"b": "AAAA"}}',
        b'{"version": 1, "active": "a", "keys": {"a": "AAAA"}}',
        b'{"version": 1, "active": "a", "keys": {"a": "!!!notbase64"}}',
    ],
)
def test_malformed_key_file_names_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keys.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(KeyFileError, match=str(path)):
        load_keyring(path)


def test_rotate_keeps_old_records_open(key_path: Path, ring: Keyring) -> None:
    old_blob = Sealer(ring).seal(b"old record", AAD)
    rotated = ring.rotate(key_path)
    assert rotated.active != ring.active and set(rotated.keys) == {ring.active, rotated.active}
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in key_path.parent.iterdir()) == ["keys.json"]  # no temp file left
    reloaded = load_keyring(key_path)
    assert reloaded.active == rotated.active
    sealer = Sealer(reloaded)
    new_blob = sealer.seal(b"new record", AAD)
    assert blob_key_id(new_blob) == rotated.active
    assert sealer.open(old_blob, AAD) == b"old record"
    assert sealer.open(new_blob, AAD) == b"new record"
    retired = reloaded.retire(key_path, [ring.active])
    assert set(load_keyring(key_path).keys) == {rotated.active} == set(retired.keys)
    with pytest.raises(UnsealError, match=ring.active):
        Sealer(load_keyring(key_path)).open(old_blob, AAD)


def test_sealer_rereads_key_file_rotated_elsewhere(key_path: Path, ring: Keyring) -> None:
    running = Sealer(ring)
    rotated = load_keyring(key_path).rotate(key_path)
    blob = Sealer(rotated).seal(b"sealed by the rotating process", AAD)
    assert running.open(blob, AAD) == b"sealed by the rotating process"
    assert running.active_key_id == rotated.active


def test_env_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = os.urandom(32)
    monkeypatch.setenv(KEY_ENV, base64.b64encode(key).decode())
    ring = load_key(tmp_path / "absent.json")
    assert ring.active == key_id_for(key) and ring.keys[ring.active] == key and ring.source is None
    old = os.urandom(32)
    monkeypatch.setenv(KEY_ENV, f"{base64.b64encode(key).decode()}, {base64.b64encode(old).decode()}")
    both = env_keyring()
    assert both is not None and both.active == key_id_for(key) and set(both.keys) == {key_id_for(key), key_id_for(old)}


@pytest.mark.parametrize("value", ["", "not base64!", base64.b64encode(b"short").decode(), ","])
def test_bad_env_key_refused(monkeypatch: pytest.MonkeyPatch, value: str, tmp_path: Path) -> None:
    monkeypatch.setenv(KEY_ENV, value)
    if not value:
        with pytest.raises(KeyFileError, match="mailvoice init"):  # empty = unset: falls back to the file
            load_key(tmp_path / "absent.json")
        return
    with pytest.raises(KeyFileError, match=KEY_ENV):
        env_keyring()


def test_scrubbed_key_absent_from_children(monkeypatch: pytest.MonkeyPatch) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv(KEY_ENV, key)
    assert scrub_environment() is True
    assert KEY_ENV not in os.environ
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('MAILVOICE_KEY', 'ABSENT'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "ABSENT"
    shell = subprocess.run(["sh", "-c", "env"], capture_output=True, text=True, check=True)
    assert key not in shell.stdout
    ring = env_keyring()  # still usable by this process
    assert ring is not None and ring.keys[ring.active] == base64.b64decode(key)
    assert scrub_environment() is False
