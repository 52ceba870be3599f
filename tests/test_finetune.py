"""Tests of samod/finetune.py: LoRA (peft) and full fine-tuning of the DiT at toy sizes on CPU."""
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

from samod.diffusion import DiffusionModel
from samod.dit import DiTConfig
from samod.finetune import (ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterConfig, FinetuneConfig, add_adapter, finetune,
                            full_finetuning, load_adapter, main, merge, save_adapter, unmerge)
from samod.pretrained import load_stable_audio_open, write_random_stable_audio_open
from samod.train import OptimizerConfig, read_checkpoint_metadata

CONFIG = DiTConfig(latent_channels=8, width=32, depth=2, heads=2, cross_kv_heads=1, cond_dim=8, max_seconds=64.0)


class FixedText(torch.nn.Module):
    """A stand-in text encoder: a fixed random embedding per prompt (width 8, 4 tokens)."""
    width, max_tokens = 8, 4

    def features(self, prompts):
        rows = [torch.randn(4, 8, generator=torch.Generator().manual_seed(sum(map(ord, p)))) for p in prompts]
        return torch.stack(rows), torch.ones(len(prompts), 4, dtype=torch.bool)


def base_model(seed=0, config=CONFIG):
    """A DiT whose zero-initialised layers are drawn too, so that every block changes the output."""
    torch.manual_seed(seed)
    model = DiffusionModel(config)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    return model.eval()


