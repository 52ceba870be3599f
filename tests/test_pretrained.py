"""samod.pretrained: Stable Audio Open's layout read into samod, proven equal to diffusers' port with the same weights.

The proof needs no download: diffusers' StableAudioDiTModel, StableAudioProjectionModel and AutoencoderOobleck
get random weights at a small size, are written back into one checkpoint in the released layout by inverting
diffusers' documented conversion (tests/stable_audio_peer.py), next to a model_config.json in the structure of
the released one; samod loads the two files with `load_stable_audio_open`. Then the VAE, the timing
conditioners and the DiT must agree within 1e-5, and a whole DPM-Solver++(3M) SDE run with CFG (diffusers'
models driven by k-diffusion's sampler on the same noise) within 1e-4.
"""
import copy
import json
import math

import numpy as np
import pytest
import torch

from kdiffusion_peer import load as load_kdiffusion
from samod.autoencoder import AutoencoderConfig, vae_bottleneck
from samod.dit import DiTConfig
from samod.pretrained import (SAO_DEMO, StableAudioOpenConfig, load_stable_audio_open, read_checkpoint,
                              to_stable_audio_open_state_dict, write_random_stable_audio_open)
from samod.t5 import T5Conditioner, T5ConditionerConfig, train_t5_tokenizer
from stable_audio_peer import randomise, stable_audio_checkpoint

# stabilityai/stable-audio-open-1.0 model_config.json, as released (the training section trimmed to its demos)
RELEASED = {
    "model_type": "diffusion_cond", "sample_size": 2097152, "sample_rate": 44100, "audio_channels": 2,
    "model": {
        "pretransform": {"type": "autoencoder", "iterate_batch": True, "config": {
            "encoder": {"type": "oobleck", "requires_grad": False, "config": {
                "in_channels": 2, "channels": 128, "c_mults": [1, 2, 4, 8, 16], "strides": [2, 4, 4, 8, 8],
                "latent_dim": 128, "use_snake": True}},
            "decoder": {"type": "oobleck", "config": {
                "out_channels": 2, "channels": 128, "c_mults": [1, 2, 4, 8, 16], "strides": [2, 4, 4, 8, 8],
                "latent_dim": 64, "use_snake": True, "final_tanh": False}},
            "bottleneck": {"type": "vae"}, "latent_dim": 64, "downsampling_ratio": 2048, "io_channels": 2}},
        "conditioning": {"configs": [
            {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-base", "max_length": 128}},
            {"id": "seconds_start", "type": "number", "config": {"min_val": 0, "max_val": 512}},
            {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 512}}],
            "cond_dim": 768},
        "diffusion": {"cross_attention_cond_ids": ["prompt", "seconds_start", "seconds_total"],
                      "global_cond_ids": ["seconds_start", "seconds_total"], "type": "dit", "config": {
                          "io_channels": 64, "embed_dim": 1536, "depth": 24, "num_heads": 24, "cond_token_dim": 768,
                          "global_cond_dim": 1536, "project_cond_tokens": False,
                          "transformer_type": "continuous_transformer"}},
        "io_channels": 64},
    "training": {"demo": {"demo_cond": [dict(d) for d in SAO_DEMO]}},
}

# the small model: diffusers ties the encoder's width to its output (2 x latent), so channels = 2 * latent;
# head dim 64 (SAT and samod rotate the same 32 dims), 4 query heads over 2 cross-attention key/value heads
LATENT, CHANNELS, MULTS, STRIDES = 4, 8, [1, 2], [2, 4]
WIDTH, DEPTH, HEADS, COND = 256, 2, 4, 128
FRAMES, TOKENS = 16, 128
PROMPTS = ["Amen break 174 BPM", "A beautiful orchestral symphony, classical music"]


def small_model_config() -> dict:
    """The released model_config.json with the sizes changed, nothing else."""
    config = copy.deepcopy(RELEASED)
    config["sample_size"] = FRAMES * math.prod(STRIDES)
    pre = config["model"]["pretransform"]["config"]
    for side, latent in (("encoder", 2 * LATENT), ("decoder", LATENT)):
        pre[side]["config"].update(channels=CHANNELS, c_mults=MULTS, strides=STRIDES, latent_dim=latent)
    pre.update(latent_dim=LATENT, downsampling_ratio=math.prod(STRIDES))
    config["model"]["conditioning"]["cond_dim"] = COND
    config["model"]["diffusion"]["config"].update(io_channels=LATENT, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS,
                                                  cond_token_dim=COND, global_cond_dim=2 * COND)
    config["model"]["io_channels"] = LATENT
    return config


