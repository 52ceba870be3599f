"""Diffusion training (samod.diffusion), the latent cache (data_prep.encode, samod.data.LatentDataset),
generation (samod.generation) and the prompt widget (samod.widget), at toy sizes on CPU.

The module fixture builds a whole toy profile in a temporary SAMOD_HOME: 9 songs of 6-8 s, a VAE and a
CLAP trained for 2 steps, the latent cache, both DiT stages for a few steps. Nothing is downloaded.
"""
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from samod.dit import DiTConfig
from samod.diffusion import DiffusionModel, add_noise, alpha_sigma, cfg_dropout, v_to_z0_eps
from samod.diffusion_training import DiffusionRecipe, DiffusionStage, train_diffusion, window_frames
from samod.weights import load_diffusion
from samod.train import OptimizerConfig

TOY_DIT = replace(DiTConfig.tiny(), width=32, depth=1, heads=2, cross_kv_heads=1)  # cond_dim 128: tiny CLAP
RECORDS = [{"genre": genre, "instruments": instruments, "moods": moods, "bpm": bpm, "key": key}
           for genre, instruments, moods, bpm, key in [
               ("bossa nova", ["Flute", "Nylon Guitar"], ["calm"], 133, "A minor"),
               ("metal", ["Drums", "Distortion Guitar"], ["aggressive"], 166, "E minor"),
               ("ambient", ["Pad 2 (warm)"], ["dreamy"], 68, "D major")]]


# ----------------------------------------------------------------------------------------------------
# The objective

def test_cosine_schedule_and_v_rotation():
    t = torch.linspace(0, 1, 11)
    alpha, sigma = alpha_sigma(t)
    assert torch.allclose(alpha ** 2 + sigma ** 2, torch.ones(11))
    assert alpha[0] == 1 and sigma[0] == 0 and abs(alpha[-1]) < 1e-7 and sigma[-1] == 1
    z0, eps = torch.randn(11, 4, 8), torch.randn(11, 4, 8)
    z_t, v = add_noise(z0, t, eps)
    a, s = alpha[:, None, None], sigma[:, None, None]
    assert torch.allclose(z_t, a * z0 + s * eps) and torch.allclose(v, a * eps - s * z0)
    z0_back, eps_back = v_to_z0_eps(z_t, t, v)  # the rotation is inverted exactly
    assert torch.allclose(z0_back, z0, atol=1e-5) and torch.allclose(eps_back, eps, atol=1e-5)


def test_v_has_unit_variance_for_unit_data():
    g = torch.Generator().manual_seed(0)
    z0, eps = torch.randn(4000, 64, generator=g), torch.randn(4000, 64, generator=g)
    for t in (0.1, 0.5, 0.9):
        _, v = add_noise(z0[..., None], torch.full((4000,), t), eps[..., None])
        assert abs(v.std().item() - 1) < 0.02


def test_v_points_along_eps_at_small_t_and_along_minus_z0_at_large_t():
    """Notebook 04 §9's statement: v = alpha eps - sigma z0 is nearly the noise when t is small (alpha ~ 1)
    and nearly minus the clean latent when t is large (sigma ~ 1)."""
    g = torch.Generator().manual_seed(0)
    z0, eps = torch.randn(64, 16, 32, generator=g), torch.randn(64, 16, 32, generator=g)
    corr = lambda a, b: torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()
    _, v_small = add_noise(z0, torch.full((64,), 0.05), eps)
    _, v_large = add_noise(z0, torch.full((64,), 0.95), eps)
    assert corr(v_small, eps) > 0.99 and abs(corr(v_small, -z0)) < 0.1
    assert corr(v_large, -z0) > 0.99 and abs(corr(v_large, eps)) < 0.1


