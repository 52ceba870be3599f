"""One command that measures a GPU: each stage's training speed, memory and FLOP utilisation; samod against diffusers.

    python -m samod.gpu_check [--out PATH]        (make gpu-check)

On a CUDA machine it trains each stage (autoencoder with its discriminator, CLAP, DiT, LoRA) for --steps steps at
the small profile's sizes, then a DiT training step and a 1024-latent sampling step with classifier-free guidance at
the paper's size, and reports per measurement:

- steps per second (after a warm-up step; the clock stopped only after torch.cuda.synchronize);
- peak memory (torch.cuda.max_memory_allocated);
- model FLOP utilisation, MFU = FLOPs per step x steps per second / the GPU's dense bf16 peak. FLOPs are counted
  by torch.utils.flop_counter.FlopCounterMode on the real step (matmuls, convolutions, attention; forward and
  backward); a recomputed checkpointed block counts too (it is work the GPU does, not model FLOPs in the strict
  sense of Chowdhery et al. 2022, so with checkpointing this MFU reads higher than theirs), while flash-attn's
  kernel, not an aten operator, is not seen (where it runs, the attention's FLOPs are left out);
- samod's DiT and autoencoder against diffusers' StableAudioDiTModel and AutoencoderOobleck on identical weights
  (converted with tests/stable_audio_peer.py, the parity tests' mapping), the ratio of their speeds, when diffusers
  and the repository's tests/ folder are there (else it says so and skips the ratio);
- whether flash-attn is installed and used (CUDA, bf16).

The weights are random and the data synthetic (noise, stand-in text features): speed and memory do not depend on
them. On a machine without CUDA it runs the same code at the tiny profile's sizes, with batch 1-2 and short crops,
on the CPU, and says so: those numbers describe nothing about a GPU; the run proves the command works (a unit test
runs it). Everything is written to a JSON file with its provenance (hardware, commit, torch, flash-attn, diffusers).

Taught nowhere yet: a GPU user's first command (README, "On a GPU").
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from samod.autoencoder import Autoencoder, AutoencoderConfig
from samod.autoencoder import load_reference_state_dict as load_autoencoder_reference
from samod.autoencoder_training import AutoencoderRecipe, AutoencoderStage
from samod.clap import ClapEncoder, train_clap_tokenizer
from samod.clap_training import ClapRecipe, ClapStage
from samod.diffusion import DiffusionModel
from samod.diffusion_training import DiffusionRecipe, DiffusionStage, window_frames
from samod.dit import DiT, DiTConfig, _flash_attn
from samod.dit import load_reference_state_dict as load_dit_reference
from samod.finetune import AdapterConfig, FinetuneStage, add_adapter
from samod.profiles import get_profile
from samod.sampler import Denoiser, make_uncond
from samod.train import TrainConfig, Trainer

LATENT_RATE = 44100 / 2048
# dense bfloat16 tensor-core peaks, FLOP/s, from the vendors' datasheets; the first name found in the device's wins
PEAK_BF16 = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12,
             "RTX 4090": 165e12, "RTX 3090": 71e12}
PROMPTS = ["Genre: ambient | Instruments: pad, strings | BPM: 70", "metal, distortion guitar, drums, 166 BPM"]


class StandInText(torch.nn.Module):
    """Stand-in text features (random, `tokens` x `width`) where the DiT needs them: the DiT's cost is measured."""

    def __init__(self, width: int, tokens: int = 128):
        super().__init__()
        self.width, self.max_tokens = width, tokens
        self.register_buffer("anchor", torch.zeros(0), persistent=False)  # follows .to(device)

    def features(self, prompts):
        b, device = len(prompts), self.anchor.device
        return (torch.randn(b, self.max_tokens, self.width, device=device),
                torch.ones(b, self.max_tokens, dtype=torch.bool, device=device))


# ----------------------------------------------------------------------------------------------------
# The stages at a profile's sizes, random weights, one synthetic batch each