@pytest.fixture(scope="module")
def sao(tmp_path_factory):
    """diffusers' three models with random weights, written as model.safetensors + model_config.json + a T5."""
    diffusers = pytest.importorskip("diffusers")
    from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel
    from safetensors.torch import save_file

    dit = diffusers.StableAudioDiTModel(
        sample_size=FRAMES, in_channels=LATENT, out_channels=LATENT, num_layers=DEPTH,
        attention_head_dim=WIDTH // HEADS, num_attention_heads=HEADS,
        num_key_value_attention_heads=COND // (WIDTH // HEADS), cross_attention_dim=COND, time_proj_dim=256,
        global_states_input_dim=2 * COND, cross_attention_input_dim=COND).eval()
    randomise(dit, seed=1)
    with torch.no_grad():
        for name, p in dit.named_parameters():
            if name.endswith(("norm1.bias", "norm2.bias", "norm3.bias")):
                p.zero_()  # SAT's LayerNorms have no bias (a zero buffer): diffusers' must be zero to match
    projection = randomise(StableAudioProjectionModel(text_encoder_dim=COND, conditioning_dim=COND, min_value=0,
                                                      max_value=512), seed=2).eval()
    vae = randomise(diffusers.AutoencoderOobleck(
        encoder_hidden_size=CHANNELS, downsampling_ratios=STRIDES, channel_multiples=MULTS, decoder_channels=CHANNELS,
        decoder_input_channels=LATENT, audio_channels=2), seed=3, std=0.5).eval()
    folder = tmp_path_factory.mktemp("sao")
    state = stable_audio_checkpoint(dit, projection, vae)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "model_config.json").write_text(json.dumps(small_model_config(), indent=4))
    with torch.random.fork_rng(devices=[]):  # T5's initialisation draws from the global generator
        torch.manual_seed(4)
        t5 = T5Conditioner(T5ConditionerConfig(vocab_size=512, width=COND, layers=2, heads=2, head_dim=32, mlp=256),
                           train_t5_tokenizer(PROMPTS * 4, 512)).eval()
    t5.save(folder / "t5")
    pipe = load_stable_audio_open(folder / "model.safetensors", folder / "model_config.json", folder / "t5",
                                  device="cpu")
    return {"dit": dit, "projection": projection, "vae": vae, "t5": t5, "state": state, "folder": folder,
            "pipe": pipe}


def run_peer_dit(dit, x, t, context, global_cond):
    from diffusers.models.embeddings import get_1d_rotary_pos_embed
    # as StableAudioPipeline: rotary over the latent frames + the global token, on the first K / 2 dims
    rotary = get_1d_rotary_pos_embed(dit.config.attention_head_dim // 2, x.shape[-1] + 1, use_real=True,
                                     repeat_interleave_real=False)
    return dit(x, t, encoder_hidden_states=context, global_hidden_states=global_cond[:, None],
               rotary_embedding=rotary, return_dict=False)[0]


def peer_conditioning(sao, prompts, seconds_start, seconds_total):
    """(context (B, S + 2, E), global (B, 2E)) from transformers' T5 and diffusers' projection model."""
    t5 = sao["t5"]
    tokens = t5.tokenizer(prompts, padding="max_length", max_length=TOKENS, truncation=True, return_tensors="pt")
    text = t5.model(**tokens).last_hidden_state * tokens["attention_mask"][..., None]  # SAT: padding zeroed
    out = sao["projection"](text_hidden_states=text, start_seconds=seconds_start, end_seconds=seconds_total)
    start, end = out.seconds_start_hidden_states, out.seconds_end_hidden_states  # (B, 1, E) each
    return torch.cat([out.text_hidden_states, start, end], dim=1), torch.cat([start, end], dim=2)[:, 0]


# ---------------------------------------------------------------------- model_config.json

def test_released_config_is_the_paper_preset():
    config = StableAudioOpenConfig.from_model_config(RELEASED)
    assert config == StableAudioOpenConfig.paper()
    assert config.autoencoder == AutoencoderConfig.paper() and config.dit == DiTConfig.paper()
    assert config.window_frames == 1024 and config.text_tokens == 128 and config.dit.cross_kv_heads == 12
    written = config.to_model_config()
    assert written["model"] == RELEASED["model"]
    assert {k: written[k] for k in ("model_type", "sample_size", "sample_rate", "audio_channels")} == \
        {k: RELEASED[k] for k in ("model_type", "sample_size", "sample_rate", "audio_channels")}
    tiny = StableAudioOpenConfig.tiny()
    assert StableAudioOpenConfig.from_model_config(json.loads(json.dumps(tiny.to_model_config()))) == tiny


