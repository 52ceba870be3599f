"""Benchmark: training throughput of the tiny autoencoder, before and after, side by side in one run.

Variants of one training step of the tiny recipe (generator step with the adversary on, then a
discriminator step), on the same weights and batch, alternating so that machine noise hits all alike:

- auraloss: the reconstruction loss as auraloss composes it (SumAndDifferenceSTFTLoss and two
  MultiResolutionSTFTLoss, each filtering and transforming its own signals at every FFT size);
- written out: samod's ReconstructionLoss (the same numbers, one filter pass and two STFTs per size);
- written out + bf16: the same under torch.autocast("cpu", torch.bfloat16) (the STFT losses stay float32).

Throughput is seconds of audio trained per CPU-second of this process (time.process_time, so that
other processes on the machine do not count); prints each variant's median and its ratio to auraloss.

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_autoencoder_training.py [--repeats 5]
"""
import argparse
import statistics
import time

import auraloss
import torch

from samod.autoencoder import Autoencoder
from samod.autoencoder_training import AutoencoderRecipe, AutoencoderStage, ReconstructionLoss, data_dependent_init


class AuralossReconstruction(torch.nn.Module):
    """The peer: 1.0 * MRSTFT_sd + 0.5 * MRSTFT_L + 0.5 * MRSTFT_R from auraloss's own modules."""

    def __init__(self, config):
        super().__init__()
        ffts = list(config.stft_fft_sizes)
        stft = dict(fft_sizes=ffts, hop_sizes=[n // 4 for n in ffts], win_lengths=ffts,
                    perceptual_weighting=config.perceptual_weighting, sample_rate=config.sample_rate)
        self.sd = auraloss.freq.SumAndDifferenceSTFTLoss(**stft)
        self.channel = auraloss.freq.MultiResolutionSTFTLoss(**stft)
        self.weight = config.mrstft_weight

    def forward(self, fake, real):
        with torch.autocast(fake.device.type, enabled=False):
            fake, real = fake.float(), real.float()
            terms = {"sum_difference": self.sd(fake, real), "left": self.channel(fake[:, :1], real[:, :1]),
                     "right": self.channel(fake[:, 1:], real[:, 1:])}
        return self.weight * (terms["sum_difference"] + 0.5 * terms["left"] + 0.5 * terms["right"]), terms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=None, help="default: the tiny recipe's")
    parser.add_argument("--samples", type=int, default=None, help="crop length; default: the tiny recipe's")
    a = parser.parse_args()
    recipe = AutoencoderRecipe.tiny()
    batch, samples = a.batch or recipe.batch_size, a.samples or recipe.crop_samples
    torch.manual_seed(0)
    model = Autoencoder(recipe.model)
    audio = torch.randn(batch, 2, samples) * 0.1
    data_dependent_init(model, audio)
    stage = AutoencoderStage(model, recipe.losses, recipe.generator, recipe.discriminator, recipe.gain_db,
                             recipe.train_biases)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(stage.discriminator.parameters()), lr=1e-5)
    losses = {"auraloss": AuralossReconstruction(recipe.losses), "written out": ReconstructionLoss(recipe.losses)}
    variants = {"auraloss": ("auraloss", False), "written out": ("written out", False),
                "written out + bf16": ("written out", True)}
    adversarial_step = recipe.losses.discriminator_start  # the adversary on: the step the recipe ends with

    def step_pair(loss_name: str, bf16: bool) -> float:
        stage.reconstruction_loss = losses[loss_name]
        started = time.process_time()
        for step in (adversarial_step, adversarial_step + 1):  # a generator step, then a discriminator step
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                _, loss, _ = stage.training_step(audio, step)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return time.process_time() - started

    for name, (loss_name, bf16) in variants.items():  # warm-up: allocators and kernels
        step_pair(loss_name, bf16)
    times = {name: [] for name in variants}
    for _ in range(a.repeats):
        for name, (loss_name, bf16) in variants.items():
            times[name].append(step_pair(loss_name, bf16))
    audio_seconds = 2 * batch * samples / recipe.model.sample_rate  # two steps of one batch each
    base = statistics.median(times["auraloss"])
    print(f"tiny autoencoder, batch {batch} x {samples} samples, {torch.get_num_threads()} thread(s), "
          f"{a.repeats} repeats (generator + discriminator step)")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:20s} {median:6.2f} CPU-s per step pair, {audio_seconds / median:5.3f} audio-s per CPU-s, "
              f"ratio to auraloss {base / median:4.2f}")


if __name__ == "__main__":
    main()