def stages(profile: str, smoke: bool) -> dict:
    """name -> a function building (stage, batch), one stage in memory at a time. smoke: batch 1-2, short crops."""
    ae, clap, dit = (AutoencoderRecipe.for_profile(profile), ClapRecipe.for_profile(profile),
                     DiffusionRecipe.for_profile(profile))
    g = torch.Generator().manual_seed(0)
    crop = 8192 if smoke else ae.crop_samples
    ae_batch = 1 if smoke else ae.batch_size
    clap_seconds = clap.model.window_seconds + 1 if smoke else clap.crop_seconds  # longer than the window: fused
    clap_batch = 2 if smoke else clap.batch_size
    frames = 64 if smoke else window_frames(get_profile(profile), "pretrain", LATENT_RATE)
    dit_batch = 1 if smoke else dit.batch_size
    torch.manual_seed(0)
    tokenizer = train_clap_tokenizer(PROMPTS * 4, vocab_size=clap.model.vocab_size)
    latents = {"latents": torch.randn(dit_batch, dit.model.latent_channels, frames, generator=g),
               "prompt": (PROMPTS * dit_batch)[:dit_batch], "seconds_start": torch.zeros(dit_batch),
               "seconds_total": torch.full((dit_batch,), frames / LATENT_RATE)}
    text = StandInText(dit.model.cond_dim)
    return {
        "autoencoder": lambda: (AutoencoderStage(Autoencoder(ae.model), replace(ae.losses, discriminator_start=0),
                                                 ae.generator, ae.discriminator),
                                {"audio": 0.1 * torch.randn(ae_batch, 2, crop, generator=g)}),
        "clap": lambda: (ClapStage(ClapEncoder(clap.model, tokenizer), clap.optimizer),
                         {"audio": 0.1 * torch.randn(clap_batch, 2, int(clap_seconds * 44100), generator=g),
                          "prompt": (PROMPTS * clap_batch)[:clap_batch]}),
        "dit": lambda: (DiffusionStage(DiffusionModel(dit.model), text, dit.optimizer), latents),
        "lora": lambda: (FinetuneStage(add_adapter(DiffusionModel(dit.model), AdapterConfig(rank=16, alpha=16)),
                                       text, dit.optimizer), latents),
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None  # a CPU has no bf16 tensor-core peak to compare with
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


def measure_training(stage, batch, steps: int, device: torch.device, config: TrainConfig | None = None) -> dict:
    """Warm-up step, 2 steps under the FLOP counter (an autoencoder's generator and discriminator), `steps` timed."""
    trainer = Trainer(stage, config or TrainConfig(steps=1, progress=False, device=str(device)), None)
    trainer.fit(lambda step: batch)  # warm-up: allocations, kernel selection
    with FlopCounterMode(display=False) as counter:
        trainer.config.steps = 3
        trainer.fit(lambda step: batch)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    trainer.config.steps = 3 + steps
    trainer.fit(lambda step: batch)
    synchronize(device)
    seconds = time.perf_counter() - start
    flops = counter.get_total_flops() / 2
    return {"steps": steps, "steps_per_s": steps / seconds, "flops_per_step": flops,
            "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None,
            "precision": str(trainer.config.autocast_dtype(device) or torch.float32).removeprefix("torch."),
            "bad_steps": trainer.bad_steps}


def utilisation(result: dict, peak: float | None) -> float | None:
    return result["flops_per_step"] * result["steps_per_s"] / peak if peak else None


def time_calls(functions: dict, repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each function, alternating between them (machine noise hits all alike)."""
    times = {name: [] for name in functions}
    for fn in functions.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in functions.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


# ----------------------------------------------------------------------------------------------------
# Paper-size DiT and the comparison with diffusers

def sampling_step(model: DiffusionModel, frames: int, device: torch.device, dtype: torch.dtype | None):
    """One DPM-Solver step's model call with CFG (batch 1, cond + uncond as one batch of 2) at `frames` latents."""
    config = model.config
    g = torch.Generator().manual_seed(1)
    cond = model.condition(torch.randn(1, 128, config.cond_dim, generator=g).to(device), torch.zeros(1, device=device),
                           torch.full((1,), frames / LATENT_RATE, device=device))
    denoiser = Denoiser(model, cond, make_uncond(cond), cfg_scale=7.0)
    x = torch.randn(1, config.latent_channels, frames, generator=g).to(device)
    sigma = torch.full((1,), 10.0, device=device)

    @torch.no_grad()
    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype is not None):
            return denoiser(x, sigma)
    return step


def peer_module():
    """tests/stable_audio_peer.py (the parity tests' weight conversion) and diffusers, or (None, why not)."""
    if importlib.util.find_spec("diffusers") is None:
        return None, "diffusers is not installed (pip install -r requirements-dev.txt): no ratio against it"
    tests = Path(__file__).resolve().parents[1] / "tests"
    if not (tests / "stable_audio_peer.py").exists():
        return None, f"{tests}/stable_audio_peer.py is not there (a repository checkout has it): no ratio"
    sys.path.insert(0, str(tests))
    import stable_audio_peer  # the test peer's weight conversion: only in a repository checkout
    return stable_audio_peer, None


def against_diffusers(dit_config: DiTConfig, ae_config: AutoencoderConfig, frames: int, device: torch.device,
                      dtype: torch.dtype, repeats: int) -> dict:
    """samod / diffusers speed ratios on identical weights: a CFG DiT call at `frames`, an autoencoder decode."""
    peer, why = peer_module()
    if peer is None:
        return {"skipped": why}
    warnings.filterwarnings("ignore", category=FutureWarning)  # diffusers' old weight_norm
    import diffusers  # diffusers: a test-only dependency, optional here
    from diffusers.models.embeddings import get_1d_rotary_pos_embed  # diffusers, as above
    c = dit_config
    theirs = diffusers.StableAudioDiTModel(
        sample_size=64, in_channels=c.latent_channels, out_channels=c.latent_channels, num_layers=c.depth,
        attention_head_dim=c.head_dim, num_attention_heads=c.heads, num_key_value_attention_heads=c.cross_kv_heads,
        cross_attention_dim=c.cond_dim, time_proj_dim=c.timestep_features, global_states_input_dim=2 * c.cond_dim,
        cross_attention_input_dim=c.cond_dim).eval()
    peer.randomise(theirs)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if name.endswith(("norm1.bias", "norm2.bias", "norm3.bias")):
                p.zero_()  # SAT's LayerNorm has no bias: diffusers' must be zero to be the same model
    reference = peer.dit_to_reference(theirs.state_dict())  # the parity tests' mapping
    ours = load_dit_reference(DiT(c).eval(), {"model.model." + k: v for k, v in reference.items()})
    ours, theirs = ours.to(device, dtype), theirs.to(device, dtype)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, c.latent_channels, frames, generator=g).to(device, dtype)  # cond and uncond: a CFG call
    t = torch.full((2,), 0.5).to(device, dtype)
    context = torch.randn(2, 130, c.cond_dim, generator=g).to(device, dtype)
    global_cond = torch.randn(2, 2 * c.cond_dim, generator=g).to(device, dtype)
    rotary = tuple(r.to(device) for r in get_1d_rotary_pos_embed(c.head_dim // 2, frames + 1, use_real=True,
                                                                   repeat_interleave_real=False))
    with torch.inference_mode():
        a = ours(x, t, context, global_cond)
        b = theirs(x, t, encoder_hidden_states=context, global_hidden_states=global_cond[:, None],
                   rotary_embedding=rotary, return_dict=False)[0]
        agree = ((a - b).float().norm() / b.float().norm()).item()
        dit_times = time_calls({"samod": lambda: ours(x, t, context, global_cond),
                                "diffusers": lambda: theirs(x, t, encoder_hidden_states=context,
                                                            global_hidden_states=global_cond[:, None],
                                                            rotary_embedding=rotary, return_dict=False)},
                               repeats, device)
    del ours, theirs
    vae_theirs = diffusers.AutoencoderOobleck(encoder_hidden_size=ae_config.channels,
                                              decoder_channels=ae_config.channels,
                                              decoder_input_channels=ae_config.latent_dim,
                                              downsampling_ratios=list(ae_config.strides),
                                              channel_multiples=list(ae_config.channel_mults)).eval()
    n = len(ae_config.strides)
    vae_ours = load_autoencoder_reference(Autoencoder(ae_config).eval(), {
        "pretransform.model." + peer.oobleck_to_reference(k, n): v for k, v in vae_theirs.state_dict().items()})
    vae_ours, vae_theirs = vae_ours.to(device), vae_theirs.to(device)  # float32: the VAE runs in fp32 in samod
    z = torch.randn(1, ae_config.latent_dim, frames, generator=g).to(device)
    with torch.inference_mode():
        expected = vae_theirs.decode(z).sample
        vae_agree = ((vae_ours.decode(z) - expected).norm() / expected.norm()).item()
        vae_times = time_calls({"samod": lambda: vae_ours.decode(z), "diffusers": lambda: vae_theirs.decode(z).sample},
                               repeats, device)
    return {"dit_cfg_call": {"frames": frames, "dtype": str(dtype).removeprefix("torch."), "relative_difference": agree,
                             "seconds": dit_times, "ratio_samod_over_diffusers_speed":
                             dit_times["diffusers"] / dit_times["samod"]},
            "autoencoder_decode": {"frames": frames, "dtype": "float32", "relative_difference": vae_agree,
                                   "seconds": vae_times, "ratio_samod_over_diffusers_speed":
                                   vae_times["diffusers"] / vae_times["samod"]}}


