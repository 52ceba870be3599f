"""Latent diffusion training: the v-objective, the cosine schedule, timing conditioning, CFG dropout.

Paper 1 (Stable Audio 2) §2.3-§3.2 and Stable Audio Open §2 train the DiT (samod/dit.py) on VAE latents
z0 with the v-objective of Salimans & Ho (2022), as stable-audio-tools' DiffusionCondTrainingWrapper:

    t ~ U(0, 1)                                   noise level of each item
    alpha_t = cos(pi t / 2),  sigma_t = sin(pi t / 2)      the cosine schedule: alpha^2 + sigma^2 = 1
    z_t = alpha_t z0 + sigma_t eps,   eps ~ N(0, I)        the noised latents
    v_t = alpha_t eps - sigma_t z0                         the target ("velocity")
    loss = mean (v_theta(z_t, t, c) - v_t)^2               plain MSE over every frame (no mask)

Why v: z0 and eps are recovered from (z_t, v) by a rotation, z0 = alpha z_t - sigma v and
eps = sigma z_t + alpha v (substitute the two definitions and use alpha^2 + sigma^2 = 1); v has unit
variance at every t when z0 does, so one loss weight fits all noise levels. notebooks/04 checks it.

Conditioning c: the text tokens (CLAP's next-to-last layer for Stable Audio 2, T5 for SAO) and the
timing of the window, seconds_start and seconds_total (paper 1 §2.3): windows shorter than the song
are random crops; windows longer than the song are padded with silence, and since the loss is not
masked the model learns to write silence after seconds_total. Classifier-free guidance needs an
unconditional model too: with probability p = 0.1 an item's whole cross-attention context (text and
timing tokens) is replaced by zeros; the global token (timing and t) is kept, as in the reference.

Training runs in two stages (paper 1 §3.2, STAGES): pre-training on short windows, then fine-tuning the
same weights on longer ones (tiny: 30 s then 60 s; paper: 190 s then 285 s). Both checkpoints are kept.
This file holds the schedule, the objective and the conditioned model; the training stage, the recipes
and `train_diffusion` are in samod/diffusion_training.py, loading a trained DiT in samod/weights.py.

Shapes (glossary): B batch, D latent channels, L latent frames, S text tokens, M = S + 2 context tokens
(text and timing), E conditioning width. Noise level: sigma here is sigma_t = sin(pi t / 2); the sampler's
sigma is the variance-exploding sigma_VE = sigma_t / alpha_t = tan(pi t / 2) (samod/sampler.py).
Taught in notebooks/04_diffusion_training.ipynb.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from samod.dit import DiT, DiTConfig, TimingConditioner, dit_inputs

STAGES = ("pretrain", "finetune")
CONFIG_NAME = "diffusion.json"  # next to a DiT's checkpoint: what it was trained for


# ----------------------------------------------------------------------------------------------------
# The schedule and the objective

def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The cosine schedule: alpha_t = cos(pi t / 2), sigma_t = sin(pi t / 2) (t in [0, 1])."""
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


def add_noise(z0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_t, v_t) for clean latents z0 (B, D, L), noise levels t (B,) and noise eps like z0."""
    alpha, sigma = alpha_sigma(t)
    alpha, sigma = alpha[:, None, None], sigma[:, None, None]  # (B, 1, 1)
    z_t = alpha * z0 + sigma * eps  # (B, D, L)
    v = alpha * eps - sigma * z0  # (B, D, L): the v-objective's target
    return z_t, v


def v_to_z0_eps(z_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert the rotation: z0 = alpha z_t - sigma v, eps = sigma z_t + alpha v."""
    alpha, sigma = alpha_sigma(t)
    alpha, sigma = alpha[:, None, None], sigma[:, None, None]
    return alpha * z_t - sigma * v, sigma * z_t + alpha * v


def cfg_dropout(context: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero the whole context (B, M, E) of each item with probability p (classifier-free guidance)."""
    keep = torch.rand(context.shape[0], generator=generator, device=context.device) >= p  # (B,)
    return context * keep[:, None, None].to(context.dtype)


# ----------------------------------------------------------------------------------------------------
# The conditioned model: timing conditioners + DiT

class DiffusionModel(nn.Module):
    """v_theta(z_t, t, text, seconds_start, seconds_total): the timing conditioners and the DiT.

    The text encoder is not part of it (frozen, shared with other stages); its features come in as
    `text_tokens` (B, S, E). `condition` builds the DiT's two conditioning inputs once per prompt
    batch, so a sampler calls `forward` with them at every step.
    """

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = config
        self.timing = TimingConditioner(config.cond_dim, config.max_seconds)
        self.dit = DiT(config)

    def condition(self, text_tokens: torch.Tensor, seconds_start: torch.Tensor,
                  seconds_total: torch.Tensor) -> dict[str, torch.Tensor]:
        """text (B, S, E), seconds (B,) -> {"context": (B, S + 2, E), "global_cond": (B, 2 E)}."""
        if text_tokens.ndim != 3 or text_tokens.shape[-1] != self.config.cond_dim:
            raise ValueError(f"text tokens must be (batch, tokens, {self.config.cond_dim}) for this DiT "
                             f"(cond_dim {self.config.cond_dim}), got {tuple(text_tokens.shape)}: use the text "
                             f"encoder the model was trained with, or a DiTConfig whose cond_dim is its width")
        start, total = self.timing(seconds_start, seconds_total)  # (B, 1, E) each
        context, global_cond = dit_inputs(text_tokens, start, total)
        return {"context": context, "global_cond": global_cond}

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                global_cond: torch.Tensor) -> torch.Tensor:
        return self.dit(x, t, context, global_cond)  # (B, D, L): predicted v