def test_cfg_dropout_zeroes_whole_items_with_probability_p():
    context = torch.ones(20000, 3, 2)
    dropped = cfg_dropout(context, 0.1, torch.Generator().manual_seed(0))
    per_item = dropped.sum(dim=(1, 2))  # 6 (kept) or 0 (dropped), nothing in between
    assert set(per_item.unique().tolist()) == {0.0, 6.0}
    assert abs((per_item == 0).float().mean().item() - 0.1) < 0.01
    assert torch.equal(cfg_dropout(context[:5], 0.0), context[:5])


class FixedText(torch.nn.Module):
    """A stand-in text encoder for unit tests: a fixed random embedding per prompt (width 8, 4 tokens)."""
    width, max_tokens = 8, 4

    def features(self, prompts):
        rows = [torch.randn(4, 8, generator=torch.Generator().manual_seed(sum(map(ord, p)))) for p in prompts]
        return torch.stack(rows), torch.ones(len(prompts), 4, dtype=torch.bool)


def test_stage_learns_a_fixed_batch_and_uses_timing():
    torch.manual_seed(0)
    model = DiffusionModel(replace(TOY_DIT, cond_dim=8, latent_channels=4))
    stage = DiffusionStage(model, FixedText(), OptimizerConfig(lr=3e-3), cfg_dropout=0.1)
    batch = {"latents": torch.randn(4, 4, 16), "prompt": ["a", "b", "c", "d"],
             "seconds_start": torch.tensor([0.0, 1.0, 0.0, 2.0]), "seconds_total": torch.tensor([10.0, 12, 5, 30])}
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        torch.manual_seed(1)  # the same t, eps and dropout every step: the loss only moves with the weights
        _, loss, numbers = stage.training_step(batch, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(numbers["mse"])
    assert losses[-1] < 0.5 * losses[0]
    cond = model.condition(torch.zeros(1, 4, 8), torch.tensor([0.0]), torch.tensor([10.0]))
    cond2 = model.condition(torch.zeros(1, 4, 8), torch.tensor([0.0]), torch.tensor([20.0]))
    assert cond["context"].shape == (1, 6, 8) and cond["global_cond"].shape == (1, 16)
    assert not torch.allclose(cond["global_cond"], cond2["global_cond"])  # seconds_total reaches the model


def test_condition_rejects_text_of_the_wrong_width():
    model = DiffusionModel(replace(TOY_DIT, cond_dim=8, latent_channels=4))
    with pytest.raises(ValueError, match="cond_dim 8"):
        model.condition(torch.zeros(1, 4, 16), torch.zeros(1), torch.ones(1))


def test_window_frames_of_the_profiles():
    from samod.profiles import get_profile
    rate = 44100 / 2048
    assert window_frames(get_profile("tiny"), "pretrain", rate) == 646
    assert window_frames(get_profile("tiny"), "finetune", rate) == 1292
    assert window_frames(get_profile("paper"), "finetune", rate) == 6137  # 285 s; SA2 rounds to 6144 latents
    with pytest.raises(ValueError, match="stage must be one of"):
        window_frames(get_profile("tiny"), "warmup", rate)


# ----------------------------------------------------------------------------------------------------
# A whole toy profile: corpus -> VAE -> CLAP -> latent cache -> DiT stages -> generation

@pytest.fixture(scope="module")
def toy_profile(tmp_path_factory):
    from samod.audio import save_audio
    from samod.autoencoder_training import AutoencoderRecipe, train_autoencoder
    from samod.clap_training import ClapRecipe, train_clap
    from samod.profiles import get_profile

    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAMOD_HOME", str(home))
        profile = get_profile("tiny")
        (profile.corpus_dir / "audio").mkdir(parents=True)
        lines = []
        for i in range(9):  # 8 training songs, 1 held out
            seconds = 6.0 + i % 3
            t = np.arange(int(seconds * 44100)) / 44100
            tone = 0.3 * np.sin(2 * np.pi * (220 + 110 * (i % 3)) * t)
            record = {**RECORDS[i % 3], "id": f"song_{i}", "path": f"audio/song_{i}.flac", "seconds": seconds}
            save_audio(profile.corpus_dir / record["path"], np.stack([tone, 0.5 * tone]).astype(np.float32))
            lines.append(json.dumps(record))
        (profile.corpus_dir / "metadata.jsonl").write_text("\n".join(lines))
        torch.manual_seed(0)
        train_autoencoder(replace(AutoencoderRecipe.tiny(), steps=2, batch_size=2, crop_samples=16384), profile,
                          progress=False)
        train_clap(replace(ClapRecipe.tiny(), steps=2, batch_size=4, crop_seconds=6.0, prompt_draws=8), profile,
                   progress=False)
        yield profile


@pytest.fixture(scope="module")
def cache(toy_profile):
    from data_prep.encode import encode_profile
    return encode_profile(toy_profile, progress=False)


@pytest.fixture(scope="module")
def trained(toy_profile, cache):
    recipe = replace(DiffusionRecipe.tiny().shortened(pretrain=3, finetune=2), model=TOY_DIT, batch_size=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAMOD_HOME", str(toy_profile.root.parent))
        _, pre = train_diffusion("pretrain", recipe, toy_profile, progress=False)
        _, fine = train_diffusion("finetune", recipe, toy_profile, progress=False)
    return pre, fine


def test_a_shortened_recipe_changes_only_the_steps():
    tiny = DiffusionRecipe.tiny()
    live = tiny.shortened(pretrain=80, finetune=30)
    assert live.steps == {"pretrain": 80, "finetune": 30} and tiny.steps == {"pretrain": 160, "finetune": 60}
    assert replace(live, steps=tiny.steps) == tiny


def test_cache_holds_posteriors_and_the_silence_latent(toy_profile, cache):
    from safetensors.torch import load_file
    from samod.weights import load_autoencoder
    from samod.data import LatentDataset

    index = [json.loads(line) for line in (cache / "index.jsonl").read_text().splitlines()]
    assert len(index) == 8 and all((cache / r["latent_path"]).exists() for r in index)  # the training split
    post = load_file(str(cache / index[0]["latent_path"]))
    assert post["mean"].shape == (64, math.ceil(6.0 * 44100 / 2048)) and (post["std"] > 0).all()
    vae = load_autoencoder(toy_profile)
    audio = torch.from_numpy(__import__("samod.audio").audio.load_audio(index[0]["audio_path"]))[None]
    with torch.no_grad():
        mean = vae.encode(audio, sample=False)[0]
    assert torch.allclose(post["mean"], mean, atol=1e-5)

    dataset = LatentDataset(cache, window_frames=200, seed=0)
    item = dataset[0]
    frames = post["mean"].shape[1]
    assert item["latents"].shape == (64, 200) and item["padding_mask"].sum() == frames
    assert item["seconds_start"] == 0.0 and item["seconds_total"] == 6
    pad = item["latents"][:, frames:]  # samples of the silence posterior
    silence = load_file(str(cache / "silence.safetensors"))
    z = (pad - silence["mean"][:, None]) / silence["std"][:, None]
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05
    again = dataset[0]
    assert torch.equal(item["latents"], again["latents"]) and item["prompt"] == again["prompt"]
    dataset.set_epoch(1)
    assert not torch.equal(item["latents"], dataset[0]["latents"])
    crop = LatentDataset(cache, window_frames=5, seed=0)[2]
    assert crop["padding_mask"].all() and 0 <= crop["seconds_start"] <= (frames - 5) * 2048 / 44100 + 1


def test_cache_of_another_autoencoder_is_refused(toy_profile, cache, tmp_path):
    from data_prep.encode import encode_corpus
    from samod.autoencoder import Autoencoder, AutoencoderConfig
    from safetensors.torch import save_file
    from samod.weights import encoder_sha256

    other = tmp_path / "other.safetensors"
    save_file({"encoder.w": torch.ones(2)}, str(other))
    with pytest.raises(RuntimeError, match="another autoencoder"):
        encode_corpus(Autoencoder(AutoencoderConfig.tiny()), other, toy_profile.corpus_dir / "metadata.jsonl",
                      cache, progress=False)
    assert json.loads((cache / "info.json").read_text())["encoder_sha256"] != encoder_sha256(other)


def test_reconstructions_are_the_decoded_posterior_mean_and_tied_to_their_autoencoder(toy_profile, tmp_path):
    from data_prep.encode import posterior, reconstruct_corpus
    from samod.audio import load_audio
    from samod.weights import autoencoder_checkpoint, load_autoencoder

    vae, metadata = load_autoencoder(toy_profile), toy_profile.corpus_dir / "metadata.jsonl"
    out = tmp_path / "reconstructions"
    index = reconstruct_corpus(vae, autoencoder_checkpoint(toy_profile), metadata, out, progress=False)
    assert len(index) == 9 and [r["id"] for r in index] == [f"song_{i}" for i in range(9)]
    original = load_audio(index[0]["original_path"])
    decoded = load_audio(index[0]["audio_path"])  # 16-bit FLAC
    assert decoded.shape == original.shape and index[0]["genre"] == "bossa nova"
    with torch.inference_mode():
        expected = vae.decode_chunked(posterior(vae, torch.from_numpy(original))[0][None])[0, :, :original.shape[1]]
    assert np.abs(decoded - expected.clamp(-1, 1).numpy()).max() < 1e-4
    stamp = (out / index[0]["audio_path"].split("/")[-1]).stat().st_mtime_ns
    reconstruct_corpus(vae, autoencoder_checkpoint(toy_profile), metadata, out, progress=False)  # kept, not redone
    assert (out / index[0]["audio_path"].split("/")[-1]).stat().st_mtime_ns == stamp
    other = tmp_path / "other.bin"
    other.write_bytes(b"another checkpoint")
    with pytest.raises(RuntimeError, match="another autoencoder"):
        reconstruct_corpus(vae, other, metadata, out, progress=False)


def test_clap_trains_on_reconstructions_of_its_training_songs_only(toy_profile, tmp_path, monkeypatch):
    import samod.clap_training as clap_module
    from samod.clap_training import ClapRecipe, train_clap

    seen = {}

    class Recording(clap_module.SongDataset):
        def __init__(self, records, **kwargs):
            seen["paths"] = [r["audio_path"] for r in records]
            super().__init__(records, **kwargs)

    monkeypatch.setattr(clap_module, "SongDataset", Recording)
    extra = []
    for i in range(9):  # stand-ins for decoded files: copies of the songs
        copy = tmp_path / f"decoded_{i}.flac"
        copy.write_bytes((toy_profile.corpus_dir / f"audio/song_{i}.flac").read_bytes())
        extra.append({**RECORDS[i % 3], "id": f"song_{i}", "audio_path": str(copy), "seconds": 6.0 + i % 3})
    recipe = replace(ClapRecipe.tiny(), steps=1, batch_size=2, crop_seconds=6.0, prompt_draws=2)
    _, history = train_clap(recipe, toy_profile, progress=False, folder=tmp_path / "clap", reconstructions=extra)
    assert len(history) == 1
    decoded = [p for p in seen["paths"] if "decoded_" in p]
    assert len(seen["paths"]) == 2 * len(decoded) and 0 < len(decoded) < 9  # the held-out songs are left out


def test_both_stages_train_resume_and_load(toy_profile, trained):
    pre, fine = trained
    assert [h["step"] for h in pre] == [1, 2, 3] and [h["step"] for h in fine] == [1, 2]
    model, description = load_diffusion(toy_profile, "finetune")
    assert description["window_frames"] == 1292 and description["stage"] == "finetune"
    assert description["text_width"] == 128 and not model.training
    pre_model, pre_description = load_diffusion(toy_profile, "pretrain")
    assert pre_description["window_frames"] == 646
    from samod.data import LatentDataset, latent_std
    cache = toy_profile.cache_dir / "latents"
    scale = latent_std(cache)  # the recipe's latent_scale None: the cache's std, kept by the second stage
    assert pre_description["latent_scale"] == description["latent_scale"] == pytest.approx(scale) and scale != 1.0
    unscaled, scaled = LatentDataset(cache, 300, seed=0)[0]["latents"], LatentDataset(cache, 300, seed=0, scale=scale)[0]["latents"]
    assert torch.allclose(scaled, unscaled / scale)
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), pre_model.state_dict().values()))
    with pytest.raises(FileNotFoundError, match="no trained DiT"):
        load_diffusion(toy_profile.__class__(**{**toy_profile.__dict__, "name": "nowhere"}), "finetune")