# ----------------------------------------------------------------------------------------------------
# Provenance and the run

def provenance(device: torch.device) -> dict:
    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)")
    return {"hardware": hardware, "commit": commit, "torch": torch.__version__, "cuda": torch.version.cuda,
            "flash_attn": version("flash-attn"), "diffusers": version("diffusers"), "python": platform.python_version(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def run(steps: int | None = None, repeats: int | None = None, device: str | None = None) -> dict:
    """Every measurement (module docstring) as one dict."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_gpu = device.type == "cuda"
    profile = "small" if on_gpu else "tiny"
    steps, repeats = steps or (20 if on_gpu else 1), repeats or (10 if on_gpu else 1)
    peak = peak_flops(device)
    flash = _flash_attn() is not None
    result = {"device": device.type, "profile": profile, "provenance": provenance(device), "peak_bf16_flops": peak,
              "flash_attn": {"installed": flash, "used": flash and on_gpu},  # the DiT calls it on CUDA in bf16
              "note": None if on_gpu else "no CUDA: the tiny profile's sizes at batch 1-2 on the CPU, a smoke run; "
                                          "these numbers say nothing about a GPU", "stages": {}}
    for name, build in stages(profile, smoke=not on_gpu).items():
        stage, batch = build()
        measured = measure_training(stage, batch, steps, device)
        measured["mfu"] = utilisation(measured, peak)
        result["stages"][name] = measured
        del stage  # the next stage's peak memory is its own
        if on_gpu:
            torch.cuda.empty_cache()
    # The paper DiT (CPU: the tiny one, 64 latents): a training step at SAO's batch 4 of 1024 latents (47.6 s) with
    # gradient checkpointing, and a CFG sampling step at 1024 latents; bf16 on both (autocast; the CPU's too)
    dit_config = DiTConfig.paper() if on_gpu else DiTConfig.tiny()
    batch_size, frames = (4, 1024) if on_gpu else (1, 64)
    model = DiffusionModel(replace(dit_config, gradient_checkpointing=True))
    batch = {"latents": torch.randn(batch_size, dit_config.latent_channels, frames),
             "prompt": (PROMPTS * batch_size)[:batch_size],
             "seconds_start": torch.zeros(batch_size), "seconds_total": torch.full((batch_size,), frames / LATENT_RATE)}
    stage = DiffusionStage(model, StandInText(dit_config.cond_dim), DiffusionRecipe.paper().optimizer)
    measured = measure_training(stage, batch, 5 if on_gpu else 1, device,
                                TrainConfig(steps=1, progress=False, device=str(device), precision="bf16"))
    measured["mfu"] = utilisation(measured, peak)
    result["dit_training"] = measured | {"dit": "paper" if on_gpu else "tiny", "batch": batch_size, "frames": frames,
                                         "gradient_checkpointing": True}
    del stage, model
    if on_gpu:
        torch.cuda.empty_cache()
    model = DiffusionModel(dit_config).to(device).eval()
    step = sampling_step(model, frames, device, torch.bfloat16)
    with FlopCounterMode(display=False) as counter:
        step()
    seconds = time_calls({"step": step}, repeats, device)["step"]
    result["sampling_step"] = {"dit": "paper" if on_gpu else "tiny", "frames": frames, "cfg": True, "precision":
                               "bfloat16", "steps_per_s": 1 / seconds, "flops_per_step": counter.get_total_flops(),
                               "mfu": counter.get_total_flops() / seconds / peak if peak else None}
    del model
    # diffusers' Oobleck ties the encoder's width to 2 x the latent channels (as the paper's 128 and 64 are)
    ae_config = AutoencoderConfig.paper() if on_gpu else replace(AutoencoderConfig.tiny(), latent_dim=8)
    result["against_diffusers"] = against_diffusers(dit_config, ae_config, frames, device,
                                                    torch.bfloat16 if on_gpu else torch.float32, repeats)
    return result


def summary(result: dict) -> str:
    """The measurements as lines of text."""
    def number(value, fmt):
        return "n/a" if value is None else format(value, fmt)
    p = result["provenance"]
    lines = [f"gpu-check on {p['hardware']} (torch {p['torch']}, flash-attn {p['flash_attn'] or 'not installed'}, "
             f"used: {result['flash_attn']['used']}), commit {p['commit']}"]
    if result["note"]:
        lines.append(f"NOTE: {result['note']}")
    lines.append(f"training at the {result['profile']} profile's sizes:")
    rows = list(result["stages"].items())
    d = result["dit_training"]
    rows.append((f"{d['dit']} DiT {d['batch']}x{d['frames']}", d))
    for name, m in rows:
        lines.append(f"  {name:22s} {m['steps_per_s']:8.2f} steps/s  peak {number(m['peak_memory_gb'], '.1f')} GB  "
                     f"{m['flops_per_step'] / 1e9:10.2f} GFLOP/step  MFU {number(m['mfu'], '.1%')}  ({m['precision']})")
    s = result["sampling_step"]
    lines.append(f"sampling step ({s['dit']} DiT, {s['frames']} latents, CFG, bf16): {s['steps_per_s']:.1f} steps/s, "
                 f"MFU {number(s['mfu'], '.1%')}")
    peer = result["against_diffusers"]
    if "skipped" in peer:
        lines.append(f"against diffusers: skipped: {peer['skipped']}")
    else:
        for name, m in peer.items():
            lines.append(f"against diffusers, {name} ({m['frames']} latents, {m['dtype']}): ratio samod / diffusers "
                         f"speed {m['ratio_samod_over_diffusers_speed']:.2f} (outputs differ by "
                         f"{m['relative_difference']:.1e}, relative)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure this machine: every stage's speed, memory and MFU.")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default <profile>/figures/gpu_check.json)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per stage (CUDA 20, CPU 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per comparison (CUDA 10, CPU 1)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    args = parser.parse_args(argv)
    result = run(args.steps, args.repeats, args.device)
    out = args.out or get_profile().figures_dir / "gpu_check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(summary(result))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
