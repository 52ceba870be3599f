"""Training CLAP: the tokenizer's prompts, the training stage, the recipe per profile.

Paper 1 §2.4 trains CLAP from scratch on the paper's dataset with the language-audio contrastive loss
(samod.clap.contrastive_loss); paper 1 §3 gives the optimiser: AdamW, base lr 1e-5, weight decay 1e-3,
exponential warm-up and inverse decay (stable-audio-tools' InverseLR), an EMA of the weights.

- The tokenizer (samod.clap.train_clap_tokenizer) is trained first, on `prompt_draws` random prompts
  per training song (`corpus_prompts`: build_prompt's random fields, order, separators and case).
- `ClapStage` is the Trainer's stage (samod.train): one AdamW over both towers; each step draws the
  front end's random crops, computes the loss and keeps the learned temperature in LAION-CLAP's range.
- The recipe per profile (`ClapRecipe.tiny/small/paper`) names the model, optimiser, batch and run
  length; `train_clap` trains it on the training split of a profile's corpus (every HOLDOUT_EVERY-th
  song held out), or resumes, or loads a finished run.

samod/weights.py gives the later stages the shipped reference weights or the profile's own
(`load_clap`); samod/clap_evaluation.py measures retrieval and zero-shot genre accuracy.
Shapes (glossary): B batch, A audio channels (2), T samples. Taught in notebooks/02_clap.ipynb.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoTokenizer

from samod.clap import (CONFIG_NAME, ClapEncoder, ClapModelConfig, contrastive_loss, positive_targets,
                        train_clap_tokenizer)
from samod.data import SongDataset, build_prompt, read_metadata, split_records
from samod.profiles import Profile, get_profile, profile_preset
from samod.train import OptimizerConfig, StepBatches, Trainer, TrainConfig
from samod.weights import load_clap_folder

HOLDOUT_EVERY = 4  # CLAP holds out every 4th song (32 of the tiny corpus's 128): enough for retrieval


# ----------------------------------------------------------------------------------------------------
# The tokenizer's prompts, the Stage, the recipe per profile, training

def corpus_prompts(records: list[dict], draws: int = 32, seed: int = 0) -> list[str]:
    """`draws` random prompts per record (build_prompt: random fields, order, separators and case)."""
    generator = torch.Generator().manual_seed(seed)
    return [build_prompt(record, generator) for _ in range(draws) for record in records]


class ClapStage:
    """train.Stage of CLAP: one AdamW over both towers; a batch is a dict with "audio" (B, A, T) and "prompt"."""

    def __init__(self, encoder: ClapEncoder, optimizer: OptimizerConfig):
        self.encoder = encoder  # the plain module, for tokenizing and the front end
        self.clap = encoder  # what the Trainer trains (replaced by a DDP wrapper under torchrun)
        self.optimizer = optimizer
        encoder.model.logit_scale_t.requires_grad_(False)  # unused: LAION-CLAP's loss uses logit_scale_a only

    def modules(self) -> dict[str, nn.Module]:
        return {"clap": self.clap}

    def optimizers(self) -> dict[str, tuple]:
        return {"clap": ([p for p in self.encoder.parameters() if p.requires_grad], self.optimizer)}

    def ema_modules(self) -> list[str]:
        return ["clap"]

    def training_step(self, batch: dict, step: int) -> tuple[str, torch.Tensor, dict[str, float]]:
        prompts = list(batch["prompt"])
        with torch.no_grad():  # LAION-CLAP clamps after every optimizer step: the temperature stays >= 0.01
            self.encoder.model.logit_scale_a.clamp_(0, math.log(100))
        inputs = self.encoder.audio_inputs(batch["audio"])  # crops from the global RNG (resumable)
        audio_embeds, text_embeds, logit_scale = self.clap(**self.encoder.tokenize(prompts), **inputs)
        loss = contrastive_loss(audio_embeds, text_embeds, logit_scale, prompts)
        with torch.no_grad():  # how often each audio's nearest text is one of its right texts
            best = (audio_embeds @ text_embeds.T).argmax(dim=1)  # (B,)
            accuracy = (positive_targets(prompts)[torch.arange(len(prompts)), best.cpu()] > 0).float().mean()
        return "clap", loss, {"logit_scale": logit_scale.item(), "batch_accuracy": accuracy.item(),
                              "distinct_prompts": len(set(prompts)) / len(prompts)}


@dataclass
class ClapRecipe:
    model: ClapModelConfig  # the architecture
    optimizer: OptimizerConfig  # AdamW + InverseLR
    steps: int  # training steps
    batch_size: int  # pairs per step; every other pair of the batch is a negative
    crop_seconds: float  # SongDataset windows (44.1 kHz); longer than model.window_seconds, so fused
    prompt_draws: int  # prompts drawn per training song to train the tokenizer
    ema_decay: float  # EMA of the weights (paper 1 §3: every model keeps one)

    @staticmethod
    def tiny() -> "ClapRecipe":
        # a CPU-length run: the loss starts at the chance level log 16 = 2.77 (batch 16); lr 5e-4 because a
        # larger rate learned less or collapsed to the chance loss (docs/experiments.md)
        return ClapRecipe(ClapModelConfig.tiny(), OptimizerConfig(lr=5e-4, betas=(0.9, 0.98), weight_decay=1e-3,
                                                                  warmup=0.9), steps=160, batch_size=16,
                          crop_seconds=10.0, prompt_draws=32, ema_decay=0.99)

    @staticmethod
    def small() -> "ClapRecipe":
        return ClapRecipe(ClapModelConfig.small(), OptimizerConfig(lr=1e-4, betas=(0.9, 0.98), weight_decay=1e-3,
                                                                   warmup=0.99), steps=20_000, batch_size=64,
                          crop_seconds=20.0, prompt_draws=64, ema_decay=0.999)

    @staticmethod
    def paper() -> "ClapRecipe":
        # paper 1 §3: AdamW, base lr 1e-5, weight decay 1e-3, exponential warm-up and inverse decay (SAT's
        # InverseLR as in stable_audio_2_0.json), EMA. Batch size and steps are not published: ours.
        return ClapRecipe(ClapModelConfig.paper(), OptimizerConfig(lr=1e-5, betas=(0.9, 0.999), weight_decay=1e-3,
                                                                   inv_gamma=1e6, power=0.5, warmup=0.99),
                          steps=200_000, batch_size=256, crop_seconds=20.0, prompt_draws=64, ema_decay=0.9999)

    @staticmethod
    def for_profile(name: str) -> "ClapRecipe":
        return profile_preset(ClapRecipe, name)


def train_clap(recipe: ClapRecipe | None = None, profile: Profile | None = None,
               progress: bool = True, folder: Path | None = None, reconstructions: list[dict] | None = None,
               max_songs: int | None = None) -> tuple[ClapEncoder, list[dict]]:
    """Train (or resume, or just load a finished run of) CLAP on the training split of a profile's corpus.

    The tokenizer is trained first on `prompt_draws` prompts per training song and saved; the model
    then trains on (audio window, prompt) pairs of SongDataset. `reconstructions` (records of
    data_prep.encode.reconstruct_corpus) adds the VAE's reconstruction of every training song as a
    second pair with the same prompts, so that CLAP recognises decoded audio too. `max_songs` keeps the first
    training songs only (a short run that should see each song several times). Checkpoints go to
    `folder` (default <profile>/checkpoints/clap/, the profile's own CLAP); returns the encoder with
    its EMA weights, in eval mode, and the history.
    """
    profile = profile or get_profile()
    recipe = recipe or ClapRecipe.for_profile(profile.name)
    folder = Path(folder) if folder is not None else profile.checkpoint_dir / "clap"
    folder.mkdir(parents=True, exist_ok=True)
    training, _ = split_records(read_metadata(profile.corpus_dir / "metadata.jsonl"), every=HOLDOUT_EVERY)
    training = training[:max_songs]
    if (folder / "tokenizer.json").exists():  # resuming: the tokenizer the weights were trained with
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    else:
        tokenizer = train_clap_tokenizer(corpus_prompts(training, recipe.prompt_draws, profile.seed),
                                         recipe.model.vocab_size, recipe.model.max_tokens)
        tokenizer.save_pretrained(folder)
    (folder / CONFIG_NAME).write_text(json.dumps(asdict(recipe.model), indent=1))
    if reconstructions is not None:  # the tokenizer above saw the same songs' prompts
        ids = {r["id"] for r in training}
        training = training + [r for r in reconstructions if r["id"] in ids]
    dataset = SongDataset(training, window_seconds=recipe.crop_seconds, seed=profile.seed)
    batches = StepBatches(dataset, recipe.batch_size, seed=profile.seed)
    torch.manual_seed(profile.seed)
    stage = ClapStage(ClapEncoder(recipe.model, tokenizer), recipe.optimizer)
    config = TrainConfig(steps=recipe.steps, ema_decay=recipe.ema_decay, checkpoint_every=max(recipe.steps // 4, 1),
                         log_every=1, seed=profile.seed, progress=progress, desc="clap")
    history = Trainer(stage, config, folder).fit(batches)
    return load_clap_folder(folder), history
