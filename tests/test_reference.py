"""Reference weights: the switch, the shipped files and their provenance, and the tiny VAE they hold."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from samod import weights
from samod.autoencoder import Autoencoder, AutoencoderConfig
from samod.profiles import get_profile


def test_weights_source_reads_the_switch_and_names_the_choices(monkeypatch):
    monkeypatch.delenv("SAMOD_WEIGHTS", raising=False)
    assert weights.weights_source() == "reference"
    monkeypatch.setenv("SAMOD_WEIGHTS", " Own ")
    assert weights.weights_source() == "own"
    assert weights.weights_source("reference") == "reference"  # an argument beats the environment
    monkeypatch.setenv("SAMOD_WEIGHTS", "mine")
    with pytest.raises(ValueError, match="'reference'.*'own'.*export SAMOD_WEIGHTS=own"):
        weights.weights_source()


def test_provenance_names_the_command_that_ran(tmp_path):
    """Not always `python -m samod.reference`: the campaign and the demo page record their own command."""
    code = "import sys; sys.argv[1:] = ['--until', '5']; from samod.weights import command_line; print(command_line())"
    script = tmp_path / "train.py"
    script.write_text(code)
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "python train.py --until 5"
    module = tmp_path / "campaign_like"
    module.mkdir()
    (module / "__main__.py").write_text(code)
    ran = subprocess.run([sys.executable, "-m", "campaign_like"], cwd=tmp_path, capture_output=True, text=True,
                         check=True)
    assert ran.stdout.strip() == "python -m campaign_like --until 5"


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A reference autoencoder for the tiny profile in a temporary weights folder."""
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setenv("SAMOD_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    config = AutoencoderConfig(channels=2, latent_dim=4)
    model = Autoencoder(config)
    info = {"steps": 7, "wall_minutes": 1.5, "hardware": "test CPU", "recipe": {"model": json.loads(json.dumps(config.__dict__))}}
    weights.save_reference("autoencoder", model.state_dict(), info, get_profile("tiny"))
    return model


def test_save_and_load_reference_round_trip_in_float16(shipped):
    path = weights.reference_file("autoencoder", get_profile("tiny"))
    assert path.exists() and path.with_suffix(".json").exists()
    loaded = weights.load_reference("autoencoder", get_profile("tiny"))
    for name, value in shipped.state_dict().items():
        assert loaded[name].dtype == torch.float32
        assert torch.equal(loaded[name], value.half().float())
    assert weights.provenance("autoencoder", get_profile("tiny"))["steps"] == 7
    with pytest.raises(FileNotFoundError, match="make weights"):
        weights.provenance("autoencoder", get_profile("small"))


def test_load_autoencoder_follows_the_switch(shipped, monkeypatch):
    from samod.weights import autoencoder_checkpoint, autoencoder_weights, load_autoencoder

    tiny = get_profile("tiny")
    choice = autoencoder_weights(tiny, "reference")
    assert choice.reference and choice.path == weights.reference_file("autoencoder", tiny)
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


def test_load_clap_follows_the_switch(tmp_path, monkeypatch):
    from dataclasses import asdict
    from samod.clap import ClapEncoder, ClapModelConfig, train_clap_tokenizer
    from samod.weights import clap_weights, load_clap

    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setenv("SAMOD_HOME", str(tmp_path / "home"))
    tiny = get_profile("tiny")
    config = ClapModelConfig.tiny()
    tokenizer = train_clap_tokenizer(["Genre: jazz|BPM: 120", "ambient, calm", "metal, Drums"] * 4,
                                     config.vocab_size, config.max_tokens)
    torch.manual_seed(0)
    encoder = ClapEncoder(config, tokenizer).eval()
    path = weights.save_reference("clap", encoder.state_dict(), {"steps": 3, "wall_minutes": 0.1, "hardware": "test",
                                                                   "recipe": {"model": asdict(config)}}, tiny)
    tokenizer.save_pretrained(path.with_name("clap_tokenizer"))
    assert clap_weights(tiny, "reference").reference
    loaded = load_clap(tiny, source="reference")
    with torch.no_grad():
        expected = ClapEncoder(config, tokenizer).eval()
        expected.load_state_dict({k: v.half().float() for k, v in encoder.state_dict().items()})
        assert torch.allclose(loaded.text_embeddings(["Genre: jazz"]), expected.text_embeddings(["Genre: jazz"]))
    with pytest.raises(FileNotFoundError, match="no trained CLAP"):
        load_clap(tiny, source="own")


def test_load_diffusion_follows_the_switch_and_checks_its_autoencoder(tmp_path, monkeypatch):
    from dataclasses import asdict, replace
    from samod.diffusion import DiffusionModel
    from samod.weights import diffusion_weights, load_diffusion
    from samod.dit import DiTConfig

    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setenv("SAMOD_HOME", str(tmp_path / "home"))
    tiny = get_profile("tiny")
    vae = tmp_path / "vae.safetensors"
    save_file({"encoder.w": torch.zeros(3), "decoder.w": torch.zeros(3)}, str(vae))  # the VAE the DiT trained on
    config = replace(DiTConfig.tiny(), width=32, depth=1, heads=2, cross_kv_heads=1)
    torch.manual_seed(0)
    model = DiffusionModel(config)
    description = {"stage": "finetune", "dit": asdict(config), "window_frames": 1292,
                   "encoder_sha256": weights.encoder_sha256(vae)}
    weights.save_reference("dit_finetune", model.state_dict(), {"steps": 5, "wall_minutes": 0.2, "hardware": "test",
                                                                  "description": description}, tiny)
    choice = diffusion_weights(tiny, "finetune", "reference")
    assert choice.reference and "dit_finetune" in choice.sentence
    assert not diffusion_weights(tiny, "pretrain", "reference").reference  # not shipped here
    loaded, loaded_description = load_diffusion(tiny, "finetune", autoencoder_checkpoint=vae, source="reference")
    assert loaded_description == description and not loaded.training
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value.half().float())
    retuned = tmp_path / "decoder_fine_tuned.safetensors"  # the same encoder: the same latents
    save_file({"encoder.w": torch.zeros(3), "decoder.w": torch.ones(3)}, str(retuned))
    load_diffusion(tiny, "finetune", autoencoder_checkpoint=retuned, source="reference")
    other = tmp_path / "other.safetensors"
    save_file({"encoder.w": torch.ones(3), "decoder.w": torch.zeros(3)}, str(other))
    with pytest.raises(ValueError, match="another autoencoder.*SAMOD_WEIGHTS"):
        load_diffusion(tiny, "finetune", autoencoder_checkpoint=other, source="reference")
    with pytest.raises(FileNotFoundError, match="no trained DiT"):
        load_diffusion(tiny, "finetune", source="own")


