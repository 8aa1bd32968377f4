"""Coqui engine (optional extra): a tiny random VITS model built here, loaded the way a user's model is loaded.

No Coqui-format weights ship in any reachable package, so the test builds its own model with Coqui's classes
(character tokenizer, no phonemizer), saves checkpoint + config.json into tmp_path, and loads that directory
through our engine (``TTS(model_path=..., config_path=...)``). Run it in an environment with the extra:
``pip install torch==2.13.0 && pip install -e '.[coqui,dev]'``, then ``pytest -m coqui``.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
from speech import general

from mailvoice.config import TtsSettings
from mailvoice.engines import load_tts
from mailvoice.engines.base import TtsEngine
from mailvoice.errors import MissingExtraError, ModelNotFoundError

HAVE_TTS = importlib.util.find_spec("TTS") is not None
SAMPLE_RATE = 16_000
needs_coqui = pytest.mark.skipif(not HAVE_TTS, reason="coqui extra not installed: pip install 'mailvoice[coqui]'")


def build_tiny_vits(directory: Path) -> Path:
    """A ~330k-parameter VITS with random weights: checkpoint + config.json, as a downloaded model has."""
    from mailvoice.engines.coqui import _import_torchaudio

    _import_torchaudio()  # the same guard the engine uses, before Coqui's model classes import torchaudio
    import torch
    from TTS.config.shared_configs import BaseAudioConfig
    from TTS.tts.configs.shared_configs import CharactersConfig
    from TTS.tts.configs.vits_config import VitsArgs, VitsConfig
    from TTS.tts.models.vits import Vits

    torch.manual_seed(0)
    hop = 64  # must equal the product of the decoder's upsample rates
    audio = BaseAudioConfig(
        sample_rate=SAMPLE_RATE, win_length=256, hop_length=hop, fft_size=256, num_mels=40, mel_fmin=0, mel_fmax=None
    )
    args = VitsArgs(
        out_channels=256 // 2 + 1,
        hidden_channels=32,
        hidden_channels_ffn_text_encoder=64,
        num_heads_text_encoder=2,
        num_layers_text_encoder=1,
        num_layers_posterior_encoder=1,
        num_layers_flow=1,
        use_sdp=False,
        resblock_type_decoder="1",
        resblock_kernel_sizes_decoder=[3],
        resblock_dilation_sizes_decoder=[[1, 3, 5]],
        upsample_rates_decoder=[4, 4, 4],
        upsample_initial_channel_decoder=32,
        upsample_kernel_sizes_decoder=[8, 8, 8],
        init_discriminator=False,
    )
    characters = CharactersConfig(
        characters_class="TTS.tts.models.vits.VitsCharacters",
        characters="abcdefghijklmnopqrstuvwxyz",
        punctuations=" .,!?'-",
        pad="_",
        eos=None,
        bos=None,
        blank="<BLNK>",
        phonemes=None,
        is_unique=False,
        is_sorted=True,
    )
    config = VitsConfig(
        audio=audio,
        model_args=args,
        use_phonemes=False,
        text_cleaner="english_cleaners",
        characters=characters,
        add_blank=True,
    )
    model = Vits(config)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, directory / "model.pth")
    config.save_json(str(directory / "config.json"))
    return directory


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vits(tmp_path_factory.mktemp("coqui") / "tiny-vits")


@pytest.mark.coqui
@needs_coqui
def test_tiny_vits_loads_and_speaks_sentence_by_sentence(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    engine = load_tts(TtsSettings(engine="coqui", voice=str(model_dir), threads=1), general())
    assert isinstance(engine, TtsEngine)
    assert engine.name == "coqui" and engine.sample_rate == SAMPLE_RATE
    chunks = list(engine.synthesize("Hello there. How are you today?\n\nSee you soon."))
    assert [c.text for c in chunks] == ["Hello there.", "How are you today?", "See you soon."]
    assert [c.pause_after for c in chunks] == [0.35, 0.8, 0.0]
    for chunk in chunks:
        samples = chunk.audio.samples
        assert chunk.audio.sample_rate == SAMPLE_RATE
        assert samples.dtype == np.float32 and samples.ndim == 1
        assert np.isfinite(samples).all() and float(np.abs(samples).max()) > 0.0
        # hop 64 at 16 kHz: every character yields at least a frame; random durations stay within reason
        assert 0.05 < chunk.audio.duration < 0.5 * len(chunk.text) + 2.0
    for spoken in ("hello there", "how are you", "see you soon"):
        assert spoken not in caplog.text.lower()  # Coqui's records that echo the input are filtered out


@pytest.mark.coqui
@needs_coqui
def test_model_dir_without_checkpoint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="checkpoint"):
        load_tts(TtsSettings(engine="coqui", voice=str(tmp_path)), general())


@pytest.mark.skipif(HAVE_TTS, reason="the coqui extra is installed here")
def test_missing_extra_names_the_install_command(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.pth").write_bytes(b"")
    with pytest.raises(MissingExtraError, match=r"pip install 'mailvoice\[coqui\]'"):
        load_tts(TtsSettings(engine="coqui", voice=str(tmp_path)), general())


def test_torchaudio_guard_applies_only_to_missing_cuda_libraries() -> None:
    from mailvoice.engines.coqui import _missing_cuda_library

    cuda = OSError("Could not load this library: /venv/site-packages/torchaudio/lib/_torchaudio.abi3.so")
    cuda.__cause__ = OSError("libc10_cuda.so: cannot open shared object file: No such file or directory")
    assert _missing_cuda_library(cuda)
    other = OSError("Could not load this library: /venv/site-packages/torchaudio/lib/_torchaudio.abi3.so")
    other.__cause__ = OSError("libsox.so: cannot open shared object file")
    assert not _missing_cuda_library(other)
    assert not _missing_cuda_library(OSError("libc10_cuda.so: cannot open shared object file (some other lib)"))
