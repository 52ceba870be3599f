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

Training runs in two stages (paper 1 §3.2): pre-training on short windows, then fine-tuning the same
weights on longer ones (tiny: 30 s then 60 s; paper: 190 s then 285 s). Both checkpoints are kept.

Shapes (glossary): B batch, D latent channels, L latent frames, S text tokens, M = S + 2 context tokens
(text and timing), E conditioning width. Noise level: sigma here is sigma_t = sin(pi t / 2); the sampler's
sigma is the variance-exploding sigma_VE = sigma_t / alpha_t = tan(pi t / 2) (samod/sampler.py).
Taught in notebooks/04_diffusion_training.ipynb.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from samod.data import read_metadata, split_records
from samod.dit import DiT, DiTConfig, TimingConditioner, dit_inputs
from samod.profiles import Profile, get_profile, profile_preset
from samod.reference import WeightsChoice, load_reference, provenance, weights_for
from samod.train import (CHECKPOINT_NAME, OptimizerConfig, StepBatches, Trainer, TrainConfig, file_sha256,
                         load_weights)

STAGES = ("pretrain", "finetune")
CONFIG_NAME = "diffusion.json"


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


# ----------------------------------------------------------------------------------------------------
# The training stage

class DiffusionStage:
    """One step: sample t and eps, noise the latents, drop the context for CFG, MSE on v (module docstring)."""

    def __init__(self, model: DiffusionModel, text_encoder: nn.Module, optimizer: OptimizerConfig,
                 cfg_dropout: float = 0.1):
        if not 0.0 <= cfg_dropout < 1.0:
            raise ValueError(f"cfg_dropout is a probability in [0, 1), got {cfg_dropout}")
        self.plain_model = model  # the plain module, for `condition` (a method: DDP wraps only the forward)
        self.model = model  # what the Trainer trains (replaced by a DDP wrapper under torchrun)
        self.optimizer, self.cfg_dropout = optimizer, cfg_dropout
        self.text_encoder = text_encoder.eval().requires_grad_(False)  # frozen: not saved, not trained
        self.text_device = None  # where the text encoder is; moved with the first batch

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def optimizers(self) -> dict[str, tuple]:
        return {"model": (self.model.parameters(), self.optimizer)}

    def ema_modules(self) -> list[str]:
        return ["model"]

    def training_step(self, batch: dict, step: int) -> tuple[str, torch.Tensor, dict[str, float]]:
        z0 = batch["latents"]  # (B, D, L): a VAE posterior sample
        device = z0.device
        if self.text_device != device:  # the Trainer moves modules(); the frozen encoder follows once
            self.text_encoder.to(device)
            self.text_device = device
        with torch.no_grad():
            text, _ = self.text_encoder.features(list(batch["prompt"]))  # (B, S, E); mask unused (not masked)
        cond = self.plain_model.condition(text.float(), batch["seconds_start"].float(), batch["seconds_total"].float())
        context = cfg_dropout(cond["context"], self.cfg_dropout)  # (B, S + 2, E)
        t = torch.rand(z0.shape[0], device=device)  # (B,)
        eps = torch.randn_like(z0)  # (B, D, L)
        z_t, v = add_noise(z0, t, eps)
        v_pred = self.model(z_t, t, context, cond["global_cond"])  # (B, D, L)
        loss = F.mse_loss(v_pred.float(), v)
        return "model", loss, {"mse": loss.item()}


# ----------------------------------------------------------------------------------------------------
# Recipes per profile, training and loading