def test_dit_made_for_another_autoencoder_fails_at_load(toy_profile, trained, tmp_path):
    from safetensors.torch import save_file
    other = tmp_path / "other.safetensors"
    save_file({"encoder.w": torch.ones(2)}, str(other))  # not the VAE the DiT was trained on
    with pytest.raises(ValueError, match="another autoencoder"):
        load_diffusion(toy_profile, "finetune", autoencoder_checkpoint=other)


@pytest.fixture(scope="module")
def pipeline(toy_profile, trained):
    from samod.generation import load_pipeline
    return load_pipeline(toy_profile, "pretrain", device="cpu")


def test_generate_is_seeded_and_trimmed(pipeline):
    a = pipeline.generate("Genre: metal", seconds=3.0, steps=3, seed=1, progress=False)
    b = pipeline.generate("Genre: metal", seconds=3.0, steps=3, seed=1, progress=False)
    c = pipeline.generate("Genre: metal", seconds=3.0, steps=3, seed=2, progress=False)
    assert a.shape == (2, 3 * 44100) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    full = pipeline.generate("Genre: metal", seconds=3.0, steps=3, seed=1, trim=False, progress=False)
    assert full.shape == (2, 646 * 2048) and np.abs(full[:, :3 * 44100] - a).max() < 1e-4  # decoded in other chunks
    for sampler in ("dpmpp-2m", "dpmpp-2m-sde"):
        out = pipeline.generate(["calm", "dark"], seconds=2.0, steps=2, sampler=sampler, progress=False)
        assert len(out) == 2 and out[0].shape == (2, 2 * 44100)


