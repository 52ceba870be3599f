"""Training the latent DiT: the training step, the recipe per profile, the two stages.

Paper 1 (Stable Audio 2) §3.2 trains the DiT in two stages, pre-training on short windows and then
fine-tuning the same weights on longer ones, with the v-objective, timing conditioning and CFG dropout
of samod/diffusion.py (its docstring derives them). Here:

- `DiffusionStage`: one training step: sample t and eps, noise the latents, drop the context for CFG,
  MSE on v; the frozen text encoder (CLAP or T5) makes the text tokens.
- `DiffusionRecipe.tiny/small/paper`: model, optimiser, steps per stage, batch, EMA, latent scale.
- `train_diffusion(stage)`: trains (or resumes, or loads a finished run of) one stage on the latent
  cache (data_prep/encode.py) and writes diffusion.json next to the checkpoint: what the model was
  made for (window, latent rate and scale, the autoencoder's SHA-256, the text encoder).

samod/weights.py loads a trained DiT for the later stages (`load_diffusion`).
Shapes (glossary): B batch, D latent channels, L latent frames, S text tokens, E conditioning width.
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

from samod.data import LatentDataset, latent_std
from samod.diffusion import CONFIG_NAME, STAGES, DiffusionModel, add_noise, cfg_dropout
from samod.dit import DiTConfig
from samod.profiles import Profile, get_profile, profile_preset
from samod.train import CHECKPOINT_NAME, OptimizerConfig, StepBatches, Trainer, TrainConfig, load_weights
from samod.weights import load_clap, load_diffusion_folder, stage_dir


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
# Recipes per profile and training

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
        # a CPU-length run: 20x the paper's learning rate and a short warm-up, so that so short a run moves, decaying
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


def train_diffusion(stage: str = "pretrain", recipe: DiffusionRecipe | None = None, profile: Profile | None = None,
                    text_encoder: nn.Module | None = None, progress: bool = True, root: Path | None = None,
                    cache: Path | None = None) -> tuple[DiffusionModel, list[dict]]:
    """Train (or resume, or load a finished run of) one stage of the DiT of a profile.

    Needs the latent cache (`python -m data_prep.encode`; `cache`, default <profile>/cache/latents/) and
    a CLAP (`text_encoder`, default samod.weights.load_clap()). "finetune" starts from the EMA weights of
    the finished "pretrain" stage. Checkpoints go to <root>/dit_<stage>/ (default root
    <profile>/checkpoints/) with a diffusion.json saying what the model was made for.
    Returns the EMA model in eval mode and the logged history.
    """
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
                   "encoder_sha256": dataset.info["encoder_sha256"],
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
