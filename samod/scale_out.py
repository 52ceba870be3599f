"""Scale-out: what one GPU holds when the DiT trains with data parallelism (DDP), and whether FSDP is needed.

samod trains on many GPUs the way stable-audio-tools does: torch DistributedDataParallel under torchrun
(samod/train.py's Trainer wraps the stage's modules when torch.distributed is initialised). DDP keeps a whole copy
of everything on every GPU; FSDP (ZeRO-3) shards the weights, gradients and optimizer states over the GPUs and is
only worth its extra communication when that copy does not fit. This module counts the copy for a DiTConfig:

    per GPU = P (4 weights + 4 gradients + 4 DDP gradient buckets + 8 AdamW moments + 4 EMA + 2 bf16 weight casts)
              + 4 F (the frozen text encoder, float32)
              + activations

with P the trained parameters and F the frozen ones (the text encoder: the profile's CLAP, both towers), in bytes
per parameter (weights, gradients, Adam and EMA in float32, as the Trainer keeps them; autocast caches a bf16
copy of each weight for the forward; DDP's buckets are a second gradient copy unless gradient_as_bucket_view).
Activations are what backward keeps from the forward, under bf16 autocast with flash attention (no N x N matrix
kept). With gradient checkpointing (DiTConfig.gradient_checkpointing) a block keeps only its float32 input, and one
block at a time is recomputed in full:

    checkpointing:     depth * B N W * 4  +  B N a W         a = ACTIVATION_BYTES / W: one block's saved tensors
    no checkpointing:  depth * B N a W

B the batch per GPU, N = frames + 1 tokens, W the width. `ACTIVATION_BYTES` itemises a; tests/test_scale_out.py
measures the tensors a real block saves (torch.autograd.graph.saved_tensors_hooks, on the CPU under bf16 autocast)
and checks the count against them. Not counted: the CUDA context and the allocator's fragmentation (a few GB), the
VAE (the DiT trains on a latent cache).

    python -m samod.scale_out --profile paper

No notebook teaches it yet; the README's paragraph on GPUs points to it (the DiT it counts: notebooks/03_dit.ipynb).
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import torch

from transformers import ClapModel

from samod.checkpoints import count_parameters
from samod.clap import ClapModelConfig
from samod.diffusion import DiffusionModel
from samod.diffusion_training import window_frames
from samod.dit import DiTConfig
from samod.profiles import get_profile, profile_preset

GIB = 2 ** 30
GPU_BYTES = 80 * 10 ** 9  # an 80 GB A100 / H100 (79.6 GiB usable before the CUDA context)
LATENT_RATE = 44100 / 2048  # latent frames per second of audio

# bytes per model parameter held on each GPU under DDP (module docstring)
STATE_BYTES = {"weights (fp32)": 4, "gradients (fp32)": 4, "DDP gradient buckets": 4, "AdamW moments (fp32)": 8,
               "EMA (fp32)": 4, "bf16 weight casts (autocast)": 2}

# bytes per token and per unit of width that one DiT block saves for backward under bf16 autocast with flash
# attention (hidden = mlp_mult W = 4 W): the tensors each operation keeps, in the order of DiTBlock.forward
ACTIVATION_BYTES = {
    "self-attention: LayerNorm input (fp32)": 4,
    "self-attention: qkv input (bf16)": 2,
    "self-attention: q, k (rotated), v, output (bf16)": 8,
    "self-attention: out input (bf16)": 2,
    "cross-attention: LayerNorm input (fp32)": 4,
    "cross-attention: q input, q, output, out input (bf16)": 8,
    "MLP: LayerNorm input (fp32)": 4,
    "MLP: proj_in input (bf16)": 2,
    "MLP: value and gate, silu(gate) (bf16, 3 x 4 W)": 24,
    "MLP: proj_out input (bf16, 4 W)": 8,
}


def block_activation_bytes(config: DiTConfig, tokens: int, batch: int = 1) -> int:
    """Bytes one DiT block keeps for backward: batch * tokens * a * width (ACTIVATION_BYTES, at mlp_mult 4)."""
    mlp_bytes = sum(v for k, v in ACTIVATION_BYTES.items() if k.startswith("MLP: ") and "(bf16, " in k)
    per_width = sum(ACTIVATION_BYTES.values()) + mlp_bytes * (config.mlp_mult - 4) / 4  # the MLP scales with mlp_mult
    return int(batch * tokens * per_width * config.width)


@dataclass
class DDPMemory:
    """Bytes held on one GPU training the DiT under DDP, by part."""
    parts: dict[str, float]  # name -> bytes
    trained_parameters: int
    frozen_parameters: int

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def fits(self, gpu_bytes: float = GPU_BYTES) -> bool:
        return self.total <= gpu_bytes


def ddp_memory(config: DiTConfig, batch: int, frames: int, frozen_parameters: int = 0,
               checkpointing: bool = True) -> DDPMemory:
    """What one GPU holds training `config` under DDP with bf16 autocast (module docstring), batch B per GPU."""
    with torch.device("meta"):  # the real module, no memory: its parameter count
        trained = count_parameters(DiffusionModel(config))
    tokens = frames + 1  # the global token leads the sequence (DiT.forward)
    parts = {name: float(per * trained) for name, per in STATE_BYTES.items()}
    parts["frozen text encoder (fp32)"] = 4.0 * frozen_parameters
    block = block_activation_bytes(config, tokens, batch)
    if checkpointing:
        parts["activations: block inputs (fp32)"] = float(config.depth * batch * tokens * config.width * 4)
        parts["activations: one block recomputed"] = float(block)
    else:
        parts["activations: every block"] = float(config.depth * block)
    return DDPMemory(parts, trained, frozen_parameters)


def largest_batch(config: DiTConfig, frames: int, frozen_parameters: int = 0, checkpointing: bool = True,
                  gpu_bytes: float = GPU_BYTES) -> int:
    """The largest batch per GPU whose DDP memory fits in gpu_bytes (0: not even one example)."""
    fixed = ddp_memory(config, 0, frames, frozen_parameters, checkpointing).total
    per_example = ddp_memory(config, 1, frames, frozen_parameters, checkpointing).total - fixed
    return max(0, math.floor((gpu_bytes - fixed) / per_example))


def report(profile: str = "paper", batches: tuple[int, ...] = (1, 4, 8, 16, 32)) -> str:
    """The memory table of the profile's DiT at both training windows, and whether DDP fits or FSDP is needed."""
    config = profile_preset(DiTConfig, profile)
    with torch.device("meta"):  # the text encoder the DiT trains with (the profile's CLAP, both towers on the GPU)
        frozen = count_parameters(ClapModel(profile_preset(ClapModelConfig, profile).to_transformers()))
    lines = [f"DiT ({profile}) under DDP, bf16 autocast, one 80 GB GPU "
             f"(GB = 1e9 bytes; an estimate, see samod/scale_out.py)"]
    verdicts = []
    for stage in ("pretrain", "finetune"):
        frames = window_frames(get_profile(profile), stage, LATENT_RATE)
        memory = ddp_memory(config, 1, frames, frozen)
        lines.append(f"\n{stage}: {frames} latent frames; trained parameters {memory.trained_parameters:,}, "
                     f"frozen text encoder {frozen:,}")
        states = sum(v for k, v in memory.parts.items() if not k.startswith("activations"))
        lines.append(f"  weights, gradients, AdamW, EMA, casts, text encoder: {states / 1e9:.1f} GB")
        for b in batches:
            with_ckpt = ddp_memory(config, b, frames, frozen, checkpointing=True).total
            without = ddp_memory(config, b, frames, frozen, checkpointing=False).total
            lines.append(f"  batch {b:3d} per GPU: {with_ckpt / 1e9:7.1f} GB with gradient checkpointing, "
                         f"{without / 1e9:7.1f} GB without")
        most = largest_batch(config, frames, frozen)
        lines.append(f"  largest batch per GPU that fits 80 GB: {most} with checkpointing, "
                     f"{largest_batch(config, frames, frozen, checkpointing=False)} without")
        verdicts.append(most >= 1)
    if all(verdicts):
        lines.append("\nDDP fits: with gradient checkpointing the paper DiT trains on 80 GB GPUs under DDP (its "
                     "states take a third of the memory), so samod needs no FSDP; a larger global batch comes from "
                     "more GPUs or gradient accumulation, not from sharding.")
    else:
        lines.append("\nDDP does not fit one example: shard the states with FSDP.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Memory per GPU of the DiT under DDP, and whether FSDP is needed.")
    parser.add_argument("--profile", default="paper", choices=["tiny", "small", "paper"])
    args = parser.parse_args(argv)
    print(report(args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
