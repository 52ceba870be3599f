"""Training and evaluating CLAP: the tokenizer's prompts, the training stage, the recipe per profile, retrieval.

Paper 1 §2.4 trains CLAP from scratch on the paper's dataset with the language-audio contrastive loss
(samod.clap.contrastive_loss); paper 1 §3 gives the optimiser: AdamW, base lr 1e-5, weight decay 1e-3,
exponential warm-up and inverse decay (stable-audio-tools' InverseLR), an EMA of the weights.

- The tokenizer (samod.clap.train_clap_tokenizer) is trained first, on `prompt_draws` random prompts
  per training song (`corpus_prompts`: build_prompt's random fields, order, separators and case).
- `ClapStage` is the Trainer's stage (samod.train): one AdamW over both towers; each step draws the
  front end's random crops, computes the loss and keeps the learned temperature in LAION-CLAP's range.
- The recipe per profile (`ClapRecipe.tiny/small/paper`) names the model, optimiser, batch and run
  length; `train_clap` trains it on the training split of a profile's corpus (every HOLDOUT_EVERY-th
  song held out), or resumes, or loads a finished run; `load_clap` gives the later stages the shipped
  reference weights or the profile's own, as `clap_weights` decides.
- `evaluate_clap` measures it on held-out songs: text-to-audio and audio-to-text Recall@1/@10 (each
  song's full-metadata prompt, `evaluation_prompt`, against a crop from its middle) and zero-shot
  genre accuracy (the nearest genre embedding, each the mean over the forms of `genre_prompts`).

Shapes (glossary): B batch, A audio channels (2), T samples, N songs, K genres, P projection width.
Taught in notebooks/02_clap.ipynb.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoTokenizer

from samod.audio import load_audio
from samod.clap import (CONFIG_NAME, ClapEncoder, ClapModelConfig, contrastive_loss, positive_targets,
                        train_clap_tokenizer)
from samod.data import SongDataset, build_prompt, prompt_fields, read_metadata, split_records
from samod.generation_metrics import recall_at_k, zero_shot_accuracy
from samod.profiles import SAMPLE_RATE, Profile, get_profile, profile_preset
from samod.reference import WeightsChoice, load_reference, provenance, reference_file, weights_for
from samod.train import CHECKPOINT_NAME, OptimizerConfig, StepBatches, Trainer, TrainConfig, load_weights

HOLDOUT_EVERY = 4  # CLAP holds out every 4th song (32 of the tiny corpus's 128): enough for retrieval


# ----------------------------------------------------------------------------------------------------
# Training: the tokenizer's prompts, the Stage, the recipe per profile, train / load

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
        # about 2 minutes on 2 CPU cores (~0.7 s a step with loading): the loss falls from log 16 = 2.77 and
        # 160 steps retrieve held-out songs (Recall@1 0.16, chance 0.03; genre 0.38, chance 0.08; 240 steps:
        # 0.19 and 0.47). lr 1e-3 learns less, 3e-3 collapses to the chance loss
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
               progress: bool = True, folder: Path | None = None,
               reconstructions: list[dict] | None = None) -> tuple[ClapEncoder, list[dict]]:
    """Train (or resume, or just load a finished run of) CLAP on the training split of a profile's corpus.

    The tokenizer is trained first on `prompt_draws` prompts per training song and saved; the model
    then trains on (audio window, prompt) pairs of SongDataset. `reconstructions` (records of
    data_prep.encode.reconstruct_corpus) adds the VAE's reconstruction of every training song as a
    second pair with the same prompts, so that CLAP recognises decoded audio too. Checkpoints go to
    `folder` (default <profile>/checkpoints/clap/, the profile's own CLAP); returns the encoder with
    its EMA weights, in eval mode, and the history.
    """
    profile = profile or get_profile()
    recipe = recipe or ClapRecipe.for_profile(profile.name)
    folder = Path(folder) if folder is not None else profile.checkpoint_dir / "clap"
    folder.mkdir(parents=True, exist_ok=True)
    training, _ = split_records(read_metadata(profile.corpus_dir / "metadata.jsonl"), every=HOLDOUT_EVERY)
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


def clap_weights(profile: Profile | None = None, source: str | None = None) -> WeightsChoice:
    """Which CLAP the later stages load: the shipped reference weights (default, where the profile has
    them) or the profile's own checkpoint (`source="own"` or SAMOD_WEIGHTS=own); see samod.reference."""
    profile = profile or get_profile()
    return weights_for("clap", profile.checkpoint_dir / "clap" / CHECKPOINT_NAME, profile, source)


def load_clap(profile: Profile | None = None, ema: bool = True, source: str | None = None) -> ClapEncoder:
    """The CLAP of a profile in eval mode: the reference weights or its own checkpoint (EMA weights by
    default), as `clap_weights` decides; a clear error if there is none."""
    profile = profile or get_profile()
    choice = clap_weights(profile, source)
    if choice.reference:
        folder = reference_file("clap", profile).with_name("clap_tokenizer")
        encoder = ClapEncoder(ClapModelConfig(**provenance("clap", profile)["recipe"]["model"]),
                              AutoTokenizer.from_pretrained(folder, local_files_only=True))
        encoder.load_state_dict(load_reference("clap", profile))
        return encoder.eval()
    folder = profile.checkpoint_dir / "clap"
    if not (folder / CHECKPOINT_NAME).exists():
        raise FileNotFoundError(f"no trained CLAP in {folder}: run notebooks/02_clap.ipynb or "
                                f"samod.clap_training.train_clap() at profile {profile.name!r}")
    return load_clap_folder(folder, ema)


def load_clap_folder(folder: Path, ema: bool = True) -> ClapEncoder:
    """The CLAP trained in `folder` (its config.json, tokenizer and checkpoint), in eval mode."""
    config = ClapModelConfig(**json.loads((folder / CONFIG_NAME).read_text()))
    encoder = ClapEncoder(config, AutoTokenizer.from_pretrained(folder, local_files_only=True))
    encoder.load_state_dict(load_weights(folder / CHECKPOINT_NAME, "clap", ema=ema))
    return encoder.eval()


# ----------------------------------------------------------------------------------------------------
# Evaluation: retrieval and zero-shot genre classification on held-out songs

def genre_prompts(genre: str) -> list[str]:
    """The zero-shot class prompts of a genre, in the forms training prompts take; their embeddings are averaged."""
    return [f"Genre: {genre}", genre, f"genre: {genre}", f"GENRE: {genre.upper()}"]


def evaluation_prompt(record: dict) -> str:
    """The full metadata of a song as one prompt, fields named (one of the training formats)."""
    fields = prompt_fields(record)
    return "|".join(f"{name}: {', '.join(v) if isinstance(v, list) else v}" for name, v in fields.items())


@torch.no_grad()
def evaluate_clap(encoder: ClapEncoder, records: list[dict], crop_seconds: float, genres: list[str],
                  batch_size: int = 16, seed: int = 0, transform=None) -> dict:
    """Text-to-audio and audio-to-text Recall@1/@10 and zero-shot genre accuracy on `records`.

    Each song is represented by `crop_seconds` from its middle and by `evaluation_prompt`; genres are
    classified by the most similar genre embedding (the mean over `genre_prompts`, in the forms the
    prompts of training take). `transform` ((B, 2, T) audio -> audio, e.g. the VAE's reconstruction)
    is applied to the crops first. Returns the numbers, their chance
    levels, the (text, audio) similarity matrix and the embeddings.
    """
    encoder.eval()
    generator = torch.Generator().manual_seed(seed)
    audio_embeds = []
    for i in range(0, len(records), batch_size):
        batch = [torch.from_numpy(load_audio(r["audio_path"], start=max(0.0, (r["seconds"] - crop_seconds) / 2),
                                             seconds=crop_seconds)) for r in records[i:i + batch_size]]
        n = int(crop_seconds * SAMPLE_RATE)
        batch = torch.stack([F.pad(a, (0, n - a.shape[1]))[:, :n] for a in batch])  # (B, 2, T)
        batch = batch if transform is None else transform(batch)
        audio_embeds.append(encoder.audio_embeddings(batch, generator=generator))
    audio_embeds = torch.cat(audio_embeds)  # (N, P)
    prompts = [evaluation_prompt(r) for r in records]
    text_embeds = encoder.text_embeddings(prompts)  # (N, P)
    similarity = text_embeds @ audio_embeds.T  # (texts, audio)
    genre_embeds = torch.stack([F.normalize(encoder.text_embeddings(genre_prompts(g)).mean(dim=0), dim=0)
                                for g in genres])  # (K, P): mean over prompt forms, as CLIP's prompt ensembles
    labels = [genres.index(r["genre"]) for r in records]
    n = len(records)
    return {"n_songs": n, "n_genres": len(genres),
            "text_to_audio_r1": recall_at_k(similarity, 1), "text_to_audio_r10": recall_at_k(similarity, 10),
            "audio_to_text_r1": recall_at_k(similarity.T, 1), "audio_to_text_r10": recall_at_k(similarity.T, 10),
            "zero_shot_genre_accuracy": zero_shot_accuracy(audio_embeds, genre_embeds, labels),
            "chance_r1": 1 / n, "chance_r10": min(10 / n, 1.0), "chance_genre": 1 / len(genres),
            "similarity": similarity, "audio_embeddings": audio_embeds, "labels": labels, "prompts": prompts}
