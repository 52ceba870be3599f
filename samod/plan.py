"""The cost of a profile: parameters, FLOPs, activation memory and GPU-hours of every training stage.

`python -m samod.plan --profile paper` says, before a machine is rented, what the profile's recipes
(samod.autoencoder_training, samod.clap_training, samod.diffusion) cost, stage by stage (paper 1 §3:
autoencoder, CLAP, DiT pre-training, DiT fine-tuning), beside the GPU-hours the papers report.

How each number is obtained (counted on the real modules built from the profile's configs and recipes, at
reduced sizes, then scaled by a stated law; no hand formula):

- Parameters: counted on the modules built on the meta device (shapes only, no memory).
- FLOPs: torch.utils.flop_counter.FlopCounterMode over the forward and backward of one example.
  It counts matrix products, convolutions and attention; FFTs and element-wise ops are not counted.
  Scaling laws, each fit exactly from counts at a few reduced lengths:
    autoencoder   F(T) = a + b T            convolutions are linear in the samples T (two crop lengths)
    DiT           F(L) = a + b L + c L^2    linear layers and cross-attention are linear in the latent
                                            frames L, self-attention quadratic (three lengths); and
                  F(depth) = F(1) + (depth - 1) (F(2) - F(1)), since the blocks are identical
    CLAP          one fixed input (a W-second window, S text tokens): counted once, no law needed.
  A training step is batch x the per-example count: examples do not interact (CLAP's B x B loss aside).
- Activation memory: the bytes autograd saves for backward (saved_tensors_hooks, each storage once,
  parameters excluded), one example, fp32, linear in the length (fit from two lengths). The DiT is measured on
  CPU tensors, where scaled_dot_product_attention saves O(N) like flash attention on a GPU; the convolutional
  autoencoder and CLAP on the meta device. With gradient checkpointing each block keeps only its inputs and
  one block's activations live again while it is recomputed (tests/test_plan.py checks it on the DiT):
      M_ckpt = M - sum(block activations) + sum(block inputs) + max(block activations)
  which is what DiTConfig.gradient_checkpointing does; for the autoencoder and CLAP (no such switch in samod)
  what checkpointing their blocks would give. bf16 autocast stores the matmul inputs in half the bytes.
- GPU-hours: total FLOPs of the recipe / (MFU x peak), at MFU 40% of the dense bf16 peaks below.

Writes figures/compute_plan.json and figures/compute_plan.md (all three profiles by default).
Shapes (glossary): B batch, A audio channels, T samples, D latent channels, L latent frames, N = L + 1 tokens.
Taught in notebooks/09_stable_audio_open.ipynb.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental import _config as fx_config
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils.flop_counter import FlopCounterMode
from transformers import ClapModel

from samod.autoencoder import Autoencoder, vae_bottleneck
from samod.autoencoder_training import (AutoencoderRecipe, AutoencoderStage, discriminator_hinge_loss,
                                        feature_matching_loss, generator_adversarial_loss)
from samod.checkpoints import count_parameters
from samod.clap_training import ClapRecipe
from samod.diffusion_training import DiffusionRecipe, window_frames
from samod.dit import DiT
from samod.generation import SamplingConfig
from samod.profiles import REPO_ROOT, SAMPLE_RATE, get_profile

MFU = 0.4  # model FLOP utilisation: an assumption (a well-tuned bf16 transformer run), not a measurement
PEAK_FLOPS = {"A100": 312e12, "H100 SXM": 989e12}  # dense bf16 tensor-core peaks, FLOP/s
PROFILES = ("tiny", "small", "paper")
# GPU-hours the papers report, in A100-hours (paper 1 §3, footnote 5: one hour on one GPU)
PAPER_HOURS = {
    "autoencoder": {"stable_audio_2": 16_000, "stable_audio_open": 183 * 32 + 273 * 32},
    "clap": {"stable_audio_2": 3_000, "stable_audio_open": None},
    "dit_pretrain": {"stable_audio_2": 70_000, "stable_audio_open": 338 * 64},
    "dit_finetune": {"stable_audio_2": 15_000, "stable_audio_open": None},
}
PAPER_SOURCES = ("Stable Audio 2 (paper 1) §3: CLAP ~3k, autoencoder 16k, DiT pre-training 70k and fine-tuning 15k "
                 "A100-hours. Stable Audio Open §4: autoencoder 183 h + 273 h (decoder only) on 32 A100s; "
                 "DiT 338 h on 64 A100s, one stage on 1024-latent (47 s) windows, listed beside pre-training.")
# Why samod's paper recipe and paper 1 differ by more than 2x, where they do (the plan prints it only then)
GAP_REASONS = {
    "autoencoder": "paper 1 gives neither the autoencoder's steps nor its batch (samod's are a choice); "
                   "its SnakeBeta activations, STFT losses and discriminator STFTs are element-wise "
                   "or FFT work that FlopCounterMode does not count and that keeps a GPU far below the assumed MFU.",
    "clap": "paper 1 gives neither CLAP's steps nor its batch (samod's are a choice); the audio front end "
            "(resampling, STFT, mel) and the data loading are work the FLOPs do not count.",
    "dit_pretrain": "paper 1 gives neither the DiT's steps nor its batch: samod's are a choice, far fewer "
                    "examples than the paper's hours buy.",
    "dit_finetune": "paper 1 gives neither the steps nor the batch of fine-tuning: samod's are a choice.",
}


# ----------------------------------------------------------------------------------------------------
# Counting: FLOPs, saved activations, and the laws that scale them

def count_flops(fn) -> tuple[int, object]:
    """(FLOPs counted by FlopCounterMode while fn() runs, fn's result)."""
    with FlopCounterMode(display=False) as counter:
        out = fn()
    return counter.get_total_flops(), out


def saved_activations(fn, params, blocks: list[nn.Module] = ()) -> tuple[dict[str, int], object]:
    """Bytes autograd saves for backward while fn() runs (each storage once, parameters excluded), split over
    `blocks`: ({"total", "blocks" (their sum), "largest_block", "block_inputs" (sum of their inputs)}, fn())."""
    skip = {StorageWeakRef(p.untyped_storage()).cdata for p in params}
    owner, saved, inputs = [None], {}, []

    def pack(tensor):
        key = StorageWeakRef(tensor.untyped_storage()).cdata
        if key not in skip and key not in saved:
            saved[key] = (owner[0], tensor.untyped_storage().nbytes())
        return tensor

    def enter(i):
        def hook(_module, args):
            owner[0] = i
            inputs.append(args[0].numel() * args[0].element_size())
        return hook

    handles = [b.register_forward_pre_hook(enter(i)) for i, b in enumerate(blocks)]
    handles += [b.register_forward_hook(lambda *_: owner.__setitem__(0, None)) for b in blocks]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            out = fn()
    finally:
        for handle in handles:
            handle.remove()
    per_block = [sum(n for o, n in saved.values() if o == i) for i in range(len(blocks))]
    return {"total": sum(n for _, n in saved.values()), "blocks": sum(per_block),
            "largest_block": max(per_block, default=0), "block_inputs": sum(inputs)}, out


def measure(forward, params=(), blocks: list[nn.Module] = ()) -> dict:
    """One forward and backward of forward() (a tensor, summed to backpropagate): {"forward": FLOPs,
    "step": forward + backward FLOPs, "memory": its saved activations (see saved_activations)}."""
    f, (memory, out) = count_flops(lambda: saved_activations(forward, params, blocks))
    b, _ = count_flops(lambda: out.float().sum().backward())
    return {"forward": f, "step": f + b, "memory": memory}


def checkpointed(m: dict[str, float]) -> float:
    """M_ckpt = M - sum(blocks) + sum(block inputs) + max(block): each block keeps its input, one recomputes."""
    return m["total"] - m["blocks"] + m["block_inputs"] + m["largest_block"]


def memory_at(laws: dict[str, list[float]], x: float) -> dict:
    """Activation bytes at length x, without and with checkpointing, from linear laws of saved_activations'
    parts; the checkpointed law is the same combination of the parts' coefficients."""
    return {"activation_bytes": law(laws["total"], x),
            "activation_bytes_checkpointed": checkpointed({k: law(c, x) for k, c in laws.items()}),
            "memory_law_coefficients": {"total": laws["total"], "checkpointed": [
                checkpointed({k: c[j] for k, c in laws.items()}) for j in range(len(laws["total"]))]}}


def fit_law(xs: list[float], ys: list[float], degree: int) -> list[float]:
    """Coefficients [a, b, (c)] of y = a + b x (+ c x^2) through the points (exact when len(xs) = degree + 1).
    A term that adds less than 1e-9 of the largest y anywhere in the range of xs is rounding left by the solver
    (the intercept of a law that is exactly proportional), and is 0: the committed plan stays the same across
    BLAS libraries."""
    vandermonde = np.array([[float(x) ** k for k in range(degree + 1)] for x in xs])
    coefficients = np.linalg.lstsq(vandermonde, np.array(ys, dtype=float), rcond=None)[0].tolist()
    scale, reach = max(abs(float(y)) for y in ys), max(abs(float(x)) for x in xs)
    return [0.0 if abs(c) * reach ** k < 1e-9 * scale else c for k, c in enumerate(coefficients)]


def law(coefficients: list[float], x: float) -> float:
    """y = sum_k coefficients[k] x^k."""
    return sum(c * x ** k for k, c in enumerate(coefficients))


def gpu_hours(total_flops: float) -> dict[str, float]:
    """Hours on one GPU of each kind at MFU of its bf16 peak."""
    return {gpu: total_flops / (MFU * peak) / 3600 for gpu, peak in PEAK_FLOPS.items()}


# ----------------------------------------------------------------------------------------------------
# The stages

def clap_costs(recipe: ClapRecipe) -> dict:
    """CLAP's two towers per (audio window, prompt) pair, and the text tower alone (what the DiT runs).
    Counted on two pairs, halved: the fusion's batch norm needs two examples in training mode."""
    config, pairs = recipe.model, 2
    with torch.device("meta"):
        model = ClapModel(config.to_transformers())
        words = torch.zeros(pairs, config.max_tokens, config.text_width)  # (2, S, H): embedded tokens
        mel = torch.zeros(pairs, 4, config.window_frames, config.mel_bins)  # (2, 4 views, frames, M): fused
        longer = torch.ones(pairs, 1, dtype=torch.bool)  # crops are longer than the window: fusion runs

    def text():  # ClapTextModel.forward from the token embeddings, unmasked (meta tensors hold no ids or masks)
        tower = model.text_model
        return tower.pooler(tower.encoder(tower.embeddings(inputs_embeds=words), attention_mask=None)[0])

    def step():  # ClapModel.forward, tower by tower
        audio_embeds = model.audio_projection(model.audio_model(input_features=mel, is_longer=longer).pooler_output)
        text_embeds = model.text_projection(text())  # (2, P) each
        return F.normalize(audio_embeds, dim=-1) @ F.normalize(text_embeds, dim=-1).T  # the loss's logits

    blocks = list(model.text_model.encoder.layer) + [b for s in model.audio_model.audio_encoder.layers for b in s.blocks]
    with fx_config.patch(meta_nonzero_assume_all_nonzero=True):  # is_longer is all True: exact on meta
        counts = measure(step, list(model.parameters()), blocks)
    example, memory = counts["step"] / pairs, {k: v / pairs for k, v in counts["memory"].items()}
    return {"parameters": count_parameters(model), "steps": recipe.steps, "batch": recipe.batch_size,
            "window": f"{config.window_seconds:g} s audio, {config.max_tokens} tokens",
            "flops_law": "fixed input: counted once", "flops_per_example": example,
            "text_forward_flops": count_flops(text)[0] / pairs, "flops_per_step": example * recipe.batch_size,
            "total_flops": example * recipe.batch_size * recipe.steps, "flops_per_generated_second": None,
            "activation_bytes": memory["total"], "activation_bytes_checkpointed": checkpointed(memory),
            "memory_law": "fixed input: measured once"}


def autoencoder_costs(recipe: AutoencoderRecipe, generated_seconds: float) -> dict:
    """The VAE on the meta device; its discriminator and losses on fake CPU tensors (shapes only, but on "cpu",
    where their STFTs' autocast switch works). Both at two crop lengths; the law is linear in the samples."""
    lengths, model = (2 * 2048, 4 * 2048), recipe.model  # samples of the reduced crops
    with torch.device("meta"):
        autoencoder = Autoencoder(model)
    stage = AutoencoderStage(autoencoder, recipe.losses)  # discriminator and losses: real modules, on CPU
    blocks = list(autoencoder.encoder.blocks) + list(autoencoder.decoder.blocks)
    counts, memories = {"generator": [], "adversarial": [], "discriminator": [], "decode": []}, []
    for samples in lengths:
        audio = torch.zeros(1, model.audio_channels, samples, device="meta")  # (1, A, T)

        def vae():
            latents, _, _, kl = vae_bottleneck(autoencoder.encoder(audio))  # (1, D, L)
            return autoencoder.decoder(latents) + kl  # (1, A, T)

        vae_counts = measure(vae, list(autoencoder.parameters()), blocks)
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            weights = [mode.from_tensor(t) for m in (stage.discriminator, stage.reconstruction_loss)
                       for t in (*m.parameters(), *m.buffers())]  # the fake twins the mode computes with
            real = torch.zeros(1, model.audio_channels, samples)  # (1, A, T)
            fake = torch.zeros_like(real, requires_grad=True)  # the decoder's output
            losses = measure(lambda: stage.reconstruction_loss(fake, real)[0], weights)

            def adversary():  # the generator's adversarial and feature-matching terms
                _, fake_logits, real_features, fake_features = stage.discriminate(real, fake)
                return generator_adversarial_loss(fake_logits) + feature_matching_loss(real_features, fake_features)

            adversarial = measure(adversary, weights)
            discriminator = measure(lambda: discriminator_hinge_loss(*stage.discriminate(real, fake.detach())[:2]))
        counts["generator"].append(vae_counts["step"] + losses["step"])
        counts["adversarial"].append(counts["generator"][-1] + adversarial["step"])
        counts["discriminator"].append(vae_counts["forward"] + discriminator["step"])  # VAE without graph, then D
        counts["decode"].append(count_flops(lambda: autoencoder.decoder(torch.zeros(
            1, model.latent_dim, samples // model.downsampling, device="meta")))[0])
        memories.append(vae_counts["memory"] | {"total": vae_counts["memory"]["total"] + losses["memory"]["total"]
                                                + adversarial["memory"]["total"]})

    laws = {k: fit_law(lengths, v, 1) for k, v in counts.items()}
    crop, start = recipe.crop_samples, recipe.losses.discriminator_start
    example = {k: law(c, crop) for k, c in laws.items()}
    total = recipe.batch_size * (min(start, recipe.steps) * example["generator"] + max(recipe.steps - start, 0)
                                 * (example["adversarial"] + example["discriminator"]) / 2)
    memory = memory_at({k: fit_law(lengths, [m[k] for m in memories], 1) for k in memories[0]}, crop)
    return {"parameters": count_parameters(autoencoder), "discriminator_parameters":
            count_parameters(stage.discriminator), "steps": recipe.steps, "batch": recipe.batch_size,
            "window": f"{crop} samples ({crop / SAMPLE_RATE:.2f} s)",
            "flops_law": f"F(T) = a + b T per example, fit at T = {list(lengths)} samples",
            "flops_law_coefficients": laws, "flops_per_example": (example["adversarial"] + example["discriminator"]) / 2,
            "flops_per_step": total / recipe.steps, "total_flops": total,
            "flops_per_generated_second": law(laws["decode"], generated_seconds * SAMPLE_RATE) / generated_seconds,
            **memory, "memory_law": f"M(T) = a + b T, fit at T = {list(lengths)} samples"}


def dit_costs(recipe: DiffusionRecipe, windows: dict[str, int], latent_rate: float, text_tokens: int,
              text_flops: float, sampling: SamplingConfig) -> dict[str, dict]:
    """The DiT's two stages: FLOPs on the meta device at depth 1 and 2 and three lengths, memory on CPU tensors
    at depth 1 and two lengths (scaled_dot_product_attention saves O(N) there, like flash attention)."""
    config, lengths = recipe.model, (16, 32, 64)  # latent frames of the reduced windows

    def inputs(frames: int, device: str):
        return (torch.zeros(1, config.latent_channels, frames, device=device),  # (1, D, L)
                torch.full((1,), 0.5, device=device),  # t (1,)
                torch.zeros(1, text_tokens + 2, config.cond_dim, device=device),  # context (1, S + 2, E)
                torch.zeros(1, 2 * config.cond_dim, device=device))  # global_cond (1, 2 E)

    flops, parameters = {"forward": {}, "step": {}}, {}
    for depth in (1, 2):
        with torch.device("meta"):
            dit = DiT(replace(config, depth=depth))
        parameters[depth] = count_parameters(dit)
        for frames in lengths:
            counts = measure(lambda: dit(*inputs(frames, "meta")))
            flops["forward"][depth, frames], flops["step"][depth, frames] = counts["forward"], counts["step"]

    def at_depth(values: dict, frames: int) -> int:  # F(depth) = F(1) + (depth - 1) (F(2) - F(1))
        return values[1, frames] + (config.depth - 1) * (values[2, frames] - values[1, frames])

    laws = {k: fit_law(lengths, [at_depth(v, n) for n in lengths], 2) for k, v in flops.items()}
    torch.manual_seed(0)
    dit = DiT(replace(config, depth=1)).train()  # the real block, on CPU
    memory_lengths, measured = lengths[:2], []
    for frames in memory_lengths:
        m, _ = saved_activations(lambda: dit(*inputs(frames, "cpu")), list(dit.parameters()), list(dit.blocks))
        measured.append({"total": m["total"] + (config.depth - 1) * m["blocks"],  # every block saves the same
                         "blocks": config.depth * m["blocks"], "largest_block": m["largest_block"],
                         "block_inputs": config.depth * m["block_inputs"]})
    memory_laws = {k: fit_law(memory_lengths, [m[k] for m in measured], 1) for k in measured[0]}
    calls = sampling.steps * (2 if sampling.cfg_scale != 1 else 1)  # CFG runs both branches at every step
    out = {}
    for stage, frames in windows.items():
        example = law(laws["step"], frames) + text_flops  # the frozen text encoder runs in every step
        steps = recipe.steps[stage.removeprefix("dit_")]
        out[stage] = {
            "parameters": parameters[1] + (config.depth - 1) * (parameters[2] - parameters[1]),
            "steps": steps, "batch": recipe.batch_size, "window": f"{frames} latents ({frames / latent_rate:.1f} s)",
            "flops_law": f"F(L) = a + b L + c L^2 per example, fit at L = {list(lengths)} latents; "
                         f"F(depth) = F(1) + (depth - 1) (F(2) - F(1))",
            "flops_law_coefficients": laws, "flops_per_example": example,
            "flops_per_step": example * recipe.batch_size, "total_flops": example * recipe.batch_size * steps,
            "flops_per_generated_second": calls * law(laws["forward"], frames) / (frames / latent_rate),
            **memory_at(memory_laws, frames),
            "memory_law": f"M(L) = a + b L, fit at L = {list(memory_lengths)} latents at depth 1, blocks times depth"}
    return out


# ----------------------------------------------------------------------------------------------------
# The plan of a profile, its table, the command

def plan(profile_name: str) -> dict:
    """Every stage's costs for a profile, with GPU-hours and (paper profile) the papers' numbers beside."""
    profile = get_profile(profile_name)
    ae_recipe, clap_recipe = AutoencoderRecipe.for_profile(profile.name), ClapRecipe.for_profile(profile.name)
    dit_recipe, latent_rate = DiffusionRecipe.for_profile(profile.name), ae_recipe.model.latent_rate
    windows = {f"dit_{stage}": window_frames(profile, stage, latent_rate) for stage in ("pretrain", "finetune")}
    stages = {"autoencoder": autoencoder_costs(ae_recipe, profile.finetune_seconds), "clap": clap_costs(clap_recipe)}
    stages |= dit_costs(dit_recipe, windows, latent_rate, clap_recipe.model.max_tokens,
                        stages["clap"]["text_forward_flops"], SamplingConfig())
    for name, stage in stages.items():
        stage["gpu_hours"] = gpu_hours(stage["total_flops"])
        reported = PAPER_HOURS[name] if profile.name == "paper" else {}
        stage["paper_a100_hours"] = reported
        stage["ratio_to_paper"] = (stage["gpu_hours"]["A100"] / reported["stable_audio_2"]) if reported else None
        gap = stage["ratio_to_paper"] is not None and not 0.5 <= stage["ratio_to_paper"] <= 2.0
        stage["gap_note"] = (f"{GAP_REASONS[name]} Paper 1's hours at {MFU:.0%} MFU would pay for "
                             f"{1 / stage['ratio_to_paper']:,.0f}x samod's steps x batch." if gap else None)
    return {"profile": profile.name, "stages": stages}


def rounded(value, digits: int = 6):
    """Floats to `digits` significant digits, recursively (the JSON is stable across BLAS libraries)."""
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return float(f"{value:.{digits}g}") if isinstance(value, float) else value


def markdown(plans: dict[str, dict]) -> str:
    """The tables of figures/compute_plan.md: one per profile, then the gaps to the papers."""
    lines = [f"# The cost of samod's profiles", "",
             f"FLOPs counted with torch's FlopCounterMode on the real modules (matmuls, convolutions, attention), "
             f"at reduced sizes scaled by the laws in compute_plan.json; GPU-hours at {MFU:.0%} MFU of the dense "
             f"bf16 peaks ({', '.join(f'{g} {p / 1e12:g} TFLOP/s' for g, p in PEAK_FLOPS.items())}). Activation "
             f"memory: fp32 bytes saved for backward per example, without / with gradient checkpointing.", ""]
    for name, p in plans.items():
        lines += [f"## {name}", "", "| stage | parameters | steps x batch | window | TFLOP / step | "
                  "GFLOP / generated s | activations GB / example (checkpointed) | A100-h | H100-h | "
                  "paper 1 A100-h | SAO A100-h | samod / paper 1 |", "|" + " --- |" * 12]
        for stage, s in p["stages"].items():
            paper = s["paper_a100_hours"]
            per_second = "" if s["flops_per_generated_second"] is None else f"{s['flops_per_generated_second'] / 1e9:,.0f}"
            lines.append(
                f"| {stage} | {s['parameters'] / 1e6:,.1f}M | {s['steps']:,} x {s['batch']} | {s['window']} | "
                f"{s['flops_per_step'] / 1e12:,.3g} | {per_second} | {s['activation_bytes'] / 1e9:,.3g} "
                f"({s['activation_bytes_checkpointed'] / 1e9:,.3g}) | {s['gpu_hours']['A100']:,.3g} | "
                f"{s['gpu_hours']['H100 SXM']:,.3g} | {paper.get('stable_audio_2') or ''} | "
                f"{paper.get('stable_audio_open') or ''} | "
                f"{'' if s['ratio_to_paper'] is None else format(s['ratio_to_paper'], '.2g')} |")
        notes = [f"- {stage}: {s['gap_note']}" for stage, s in p["stages"].items() if s["gap_note"]]
        lines += [""] + (["Where samod and paper 1 differ by more than 2x:", ""] + notes + [""] if notes else [])
    return "\n".join(lines + [PAPER_SOURCES, ""])


def write_plan(profiles: list[str], folder: Path) -> dict:
    """Plan each profile, write compute_plan.json and .md under `folder`; returns the JSON's content."""
    plans, seconds = {}, {}
    for name in profiles:
        start = time.perf_counter()
        plans[name] = rounded(plan(name))
        seconds[name] = round(time.perf_counter() - start, 1)
    content = {"mfu": MFU, "peak_flops": PEAK_FLOPS, "papers": PAPER_HOURS, "sources": PAPER_SOURCES,
               "plans": plans, "timings_s": seconds}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compute_plan.json").write_text(json.dumps(content, indent=1) + "\n")
    (folder / "compute_plan.md").write_text(markdown(plans))
    return content


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="What a profile's training stages cost (FLOPs, memory, GPU-hours)")
    parser.add_argument("--profile", choices=PROFILES, action="append",
                        help="profile to plan (repeatable; default all three)")
    parser.add_argument("--out", type=Path, help="folder for compute_plan.json/.md (default: figures/, for all three)")
    args = parser.parse_args(argv)
    profiles = list(dict.fromkeys(args.profile or PROFILES))
    out = args.out or (REPO_ROOT / "figures" if set(profiles) == set(PROFILES) else None)
    start = time.perf_counter()
    if out is None:  # a subset: printed only, so that the committed table keeps every profile
        print(markdown({name: rounded(plan(name)) for name in profiles}))
    else:
        print(markdown(write_plan(profiles, out)["plans"]) + f"\nwritten to {out}/compute_plan.json and .md")
    print(f"planned in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
