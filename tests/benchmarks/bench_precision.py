"""Benchmark: a training step in bfloat16 autocast against float32 on the CPU, the autoencoder and the DiT side by side.

TrainConfig.precision="bf16" runs a stage's step under torch.autocast (matmuls and convolutions in bfloat16). On a
GPU that is the default; on a CPU it is a choice, and whether it pays depends on the CPU (bfloat16 instructions:
AVX512-BF16, AMX). This script times one full training step (forward, losses, backward) of the tiny profile's
autoencoder (generator step with the adversary) and of its DiT, at the tiny recipes' batch and crop sizes, in both
precisions, alternating in one run so that machine noise hits both alike; median of --repeats.
Prints seconds per step and the ratio bf16 / fp32 (< 1: bf16 is faster).

    .venv/bin/python tests/benchmarks/bench_precision.py [--repeats 5] [--threads 1]
"""
import argparse
import statistics
import time
from dataclasses import replace

import torch

from samod.autoencoder import Autoencoder, AutoencoderConfig
from samod.autoencoder_training import AutoencoderLossConfig, AutoencoderStage
from samod.diffusion import DiffusionModel
from samod.diffusion_training import DiffusionStage
from samod.dit import DiTConfig
from samod.train import OptimizerConfig


class StandInText(torch.nn.Module):
    """A stand-in text encoder (fixed random features, `tokens` x `width`): the DiT's step is what is timed."""

    def __init__(self, tokens: int, width: int):
        super().__init__()
        self.tokens, self.width = tokens, width

    def features(self, prompts):
        b = len(prompts)
        return torch.randn(b, self.tokens, self.width), torch.ones(b, self.tokens, dtype=torch.bool)


def step_seconds(stage, batch, step: int, bf16: bool) -> float:
    """Wall time of one training step: the stage's forward and losses under autocast (or not), then backward."""
    for module in stage.modules().values():
        module.zero_grad(set_to_none=True)
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        _, loss, _ = stage.training_step(batch, step)
    loss.backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, default=AutoencoderConfig.tiny().channels, help="autoencoder width")
    parser.add_argument("--samples", type=int, default=16384, help="autoencoder crop (tiny recipe: 16384)")
    parser.add_argument("--ae-batch", type=int, default=4, help="autoencoder batch (tiny recipe: 4)")
    parser.add_argument("--width", type=int, default=DiTConfig.tiny().width, help="DiT width")
    parser.add_argument("--depth", type=int, default=DiTConfig.tiny().depth)
    parser.add_argument("--frames", type=int, default=646, help="DiT window in latent frames (tiny: 30 s = 646)")
    parser.add_argument("--dit-batch", type=int, default=4, help="DiT batch (tiny recipe: 4)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = parser.parse_args()
    torch.set_num_threads(a.threads)

    torch.manual_seed(0)
    autoencoder = AutoencoderStage(Autoencoder(AutoencoderConfig(channels=a.channels)),
                                   AutoencoderLossConfig.tiny())  # discriminator_start 0: the adversary's step too
    dit_config = replace(DiTConfig.tiny(), width=a.width, depth=a.depth)
    dit = DiffusionStage(DiffusionModel(dit_config), StandInText(16, dit_config.cond_dim), OptimizerConfig())
    g = torch.Generator().manual_seed(1)
    batches = {
        "autoencoder": (autoencoder, {"audio": 0.3 * torch.randn(a.ae_batch, 2, a.samples, generator=g)}, 0),
        "DiT": (dit, {"latents": torch.randn(a.dit_batch, dit_config.latent_channels, a.frames, generator=g),
                      "prompt": ["a prompt"] * a.dit_batch, "seconds_start": torch.zeros(a.dit_batch),
                      "seconds_total": torch.full((a.dit_batch,), 30.0)}, 0),
    }
    print(f"CPU, {a.threads} thread(s), torch {torch.__version__}; bf16 = torch.autocast('cpu', torch.bfloat16)")
    for name, (stage, batch, step) in batches.items():
        times = {False: [], True: []}
        for bf16 in (False, True):  # warm-up: the first call of each pays for allocations
            step_seconds(stage, batch, step, bf16)
        for _ in range(a.repeats):
            for bf16 in (False, True):
                times[bf16].append(step_seconds(stage, batch, step, bf16))
        fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
        print(f"{name:12s} training step: fp32 {fp32:.3f} s, bf16 {bf16:.3f} s, ratio bf16 / fp32 {bf16 / fp32:.2f}")


if __name__ == "__main__":
    main()