def test_encoder_sha256_follows_the_encoder_only(tmp_path):
    """The latents' identity: the same for a reference file and a Trainer checkpoint of the same encoder,
    unchanged by a new decoder, changed by any change of the encoder."""
    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(channels=2, latent_dim=4))
    state = model.state_dict()
    reference, trainer_checkpoint = tmp_path / "reference.safetensors", tmp_path / "last.safetensors"
    save_file(state, str(reference))
    save_file({**{f"ema.autoencoder.{k}": v for k, v in state.items()},
               **{f"modules.autoencoder.{k}": torch.zeros_like(v) for k, v in state.items()}}, str(trainer_checkpoint))
    sha = weights.encoder_sha256(reference)
    assert weights.encoder_sha256(trainer_checkpoint) == sha  # the EMA encoder is the one hashed
    decoder_name = next(k for k in state if k.startswith("decoder."))
    save_file({**state, decoder_name: state[decoder_name] + 1}, str(reference))
    assert weights.encoder_sha256(reference) == sha
    encoder_name = next(k for k in state if k.startswith("encoder.") and state[k].is_floating_point())
    changed = state[encoder_name].clone()
    changed.view(-1)[0] = torch.nextafter(changed.view(-1)[0], torch.tensor(1.0))  # one bit
    save_file({**state, encoder_name: changed}, str(reference))
    assert weights.encoder_sha256(reference) != sha
    save_file({f"pretransform.model.{k}": v for k, v in state.items()}, str(reference))  # as in SAO's checkpoint
    assert weights.encoder_sha256(reference) == sha
    save_file({"decoder.w": torch.zeros(2)}, str(reference))
    with pytest.raises(KeyError, match="no encoder weights"):
        weights.encoder_sha256(reference)


PROVENANCE = ("commit", "command", "seed", "steps", "audio_hours", "wall_minutes", "hardware", "final", "curve")


def test_shipped_tiny_autoencoder_is_small_and_documented():
    path = weights.reference_file("autoencoder", get_profile("tiny"))
    if not path.exists():
        pytest.skip("no reference autoencoder shipped for the tiny profile")
    info = weights.provenance("autoencoder", get_profile("tiny"))
    for key in PROVENANCE:
        assert key in info, key
    assert path.stat().st_size < 40e6
    state = weights.load_reference("autoencoder", get_profile("tiny"))
    model = Autoencoder(AutoencoderConfig(**{k: tuple(v) if isinstance(v, list) else v
                                             for k, v in info["recipe"]["model"].items()}))
    model.load_state_dict(state)  # every key, every shape
    assert info["final"]["step"] == info["steps"]


def test_shipped_tiny_weights_fit_the_budget_and_load(monkeypatch):
    from samod.weights import autoencoder_checkpoint, load_clap, load_diffusion

    tiny = get_profile("tiny")
    shipped = sorted(weights.WEIGHTS_DIR.glob("tiny/*.safetensors"))
    assert sum(p.stat().st_size for p in shipped) + sum(
        p.stat().st_size for p in (weights.WEIGHTS_DIR / "tiny").rglob("*") if "tokenizer" in str(p)) < 40e6
    for path in shipped:
        info = weights.provenance(path.stem, tiny)
        assert all(key in info for key in PROVENANCE), path.stem
        assert info["final"]["step"] == info["steps"]
    if weights.reference_file("clap", tiny).exists():
        clap = load_clap(tiny, source="reference")
        assert clap.text_embeddings(["Genre: jazz"]).shape == (1, clap.config.projection_dim)
    for stage in ("pretrain", "finetune"):
        if weights.reference_file(f"dit_{stage}", tiny).exists():  # made for the shipped VAE and CLAP
            model, description = load_diffusion(tiny, stage, source="reference",
                                                autoencoder_checkpoint=autoencoder_checkpoint(tiny, "reference"))
            assert description["text_width"] == load_clap(tiny, source="reference").width
