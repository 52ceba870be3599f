"""Reference weights: the switch, the shipped files and their provenance, and the tiny VAE they hold."""
import json

import pytest
import torch

from samod import reference
from samod.autoencoder import Autoencoder, AutoencoderConfig
from samod.profiles import get_profile


def test_weights_source_reads_the_switch_and_names_the_choices(monkeypatch):
    monkeypatch.delenv("SAMOD_WEIGHTS", raising=False)
    assert reference.weights_source() == "reference"
    monkeypatch.setenv("SAMOD_WEIGHTS", " Own ")
    assert reference.weights_source() == "own"
    assert reference.weights_source("reference") == "reference"  # an argument beats the environment
    monkeypatch.setenv("SAMOD_WEIGHTS", "mine")
    with pytest.raises(ValueError, match="'reference'.*'own'.*export SAMOD_WEIGHTS=own"):
        reference.weights_source()


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A reference autoencoder for the tiny profile in a temporary weights folder."""
    monkeypatch.setattr(reference, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setenv("SAMOD_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    config = AutoencoderConfig(channels=2, latent_dim=4)
    model = Autoencoder(config)
    info = {"steps": 7, "wall_minutes": 1.5, "hardware": "test CPU", "recipe": {"model": json.loads(json.dumps(config.__dict__))}}
    reference.save_reference("autoencoder", model.state_dict(), info, get_profile("tiny"))
    return model


def test_save_and_load_reference_round_trip_in_float16(shipped):
    path = reference.reference_file("autoencoder", get_profile("tiny"))
    assert path.exists() and path.with_suffix(".json").exists()
    loaded = reference.load_reference("autoencoder", get_profile("tiny"))
    for name, value in shipped.state_dict().items():
        assert loaded[name].dtype == torch.float32
        assert torch.equal(loaded[name], value.half().float())
    assert reference.provenance("autoencoder", get_profile("tiny"))["steps"] == 7
    with pytest.raises(FileNotFoundError, match="make weights"):
        reference.provenance("autoencoder", get_profile("small"))


def test_load_autoencoder_follows_the_switch(shipped, monkeypatch):
    from samod.autoencoder_training import autoencoder_checkpoint, autoencoder_weights, load_autoencoder

    tiny = get_profile("tiny")
    choice = autoencoder_weights(tiny, "reference")
    assert choice.reference and choice.path == reference.reference_file("autoencoder", tiny)
    assert "reference weights" in choice.sentence and "SAMOD_WEIGHTS=own" in choice.sentence
    model = load_autoencoder(tiny, source="reference")
    x = torch.randn(1, 2, 4096)
    with torch.no_grad():
        assert torch.allclose(model.encode(x, sample=False), shipped.half().float().encode(x, sample=False))
    # own: this profile's checkpoint, which does not exist here
    assert not autoencoder_weights(tiny, "own").reference
    assert autoencoder_checkpoint(tiny, "own") == tiny.checkpoint_dir / "autoencoder" / "last.safetensors"
    with pytest.raises(FileNotFoundError, match="no trained autoencoder"):
        load_autoencoder(tiny, source="own")
    # a profile that ships nothing falls back to its own checkpoint, and says why
    small = autoencoder_weights(get_profile("small"), "reference")
    assert not small.reference and "ships no reference autoencoder" in small.sentence


def test_shipped_tiny_autoencoder_is_small_and_documented():
    path = reference.reference_file("autoencoder", get_profile("tiny"))
    if not path.exists():
        pytest.skip("no reference autoencoder shipped for the tiny profile")
    info = reference.provenance("autoencoder", get_profile("tiny"))
    for key in ("commit", "command", "seed", "steps", "audio_hours", "wall_minutes", "hardware", "final", "curve"):
        assert key in info, key
    assert path.stat().st_size < 40e6
    state = reference.load_reference("autoencoder", get_profile("tiny"))
    model = Autoencoder(AutoencoderConfig(**{k: tuple(v) if isinstance(v, list) else v
                                             for k, v in info["recipe"]["model"].items()}))
    model.load_state_dict(state)  # every key, every shape
    assert info["final"]["step"] == info["steps"]