def test_paper_checkpoint_keys_on_meta_device():
    # the released model.safetensors: 1,056,828,544 DiT + 2 x 198,272 timing + 156,112,514 VAE parameters
    from samod.autoencoder import Autoencoder
    from samod.diffusion import DiffusionModel
    with torch.device("meta"):
        vae, model = Autoencoder(AutoencoderConfig.paper()), DiffusionModel(DiTConfig.paper())
    state = to_stable_audio_open_state_dict(vae, model)
    params = {k: v for k, v in state.items() if not k.endswith((".beta", ".inv_freq")) or "pretransform" in k}
    assert sum(v.numel() for v in params.values()) == 1_056_828_544 + 2 * 198_272 + 156_112_514
    assert state["model.model.transformer.layers.23.self_attn.to_qkv.weight"].shape == (3 * 1536, 1536)
    assert state["model.model.transformer.layers.0.cross_attn.to_kv.weight"].shape == (2 * 768, 768)
    assert state["model.model.timestep_features.weight"].shape == (128, 1)
    assert state["model.model.transformer.rotary_pos_emb.inv_freq"].shape == (16,)
    assert state["pretransform.model.decoder.layers.7.weight_v"].shape == (2, 128, 7)  # no bias: no output tanh
    assert state["pretransform.model.encoder.layers.6.alpha"].shape == (2048,)
    assert "conditioner.conditioners.seconds_total.embedder.embedding.0.weights" in state


@pytest.mark.parametrize("path,value,message", [
    ("model.pretransform.scale", 2.0, "scale"),
    ("model.pretransform.config.decoder.config.final_tanh", True, "no output tanh"),
    ("model.pretransform.config.decoder.config.channels", 64, "share AutoencoderConfig.channels"),
    ("model.diffusion.config.num_heads", 48, "head dim 32 < 64"),
    ("model.diffusion.config.patch_size", 2, "patch_size"),
    ("model.diffusion.config.global_cond_type", "adaLN", "global_cond_type"),
    ("model.diffusion.config.attn_kwargs", {"qk_norm": "ln"}, "attn_kwargs"),
    ("model.diffusion.config.global_cond_dim", 768, "two timing tokens side by side"),
    ("model.diffusion.type", "adp_cfg_1d", "model.diffusion.type"),
])
def test_config_settings_samod_lacks_are_refused(path, value, message):
    config = copy.deepcopy(RELEASED)
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[last] = value
    with pytest.raises(ValueError, match=message):
        StableAudioOpenConfig.from_model_config(config)


def test_config_without_a_required_entry_names_it():
    config = copy.deepcopy(RELEASED)
    del config["model"]["conditioning"]["cond_dim"]
    with pytest.raises(ValueError, match="no model.conditioning.cond_dim"):
        StableAudioOpenConfig.from_model_config(config)
    config = copy.deepcopy(RELEASED)
    config["model"]["conditioning"]["configs"][0]["type"] = "clap_text"
    with pytest.raises(ValueError, match="t5"):
        StableAudioOpenConfig.from_model_config(config)


# ---------------------------------------------------------------------- parity with diffusers