def inputs(model, frames=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    c = model.config
    text = torch.randn(2, 4, c.cond_dim, generator=g)
    cond = model.condition(text, torch.tensor([0.0, 3.0]), torch.tensor([10.0, 40.0]))
    x = torch.randn(2, c.latent_channels, frames, generator=g)
    return x, torch.tensor([0.3, 0.8]), cond


def output(model, frames=12):
    x, t, cond = inputs(model, frames)
    with torch.no_grad():
        return model(x, t, **cond)


def randomise_adapter(model, seed=2):
    """Give B a nonzero value (peft starts it at zero) so that the adapter changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def write_cache(folder, channels=8, songs=(("a", 40, 20.0), ("b", 90, 45.0), ("c", 60, 30.0))):
    """A latent cache as data_prep.encode writes it: info.json, index.jsonl, silence and per-song posteriors."""
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    (folder / "info.json").write_text(json.dumps({"encoder_sha256": "1" * 64, "autoencoder_sha256": "0" * 64,
                                                  "latent_channels": channels,
                                                  "latent_rate": 2.0, "downsampling": 2048, "sample_rate": 44100}))
    save_file({"mean": torch.zeros(channels), "std": torch.full((channels,), 0.1)}, str(folder / "silence.safetensors"))
    index = []
    for song, frames, seconds in songs:
        save_file({"mean": torch.randn(channels, frames, generator=g), "std": torch.full((channels, frames), 0.1)},
                  str(folder / f"{song}.safetensors"))
        index.append({"id": song, "seconds": seconds, "genre": "jazz", "caption": f"song {song}",
                      "latent_path": f"{song}.safetensors", "frames": frames})
    (folder / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in index))
    return folder


# ---------------------------------------------------------------------- LoRA layers

def test_adapter_targets_every_block_linear_and_only_adapters_get_gradients():
    model = add_adapter(base_model(), AdapterConfig(rank=4, alpha=8))
    adapted = sorted({n.split(".lora_")[0] for n, _ in model.named_parameters() if "lora_" in n})
    assert len(adapted) == 7 * CONFIG.depth  # qkv, out, q, kv, out, proj_in, proj_out per block
    assert "dit.proj_in" not in adapted and "dit.proj_out" not in adapted  # the DiT's own projections stay
    randomise_adapter(model)  # with B = 0 the gradient of A would be zero too
    model.train()
    x, t, cond = inputs(model)
    model(x, t, **cond).square().mean().backward()
    for name, p in model.named_parameters():
        if "lora_" in name:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_full_finetuning_trains_every_weight():
    model = full_finetuning(base_model())
    x, t, cond = inputs(model)
    model(x, t, **cond).square().mean().backward()
    assert all(p.requires_grad for p in model.parameters())
    assert sum(p.grad is not None for p in model.parameters()) > 0.9 * len(list(model.parameters()))


def test_zero_initialised_adapter_leaves_the_base_output_unchanged():
    before = output(base_model())
    model = add_adapter(base_model(), AdapterConfig(rank=4, alpha=16))  # peft: B = 0 at init
    assert torch.equal(output(model), before)
    assert torch.equal(output(merge(model)), before)  # merging B A = 0 changes no weight


def test_merged_and_unmerged_outputs_are_equal():
    base = output(base_model())
    model = add_adapter(base_model(), AdapterConfig(rank=4, alpha=8))
    randomise_adapter(model)
    adapted = output(model)
    assert not torch.allclose(adapted, base, atol=1e-3)  # the adapter matters
    merged = output(merge(model))
    unmerged = output(unmerge(model))
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=0)
    torch.testing.assert_close(unmerged, adapted, atol=1e-5, rtol=0)
    # W + (alpha / r) B A written out for one layer: the merged weight is peft's
    layer = model.dit.blocks[0].self_attn.qkv
    a, b, w = layer.lora_A["default"].weight, layer.lora_B["default"].weight, layer.base_layer.weight.clone()
    merge(model)
    torch.testing.assert_close(layer.base_layer.weight, w + (8 / 4) * b @ a, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------- saving and loading

def test_save_and_load_round_trip(tmp_path):
    model = add_adapter(base_model(), AdapterConfig(rank=2, alpha=4, dropout=0.1))
    randomise_adapter(model)
    expected = output(model.eval())
    save_adapter(model, tmp_path / "adapter")
    saved = load_file(str(tmp_path / "adapter" / ADAPTER_WEIGHTS))
    assert saved and all("lora_" in key for key in saved)  # only A and B: a small file
    description = json.loads((tmp_path / "adapter" / ADAPTER_CONFIG).read_text())
    assert description["mode"] == "lora" and description["adapter"]["rank"] == 2
    assert description["base"]["dit"]["width"] == CONFIG.width and len(description["base"]["weights_sha256"]) == 64
    loaded = load_adapter(base_model(), tmp_path / "adapter")
    assert torch.equal(output(loaded), expected)


def test_full_finetuning_round_trip(tmp_path):
    model = full_finetuning(base_model())
    with torch.no_grad():
        model.dit.proj_out.weight.add_(0.1)
    save_adapter(model, tmp_path / "full")
    assert torch.equal(output(load_adapter(base_model(seed=5), tmp_path / "full")), output(model))


def test_adapter_for_another_base_is_refused(tmp_path):
    model = add_adapter(base_model(seed=0), AdapterConfig(rank=2))
    save_adapter(model, tmp_path / "adapter")
    sha = json.loads((tmp_path / "adapter" / ADAPTER_CONFIG).read_text())["base"]["weights_sha256"]
    with pytest.raises(ValueError, match=f"made for base weights with SHA-256 {sha[:16]}.*fine-tune a new adapter"):
        load_adapter(base_model(seed=1), tmp_path / "adapter")


def test_merged_adapter_is_not_saved(tmp_path):
    model = merge(add_adapter(base_model(), AdapterConfig(rank=2)))
    with pytest.raises(ValueError, match="unmerge"):
        save_adapter(model, tmp_path / "adapter")


# ---------------------------------------------------------------------- training

def test_lora_training_changes_only_the_adapter_and_resumes(tmp_path):
    cache = write_cache(tmp_path / "latents")
    model = add_adapter(base_model(), AdapterConfig(rank=2, alpha=2))
    base = {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
    config = FinetuneConfig(window_seconds=25.0, steps=3, batch_size=2, checkpoint_every=2,
                            optimizer=OptimizerConfig(lr=1e-2))
    ema, history = finetune(model, FixedText(), cache, config, tmp_path / "run", progress=False)
    assert [h["step"] for h in history] == [1, 2, 3] and all(math.isfinite(h["loss/model"]) for h in history)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in base.items())  # the base is frozen
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)  # B has moved
    description = json.loads((tmp_path / "run" / "adapter" / ADAPTER_CONFIG).read_text())
    assert description["window_seconds"] == 25.0 and description["songs"] == 3
    # a rerun with more steps resumes from the Trainer's checkpoint at step 3
    again = add_adapter(base_model(), AdapterConfig(rank=2, alpha=2))
    _, history = finetune(again, FixedText(), cache, replace(config, steps=4),
                          tmp_path / "run", progress=False)
    assert [h["step"] for h in history] == [1, 2, 3, 4]


def test_a_window_longer_than_every_song_is_allowed_with_a_warning(tmp_path):
    cache = write_cache(tmp_path / "latents")  # songs of 20, 45 and 30 s
    config = FinetuneConfig(window_seconds=50.0, steps=1, batch_size=2, checkpoint_every=1)
    with pytest.warns(UserWarning, match="longer than every song"):
        finetune(add_adapter(base_model(), AdapterConfig(rank=2)), FixedText(), cache, config, tmp_path / "run",
                 progress=False)


def test_lora_on_a_stable_audio_open_checkpoint_trains_saves_and_generates(tmp_path):
    paths = write_random_stable_audio_open(tmp_path / "sao", seed=0)
    pipe = load_stable_audio_open(paths["checkpoint"], paths["config"], paths["t5"], device="cpu")
    base_audio = pipe.generate("a drum loop", seconds=2, steps=2, seed=0, progress=False)
    cache = write_cache(tmp_path / "latents", channels=pipe.model.config.latent_channels)
    add_adapter(pipe.model, AdapterConfig(rank=4, alpha=4))
    config = FinetuneConfig(window_seconds=5.0, steps=2, batch_size=2, optimizer=OptimizerConfig(lr=1e-2))
    finetune(pipe.model, pipe.text_encoder, cache, config, tmp_path / "run", progress=False)

    fresh = load_stable_audio_open(paths["checkpoint"], paths["config"], paths["t5"], device="cpu")
    load_adapter(fresh.model, tmp_path / "run" / "adapter")  # a Pipeline whose model carries the adapter
    audio = fresh.generate("a drum loop", seconds=2, steps=2, seed=0, progress=False)
    assert audio.shape == base_audio.shape and not torch.allclose(torch.tensor(audio), torch.tensor(base_audio))
    other = write_random_stable_audio_open(tmp_path / "other", seed=1)
    other_pipe = load_stable_audio_open(other["checkpoint"], other["config"], other["t5"], device="cpu")
    with pytest.raises(ValueError, match="made for base weights"):
        load_adapter(other_pipe.model, tmp_path / "run" / "adapter")


def test_cli_help_names_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    printed = capsys.readouterr().out
    assert exit_.value.code == 0 and all(o in printed for o in ("--lora-rank", "--window", "--full", "--base"))


def test_cli_imports_encodes_trains_and_resumes_on_a_stable_audio_open_checkpoint(tmp_path):
    paths = write_random_stable_audio_open(tmp_path / "sao", seed=0)  # t5/ next to the checkpoint: found by default
    audio = tmp_path / "songs"
    audio.mkdir()
    for i, hz in enumerate([220, 330, 440]):
        sf.write(str(audio / f"song{i}.wav"), 0.3 * np.sin(2 * np.pi * hz * np.arange(44100) / 44100), 44100)
    (tmp_path / "captions.csv").write_text("file,caption,bpm\nsong0.wav,a low drone,60\nsong1.wav,a mid drone,"
                                           "slow\nsong2.wav,a high drone,90\n")
    def run(steps):
        return main(["--data", str(audio), "--captions", str(tmp_path / "captions.csv"), "--window", "2",
                     "--lora-rank", "2", "--steps", str(steps), "--batch-size", "2", "--out", str(tmp_path / "run"),
                     "--base", str(paths["checkpoint"]), "--no-progress"])

    with pytest.warns(UserWarning, match="bpm 'slow' is not a number"):  # the song is kept, bpm unknown
        assert run(steps=2) == 0
    description = json.loads((tmp_path / "run" / "adapter" / ADAPTER_CONFIG).read_text())
    assert description["songs"] == 3 and description["steps"] == 2 and description["adapter"]["rank"] == 2
    with pytest.warns(UserWarning):
        assert run(steps=3) == 0  # the import and the cache are reused, training resumes at step 2
    meta = read_checkpoint_metadata(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert meta["step"] == 3 and [h["step"] for h in meta["history"]] == [1, 2, 3]  # resumed, not restarted