def test_audio_to_audio_at_a_low_noise_level_keeps_the_init(pipeline):
    t = np.arange(3 * 44100) / 44100
    init = np.stack([np.sin(2 * np.pi * 330 * t)] * 2).astype(np.float32) * 0.3
    init_latents = pipeline.encode(torch.from_numpy(init)[None])  # the DiT's scale
    assert torch.allclose(pipeline.decode(init_latents), pipeline.autoencoder.decode_chunked(
        pipeline.autoencoder.encode(torch.from_numpy(init)[None], sample=False)), atol=1e-5)
    latents = pipeline.generate_latents(["calm"], 3.0, steps=3, seed=0, init_latents=torch.nn.functional.pad(
        init_latents, (0, 646 - init_latents.shape[-1])), init_noise_level=0.31, sampler="dpmpp-2m", progress=False)
    far = pipeline.generate_latents(["calm"], 3.0, steps=3, seed=0, progress=False)
    near_error = (latents[..., :init_latents.shape[-1]] - init_latents).abs().mean()
    far_error = (far[..., :init_latents.shape[-1]] - init_latents).abs().mean()
    assert near_error < 0.5 * far_error
    out = pipeline.generate("calm", seconds=3.0, steps=2, init_audio=init, init_noise_level=5.0, progress=False)
    assert out.shape == (2, 3 * 44100)