def test_autoencoder_equals_diffusers(sao):
    pipe, vae = sao["pipe"], sao["vae"]
    audio = torch.randn(2, 2, FRAMES * math.prod(STRIDES), generator=torch.Generator().manual_seed(4))
    latents = torch.randn(2, LATENT, FRAMES, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        h_ours, h_peer = pipe.autoencoder.encode_distribution(audio), vae.encoder(audio)  # (B, 2D, L)
        _, mean, std, _ = vae_bottleneck(h_ours)
        dist = vae.encode(audio).latent_dist
        y_ours, y_peer = pipe.autoencoder.decode(latents), vae.decode(latents).sample  # (B, 2, T)
    diffs = {"encoder": (h_ours - h_peer).abs().max().item(), "mean": (mean - dist.mean).abs().max().item(),
             "std": (std - dist.std).abs().max().item(), "decoder": (y_ours - y_peer).abs().max().item()}
    print("autoencoder max abs differences", diffs, "output scale", y_peer.abs().max().item())
    assert all(d < 1e-5 for d in diffs.values()), diffs
    assert y_peer.abs().max() > 0.1 and h_peer.abs().max() > 0.1  # real signals, not zeros on both sides


def test_timing_and_dit_equal_diffusers(sao):
    pipe, dit = sao["pipe"], sao["dit"]
    g = torch.Generator().manual_seed(6)
    seconds_start, seconds_total = torch.tensor([0.0, 30.0]), torch.tensor([47.0, 600.0])  # 600: clamped to 512
    with torch.no_grad():
        text, _ = pipe.text_encoder.features(PROMPTS)  # samod's T5Conditioner on the same T5
        cond = pipe.model.condition(text, seconds_start, seconds_total)
        context, global_cond = peer_conditioning(sao, PROMPTS, seconds_start, seconds_total)
        x, t = torch.randn(2, LATENT, FRAMES, generator=g), torch.rand(2, generator=g)
        v_ours = pipe.model(x, t, **cond)
        v_peer = run_peer_dit(dit, x, t, context, global_cond)
        v_uncond = pipe.model(x, t, torch.zeros_like(cond["context"]), cond["global_cond"])
    diffs = {"context (text + timing)": (cond["context"] - context).abs().max().item(),
             "global (timing)": (cond["global_cond"] - global_cond).abs().max().item(),
             "dit": (v_ours - v_peer).abs().max().item()}
    print("timing / DiT max abs differences", diffs, "output scale", v_peer.abs().max().item())
    assert all(d < 1e-5 for d in diffs.values()), diffs
    assert v_peer.abs().max() > 0.1 and (v_uncond - v_ours).abs().max() > 1e-3  # the conditioning matters


def reference_generation(sao, prompts, seconds, steps, cfg_scale, seed):
    """diffusers' models, CFG as SAT (zero context, same global token), k-diffusion's DPM-Solver++(3M) SDE."""
    kd = load_kdiffusion()
    dit, b = sao["dit"], len(prompts)
    context, global_cond = peer_conditioning(sao, prompts, torch.zeros(b), torch.full((b,), seconds))
    both = {"context": torch.cat([context, torch.zeros_like(context)]), "global_cond": global_cond.repeat(2, 1)}

    def v_model(x, t):  # (B, D, L), (B,) -> (B, D, L)
        v_cond, v_uncond = run_peer_dit(dit, x.repeat(2, 1, 1), t.repeat(2), **both).chunk(2)
        return v_uncond + (v_cond - v_uncond) * cfg_scale

    generator = torch.Generator().manual_seed(seed)
    sigmas = kd.sampling.get_sigmas_exponential(steps, 0.3, 500.0)
    x = torch.randn(b, LATENT, FRAMES, generator=generator) * sigmas[0]
    latents = kd.sampling.sample_dpmpp_3m_sde(kd.external.VDenoiser(v_model), x, sigmas, disable=True,
                                              noise_sampler=lambda s, s_next: torch.randn(x.shape, generator=generator))
    return latents, sao["vae"].decode(latents).sample


def test_whole_sampling_run_equals_reference(sao):
    pipe = sao["pipe"]
    steps, cfg_scale, seed = 8, 7.0, 3
    seconds = pipe.window_seconds
    with torch.no_grad():
        ours = pipe.generate_latents(PROMPTS, seconds, steps=steps, cfg_scale=cfg_scale, seed=seed,
                                     sampler="dpmpp-3m-sde", progress=False)
        audio = torch.from_numpy(np.stack(pipe.generate(PROMPTS, steps=steps, cfg_scale=cfg_scale, seed=seed,
                                                        progress=False)))
        latents, reference = reference_generation(sao, PROMPTS, seconds, steps, cfg_scale, seed)
    diffs = {"latents": (ours - latents).abs().max().item(), "audio": (audio - reference).abs().max().item()}
    print("whole sampling run max abs differences", diffs, "scales", latents.abs().max().item(),
          reference.abs().max().item())
    assert audio.shape == reference.shape == (2, 2, FRAMES * math.prod(STRIDES))
    assert all(d < 1e-4 for d in diffs.values()), diffs
    assert latents.abs().max() > 0.1 and reference.abs().max() > 0.1
    assert (latents[0] - latents[1]).abs().max() > 1e-3  # two prompts, two results: the text reached the output


# ---------------------------------------------------------------------- the checks can fail

def test_swapped_weights_are_caught(sao, tmp_path):
    # same shapes, so the load succeeds; the parity check must see it
    from safetensors.torch import save_file
    state = dict(sao["state"])
    a, b = (f"model.model.transformer.layers.{i}.cross_attn.to_q.weight" for i in (0, 1))
    state[a], state[b] = state[b], state[a]
    save_file(state, str(tmp_path / "model.safetensors"))
    pipe = load_stable_audio_open(tmp_path / "model.safetensors", sao["folder"] / "model_config.json", device="cpu")
    g = torch.Generator().manual_seed(7)
    x, t = torch.randn(1, LATENT, FRAMES, generator=g), torch.rand(1, generator=g)
    context, global_cond = torch.randn(1, 5, COND, generator=g), torch.randn(1, 2 * COND, generator=g)
    with torch.no_grad():
        expected = run_peer_dit(sao["dit"], x, t, context, global_cond)
        diff = (pipe.model(x, t, context, global_cond) - expected).abs().max()
    assert diff > 1e-3


def test_missing_and_unused_keys_are_named(sao, tmp_path):
    from safetensors.torch import save_file
    state = dict(sao["state"])
    del state["model.model.transformer.layers.1.ff.ff.2.bias"]
    del state["pretransform.model.decoder.layers.2.layers.3.layers.1.weight_g"]
    state["conditioner.conditioners.prompt.proj_out.weight"] = torch.zeros(COND, COND)  # a projection samod lacks
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(KeyError) as error:
        load_stable_audio_open(tmp_path / "model.safetensors", sao["folder"] / "model_config.json", device="cpu")
    message = str(error.value)
    assert "2 weights missing" in message and "1 keys unused" in message
    for key in ("model.model.transformer.layers.1.ff.ff.2.bias",
                "pretransform.model.decoder.layers.2.layers.3.layers.1.weight_g",
                "conditioner.conditioners.prompt.proj_out.weight"):
        assert key in message


def test_pickled_checkpoint_only_with_the_flag(sao, tmp_path):
    torch.save({"state_dict": sao["state"]}, tmp_path / "model.ckpt")  # a Lightning-style .ckpt
    with pytest.raises(ValueError, match="allow_pickle=True"):
        read_checkpoint(tmp_path / "model.ckpt")
    pipe = load_stable_audio_open(tmp_path / "model.ckpt", sao["folder"] / "model_config.json", device="cpu",
                                  allow_pickle=True)
    for (k, a), b in zip(pipe.model.state_dict().items(), sao["pipe"].model.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        read_checkpoint(tmp_path / "absent.safetensors")


def test_without_t5_the_prompt_says_what_to_pass(sao):
    pipe = load_stable_audio_open(sao["folder"] / "model.safetensors", sao["folder"] / "model_config.json",
                                  device="cpu")
    with pytest.raises(FileNotFoundError, match="t5_path"):
        pipe.generate("Amen break 174 BPM", steps=2, progress=False)
    narrow = T5Conditioner(T5ConditionerConfig.tiny(), train_t5_tokenizer(PROMPTS * 4, 300))  # width 64 != 128
    narrow.save(sao["folder"] / "t5_narrow")
    with pytest.raises(ValueError, match="64-wide features, the DiT expects 128"):
        load_stable_audio_open(sao["folder"] / "model.safetensors", sao["folder"] / "model_config.json",
                               sao["folder"] / "t5_narrow", device="cpu")


# ---------------------------------------------------------------------- samod's own writer

def test_random_checkpoint_written_by_samod_loads_back(tmp_path):
    config = StableAudioOpenConfig.from_model_config(small_model_config())
    paths = write_random_stable_audio_open(tmp_path, config, seed=0)
    again = write_random_stable_audio_open(tmp_path / "again", config, seed=0)
    assert json.loads(paths["config"].read_text()) == small_model_config()  # the released structure, small sizes
    assert all(torch.equal(v, w) for v, w in zip(read_checkpoint(paths["checkpoint"]).values(),
                                                 read_checkpoint(again["checkpoint"]).values()))  # same seed
    pipe = load_stable_audio_open(paths["checkpoint"], paths["config"], paths["t5"], device="cpu")
    written = read_checkpoint(paths["checkpoint"])
    loaded = to_stable_audio_open_state_dict(pipe.autoencoder, pipe.model)
    assert set(written) == set(loaded) and all(torch.equal(written[k], loaded[k]) for k in written)
    audio = pipe.generate(PROMPTS[0], steps=3, seed=0, progress=False)
    assert audio.shape == (2, FRAMES * math.prod(STRIDES)) and abs(audio).max() > 0