@dataclass
class DiffusionRecipe:
    model: DiTConfig  # the architecture
    optimizer: OptimizerConfig  # AdamW + InverseLR
    steps: dict[str, int] = field(default_factory=dict)  # training steps per stage (pretrain, finetune)
    batch_size: int = 8
    cfg_dropout: float = 0.1  # probability of an all-zero context (classifier-free guidance)
    ema_decay: float = 0.9999  # the released weights are the EMA
    # The DiT models VAE latents divided by this (SAT's pretransform `scale`; 1.0 for SAO, whose latents are
    # near unit variance). None: the standard deviation of the latent cache, measured when training starts,
    # so that the data has unit variance, as the v-objective and the sampler's noise levels assume.
    latent_scale: float | None = None

    @staticmethod
    def tiny() -> "DiffusionRecipe":
        # 2 CPU cores: about 0.55 s per step at 30 s windows, 1.15 s at 60 s (batch 4), 2.5 minutes for both
        # stages; 20x the paper's learning rate and a short warm-up, so that so short a run moves, decaying
        # (halved after 1000 steps, a third after 2000) so that the thousands of steps of the reference
        # weights settle (the autoencoder's EMA showed what a constant rate at batch 4 leaves)
        return DiffusionRecipe(DiTConfig.tiny(), OptimizerConfig(lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-3,
                                                                 inv_gamma=1000, power=1.0, warmup=0.9),
                               steps={"pretrain": 160, "finetune": 60}, batch_size=4, ema_decay=0.99)

    def shortened(self, pretrain: int, finetune: int) -> "DiffusionRecipe":
        """The same recipe run for fewer steps per stage (what a notebook trains live in a minute or two)."""
        return replace(self, steps={"pretrain": pretrain, "finetune": finetune})

    @staticmethod
    def small() -> "DiffusionRecipe":
        return DiffusionRecipe(DiTConfig.small(), OptimizerConfig(lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-3,
                                                                  inv_gamma=1_000_000, power=0.5, warmup=0.99),
                               steps={"pretrain": 20_000, "finetune": 5_000}, batch_size=16, ema_decay=0.999)

    @staticmethod
    def paper() -> "DiffusionRecipe":
        # SAO model_config.json: AdamW lr 5e-5, betas (0.9, 0.999), wd 1e-3, InverseLR inv_gamma 1e6,
        # power 0.5, warmup 0.99; EMA 0.9999
        return DiffusionRecipe(DiTConfig.paper(), OptimizerConfig(lr=5e-5, betas=(0.9, 0.999), weight_decay=1e-3,
                                                                  inv_gamma=1_000_000, power=0.5, warmup=0.99),
                               steps={"pretrain": 500_000, "finetune": 100_000}, batch_size=32, ema_decay=0.9999,
                               latent_scale=1.0)

    @staticmethod
    def for_profile(name: str) -> "DiffusionRecipe":
        return profile_preset(DiffusionRecipe, name)


def window_frames(profile: Profile, stage: str, latent_rate: float) -> int:
    """Latent frames of a stage's training window (tiny: 30 s -> 646, 60 s -> 1292; paper 285 s -> 6144)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    seconds = profile.pretrain_seconds if stage == "pretrain" else profile.finetune_seconds
    return math.ceil(seconds * latent_rate)


def stage_dir(profile: Profile, stage: str, root: Path | None = None) -> Path:
    """<root>/dit_<stage>/, the checkpoints of a stage (root: default <profile>/checkpoints/)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return Path(root or profile.checkpoint_dir) / f"dit_{stage}"