def test_audio_to_audio_encodes_the_window_without_encoding_its_silence(pipeline):
    """encode_window equals encoding the audio padded with silence to the whole window (cut when longer)."""
    n, window = pipeline.autoencoder.config.downsampling, pipeline.window_frames
    noise = torch.from_numpy(0.3 * np.random.default_rng(0).standard_normal((2, (window + 5) * n)).astype(np.float32))
    for samples in (3 * 44100, 100, (window - 20) * n, (window + 5) * n):  # short, one frame, near the end, too long
        audio = noise[:, :samples]
        padded = torch.nn.functional.pad(audio[:, :window * n], (0, max(window * n - samples, 0)))
        full = pipeline.encode(padded[None])  # (1, D, window)
        fast = pipeline.encode_window(audio)
        assert fast.shape == full.shape == (1, pipeline.model.config.latent_channels, window)
        assert (fast - full).abs().max() < 1e-4, samples


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt": "", "seconds": 2.0}, "prompt is empty"),
    ({"prompt": None}, "prompt is empty"),
    ({"prompt": "jazz", "seconds": 0.0}, "seconds must be in"),
    ({"prompt": "jazz", "seconds": 31.0}, "seconds must be in"),
    ({"prompt": "jazz", "steps": 0}, "steps must be a positive integer"),
    ({"prompt": "jazz", "cfg_scale": -1.0}, "cfg_scale must be >= 0"),
    ({"prompt": "jazz", "sampler": "euler"}, "unknown sampler"),
    ({"prompt": "jazz", "cfg_scale": "x"}, "cfg_scale must be >= 0, a number"),
    ({"prompt": "jazz", "seed": "a"}, "seed must be an integer"),
    ({"prompt": "jazz", "seed": 1.5}, "seed must be an integer"),
    ({"prompt": ["jazz", 5]}, "prompt 1 of the list is int"),
    ({"prompt": 5}, "must be a string or a list of strings"),
    ({"prompt": "jazz", "seconds": "x"}, "seconds must be in .* a number, got 'x'"),
    ({"prompt": "jazz", "steps": 2.5}, "steps must be a positive integer"),
    ({"prompt": "jazz", "cfg_rescale": 2.0}, "cfg_rescale must be a number in"),
    ({"prompt": "jazz", "cfg_interval": (3.0, 1.0)}, "cfg_interval must be two noise levels"),
    ({"prompt": "jazz", "sigma_min": 0.0}, "sigma_max > sigma_min > 0"),
    ({"prompt": "jazz", "sigma_max": "big"}, "sigma_max and sigma_min must be numbers"),
    ({"prompt": "jazz", "init_noise_level": "x"}, "init_noise_level must be a positive noise level"),
    ({"prompt": "jazz", "trim": "no"}, "trim must be True or False"),
    ({"prompt": "jazz", "callback": 3}, "callback must be a function"),
    ({"prompt": "jazz", "sampling": {"steps": 2}}, "sampling must be a SamplingConfig"),
])
def test_bad_requests_are_clear_errors(pipeline, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipeline.generate(**{"seconds": 2.0, "steps": 2, "progress": False, **kwargs})


def test_sampling_config_checks_every_setting_where_it_is_made():
    from samod.generation import SamplingConfig
    assert SamplingConfig(steps=np.int64(3), cfg_scale=np.float32(2.0)).steps == 3  # numpy numbers are numbers
    for bad in ({"steps": True}, {"cfg_scale": None}, {"cfg_interval": (0.0,)}, {"seed": "0"}):
        with pytest.raises(ValueError, match="must be"):
            SamplingConfig(**bad)


def test_generate_without_a_prompt_fails_before_loading_models(monkeypatch):
    import samod
    from samod import generation

    def no_loading(**_):
        raise AssertionError("the models were loaded for a request without a prompt")

    monkeypatch.setattr(generation, "load_pipeline", no_loading)
    for prompt in (None, "", []):
        with pytest.raises(ValueError, match="prompt is empty"):
            samod.generate(prompt, seconds=2.0)
    with pytest.raises(ValueError, match="stage must be one of"):
        samod.generate("jazz", stage="final")


def test_sampling_config_holds_the_defaults_of_generate_and_the_widget(pipeline, toy_profile, monkeypatch):
    from samod import generation
    from samod.generation import SamplingConfig
    from samod.widget import PromptWidget

    # Stable Audio Open's settings at every profile, but for the tiny profile's guidance scale
    assert SamplingConfig.paper() == SamplingConfig.small() == SamplingConfig()
    assert replace(SamplingConfig.tiny(), cfg_scale=SamplingConfig.cfg_scale) == SamplingConfig()

    calls = []

    def spy(denoiser, x, sigmas, sampler, generator, **_):  # records the sampler's inputs, skips the sampling
        calls.append({"cfg_scale": denoiser.cfg_scale, "cfg_rescale": denoiser.cfg_rescale, "steps": len(sigmas) - 1,
                      "sigma_max": sigmas[0].item(), "sigma_min": sigmas[-2].item(), "sampler": sampler, "x": x})
        return x

    monkeypatch.setattr(generation, "sample", spy)
    defaults = SamplingConfig.for_profile(toy_profile.name)  # what load_pipeline gives the profile's models
    assert pipeline.sampling == defaults
    pipeline.generate("jazz", seconds=1.0, progress=False)
    pipeline.generate("jazz", seconds=1.0, seed=defaults.seed, progress=False)
    used, seeded = calls
    assert used.pop("sigma_max") == pytest.approx(defaults.sigma_max)
    assert used.pop("sigma_min") == pytest.approx(defaults.sigma_min)
    assert torch.equal(used.pop("x"), seeded["x"])  # the start noise of the default seed
    assert used == {"cfg_scale": defaults.cfg_scale, "cfg_rescale": defaults.cfg_rescale, "steps": defaults.steps,
                    "sampler": defaults.sampler}
    pipeline.generate("jazz", seconds=1.0, sampling=SamplingConfig(steps=4, cfg_scale=2.0), steps=3, progress=False)
    assert (calls[-1]["steps"], calls[-1]["cfg_scale"]) == (3, 2.0)  # a keyword overrides its field
    widget = PromptWidget(pipeline)
    assert (widget.steps.value, widget.cfg_scale.value, widget.seed.value, widget.sampler.value) == (
        defaults.steps, defaults.cfg_scale, defaults.seed, defaults.sampler)


def test_save_generation_writes_wav_and_flac(pipeline, tmp_path):
    from samod.audio import load_audio
    from samod.generation import save_generation

    audio = pipeline.generate("jazz", seconds=1.0, steps=2, progress=False)
    for name in ("song.wav", "song.flac"):
        back = load_audio(save_generation(tmp_path / name, audio))
        assert back.shape == audio.shape and np.abs(back - np.clip(audio, -1, 1)).max() < 1e-3
    with pytest.raises(ValueError, match=".wav or .flac"):
        save_generation(tmp_path / "song.mp3", audio)


def test_widget_button_generates_and_reports_errors(pipeline):
    from samod.widget import PromptWidget

    widget = PromptWidget(pipeline, prompt="Genre: ambient", seconds=2.0, steps=3)
    audio = widget.on_generate()
    assert audio.shape == (2, 2 * 44100) and widget.progress.value == 3 and widget.progress.max == 3
    assert "s of audio in" in widget.status.value and not widget.button.disabled
    assert len(widget.output.outputs) == 1 and "<audio" in widget.output.outputs[0]["data"]["text/html"]
    widget.prompt.value = "   "
    assert widget.on_generate() is None and widget.status.value.startswith("error: the prompt is empty")
    assert not widget.button.disabled
