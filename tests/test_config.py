"""Settings are parsed once, typed, and every bad value names the key, the value and the expected form."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailvoice.config import load_settings
from mailvoice.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no user config file
    s = load_settings(None, environ={"MAILVOICE_CONFIG": ""})
    assert s.source is None
    assert s.asr.model == "tiny.en" and s.asr.compute_type == "int8"
    assert s.tts.engine == "piper" and s.tts.format == "ogg"
    assert s.accounts == () and s.audio.max_duration == 900.0


def test_file_and_environment_override(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        """
[asr]
beam_size = 3
language = "en"

[[accounts]]
name = "work"
host = "imap.example.com"
username = "me@example.com"
password_env = "WORK_PW"
folders = ["INBOX", "Voicemail"]
""",
    )
    s = load_settings(
        cfg,
        environ={
            "MAILVOICE_ASR__BEAM_SIZE": "1",
            "MAILVOICE_AUDIO__NORMALIZE": "false",
            "MAILVOICE_GENERAL__DATA_DIR": str(tmp_path / "d"),
        },
    )
    assert s.asr.beam_size == 1 and s.asr.language == "en"
    assert s.audio.normalize is False
    assert s.general.data_dir == tmp_path / "d"
    assert s.accounts[0].folders == ("INBOX", "Voicemail") and s.accounts[0].tls == "implicit"
    assert s.source == cfg


@pytest.mark.parametrize(
    ("text", "env", "needles"),
    [
        ('[asr]\nbeam_size = "five"\n', {}, ["asr.beam_size", "'five'", "an integer"]),
        ('[tts]\nformat = "aiff"\n', {}, ["tts.format", "'aiff'", "'ogg'"]),
        ('[asr]\nmodle = "x"\n', {}, ["asr.modle", "model"]),
        ("[nope]\n", {}, ["nope", "known sections"]),
        ('[[accounts]]\nname = "a"\n', {}, ["accounts[0]", "host", "username"]),
        ("", {"MAILVOICE_ASR__BEAM_SIZE": "lots"}, ["asr.beam_size", "'lots'", "an integer"]),
        ("", {"MAILVOICE_AUDIO__NORMALIZE": "maybe"}, ["audio.normalize", "true or false"]),
        ("", {"MAILVOICE_WRONG__X": "1"}, ["MAILVOICE_WRONG__X", "unknown section"]),
        ("[asr\n", {}, ["not valid TOML"]),
    ],
)
def test_bad_values_name_key_value_and_form(tmp_path: Path, text: str, env: dict[str, str], needles: list[str]) -> None:
    cfg = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ=env)
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))


def test_an_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_duplicate_account_names_are_refused(tmp_path: Path) -> None:
    one = '[[accounts]]\nname = "a"\nhost = "h"\nusername = "u"\n'
    with pytest.raises(ConfigError, match="unique"):
        load_settings(write(tmp_path, one + one), environ={})


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o666])
def test_password_file_looser_than_0640_is_refused(tmp_path: Path, mode: int) -> None:
    from mailvoice.config import read_secret

    pw = tmp_path / "imap.pw"
    pw.write_text("s3cret\n")
    pw.chmod(mode)
    with pytest.raises(ConfigError, match=rf"imap: password file {pw} has mode {mode:04o}.*run: chmod 600 {pw}"):
        read_secret("imap", "", pw, environ={})


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400])
def test_password_file_private_enough_is_read(tmp_path: Path, mode: int) -> None:
    from mailvoice.config import read_secret

    pw = tmp_path / "imap.pw"
    pw.write_text("s3cret\n")
    pw.chmod(mode)
    assert read_secret("imap", "", pw, environ={}) == "s3cret"


def test_password_file_must_be_a_regular_file(tmp_path: Path) -> None:
    from mailvoice.config import read_secret

    fifo = tmp_path / "pw.fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_secret("smtp", "", fifo, environ={})