def train_diffusion(stage: str = "pretrain", recipe: DiffusionRecipe | None = None, profile: Profile | None = None,
                    text_encoder: nn.Module | None = None, progress: bool = True, root: Path | None = None,
                    cache: Path | None = None) -> tuple[DiffusionModel, list[dict]]:
    """Train (or resume, or load a finished run of) one stage of the DiT of a profile.

    Needs the latent cache (`python -m data_prep.encode`; `cache`, default <profile>/cache/latents/) and
    a CLAP (`text_encoder`, default samod.clap_training.load_clap()). "finetune" starts from the EMA weights of
    the finished "pretrain" stage. Checkpoints go to <root>/dit_<stage>/ (default root
    <profile>/checkpoints/) with a diffusion.json saying what the model was made for.
    Returns the EMA model in eval mode and the logged history.
    """
    from samod.clap_training import load_clap
    from samod.data import LatentDataset, latent_std
    profile = profile or get_profile()
    recipe = recipe or DiffusionRecipe.for_profile(profile.name)
    text_encoder = text_encoder if text_encoder is not None else load_clap(profile)
    cache = Path(cache or profile.cache_dir / "latents")
    pretrained_config = stage_dir(profile, "pretrain", root) / CONFIG_NAME
    if stage == "finetune" and pretrained_config.exists():  # the scale the pre-trained weights were made for
        scale = json.loads(pretrained_config.read_text()).get("latent_scale", 1.0)
    else:
        scale = recipe.latent_scale or latent_std(cache)  # reads every cached song: only when needed
    dataset = LatentDataset(cache, window_frames=1, seed=profile.seed, scale=scale)  # window set below
    dataset.window_frames = window_frames(profile, stage, dataset.latent_rate)
    if dataset.latent_channels != recipe.model.latent_channels:
        raise ValueError(f"the latent cache has {dataset.latent_channels} channels, the DiT expects "
                         f"{recipe.model.latent_channels}: re-encode with the profile's VAE or fix DiTConfig")
    folder = stage_dir(profile, stage, root)
    folder.mkdir(parents=True, exist_ok=True)
    description = {"stage": stage, "profile": profile.name, "dit": asdict(recipe.model),
                   "window_frames": dataset.window_frames, "latent_rate": dataset.latent_rate,
                   "window_seconds": dataset.window_frames / dataset.latent_rate, "latent_scale": scale,
                   "autoencoder_sha256": dataset.info["autoencoder_sha256"],
                   "text_encoder": type(text_encoder).__name__, "text_width": int(text_encoder.width),
                   "text_tokens": int(text_encoder.max_tokens)}
    (folder / CONFIG_NAME).write_text(json.dumps(description, indent=1))
    torch.manual_seed(profile.seed)
    model = DiffusionModel(recipe.model)
    if stage == "finetune":
        pretrained = stage_dir(profile, "pretrain", root) / CHECKPOINT_NAME
        if not pretrained.exists():
            raise FileNotFoundError(f"fine-tuning starts from the pre-trained DiT, but {pretrained} does not exist: "
                                    f"run train_diffusion('pretrain') first")
        model.load_state_dict(load_weights(pretrained, "model", ema=True))
    batches = StepBatches(dataset, recipe.batch_size, seed=profile.seed + STAGES.index(stage))
    config = TrainConfig(steps=recipe.steps[stage], ema_decay=recipe.ema_decay,
                         checkpoint_every=max(recipe.steps[stage] // 4, 1), log_every=1, seed=profile.seed,
                         progress=progress, desc=f"DiT {stage}")
    history = Trainer(DiffusionStage(model, text_encoder, recipe.optimizer, recipe.cfg_dropout), config,
                      folder).fit(batches)
    model, _ = load_diffusion_folder(folder)
    return model, history


def diffusion_weights(profile: Profile | None = None, stage: str = "finetune", source: str | None = None) -> WeightsChoice:
    """Which DiT of a stage the later stages load: the shipped reference weights (default, where the
    profile has them) or the profile's own checkpoint (`source="own"` or SAMOD_WEIGHTS=own)."""
    profile = profile or get_profile()
    return weights_for(f"dit_{stage}", stage_dir(profile, stage) / CHECKPOINT_NAME, profile, source)



def diffusion_training_records(profile: Profile | None = None, stage: str = "finetune") -> list[dict]:
    """The corpus records of the songs the DiT of `stage` trained on (the one `diffusion_weights` picks):
    every training song for the reference weights (their provenance counts them), the first
    profile.diffusion_songs for a notebook's own run (data_prep/encode.py)."""
    profile = profile or get_profile()
    training, _ = split_records(read_metadata(profile.corpus_dir / "metadata.jsonl"))
    reference = diffusion_weights(profile, stage).reference
    return training[:provenance(f"dit_{stage}", profile)["training_songs"] if reference else profile.diffusion_songs]

def load_diffusion(profile: Profile | None = None, stage: str = "finetune", ema: bool = True,
                   autoencoder_checkpoint: str | Path | None = None,
                   source: str | None = None) -> tuple[DiffusionModel, dict]:
    """The DiT of a profile's stage in eval mode, and its description (what diffusion.json holds): the
    reference weights or the profile's own checkpoint (EMA weights by default), as `diffusion_weights` decides.

    With `autoencoder_checkpoint`, checks that the DiT was trained on that VAE's latents: a DiT made for
    another VAE would generate noise, so that is an error here rather than a surprise later.
    """
    profile = profile or get_profile()
    choice = diffusion_weights(profile, stage, source)
    if choice.reference:
        description = provenance(f"dit_{stage}", profile)["description"]
        model = DiffusionModel(DiTConfig(**description["dit"]))
        model.load_state_dict(load_reference(f"dit_{stage}", profile))
        model.eval()
    else:
        folder = stage_dir(profile, stage)
        if not (folder / CHECKPOINT_NAME).exists():
            raise FileNotFoundError(f"no trained DiT ({stage}) in {folder}: run notebooks/04_diffusion_training.ipynb "
                                    f"or samod.diffusion.train_diffusion({stage!r}) at profile {profile.name!r}")
        model, description = load_diffusion_folder(folder, ema)
    _check_autoencoder(description, autoencoder_checkpoint, choice.path)
    return model, description


def load_diffusion_folder(folder: Path, ema: bool = True) -> tuple[DiffusionModel, dict]:
    """The DiT trained in `folder` (its diffusion.json and checkpoint), in eval mode, and its description."""
    description = json.loads((Path(folder) / CONFIG_NAME).read_text())
    model = DiffusionModel(DiTConfig(**description["dit"]))
    model.load_state_dict(load_weights(Path(folder) / CHECKPOINT_NAME, "model", ema=ema))
    return model.eval(), description


def _check_autoencoder(description: dict, autoencoder_checkpoint: str | Path | None, where: Path) -> None:
    if autoencoder_checkpoint is not None:
        sha = file_sha256(autoencoder_checkpoint)
        if sha != description["autoencoder_sha256"]:
            raise ValueError(f"the DiT {where} was trained on the latents of another autoencoder "
                             f"(SHA-256 {description['autoencoder_sha256'][:12]}..., given {sha[:12]}...): "
                             f"use the VAE it was made for (SAMOD_WEIGHTS selects reference or own weights "
                             f"for every stage together), or re-encode the corpus "
                             f"(python -m data_prep.encode --force) and retrain the DiT")
