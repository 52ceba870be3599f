"""Fine-tuning the DiT on your own music: LoRA adapters (peft) or every weight.

A trained DiT (the profile's, the tiny reference weights, or Stable Audio Open's) learns a new style from a
folder of songs with their captions. Two ways:

- LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", arXiv:2106.09685): each
  targeted linear layer y = W x keeps its weight W (out x in) frozen and learns a low-rank update,

      y = (W + (alpha / r) B A) x,     A (r x in), B (out x r),  r << min(in, out)

  A starts random and B at zero, so training starts from the base model's exact output. Only A and B are
  trained and saved: r (in + out) numbers per layer instead of in * out. After training, B A can be merged
  into W (W <- W + (alpha / r) B A: no extra cost at sampling) and unmerged again. samod uses the
  implementation of Hugging Face's peft (`inject_adapter_in_model`, its lora.Linear layers, merge/unmerge);
  the targets default to every linear of every DiT block (attention qkv/out, cross-attention q/kv/out, the
  MLP's proj_in/proj_out), not the embeddings or the DiT's own proj_in/proj_out.
- Full fine-tuning: every weight trains (more memory, a file as large as the model).

Training is the DiT's own (samod/diffusion_training.py: v-objective, CFG dropout, the shared Trainer with its
resumable checkpoints) on a latent cache of the new songs, at any window length: the DiT is length-agnostic
and seconds_total tells it each song's length (it is clamped to DiTConfig.max_seconds, 64 s for tiny).

An adapter is saved as adapter.safetensors (the A and B matrices, or every weight for full fine-tuning) and
adapter.json: the adapter config and the identity of the base model it was made for (SHA-256 of the base
weights and the DiT config). Loading it onto another base model is refused, naming both identities.

    python -m samod.finetune --data DIR --captions captions.csv --window 30 --lora-rank 8 --steps 500

Symbols: r the LoRA rank, alpha its scale (the update is multiplied by alpha / r). Shapes as in samod/dit.py.
Taught in notebooks/10_fine_tuning.ipynb.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import peft
import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file, save_file
from torch import nn

from data_prep.encode import encode_corpus
from data_prep.importers import import_folder
from samod.checkpoints import check_keys, count_parameters
from samod.data import LatentDataset
from samod.diffusion import DiffusionModel
from samod.diffusion_training import DiffusionStage
from samod.pretrained import load_stable_audio_open
from samod.train import OptimizerConfig, StepBatches, Trainer, TrainConfig
from samod.weights import autoencoder_checkpoint, load_autoencoder, load_clap, load_diffusion

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter.json"
# every linear of a DiT block (samod/dit.py); dotted suffixes, so the DiT's own proj_in/proj_out are not hit
DIT_BLOCK_LINEARS = ("self_attn.qkv", "self_attn.out", "cross_attn.q", "cross_attn.kv", "cross_attn.out",
                     "mlp.proj_in", "mlp.proj_out")


@dataclass
class AdapterConfig:
    """A LoRA adapter of the DiT: W + (alpha / r) B A on each targeted linear (module docstring)."""
    rank: int = 8  # r: rank of B A; 4-16 is usual, higher learns more and saves a larger file
    alpha: float = 8.0  # the update is scaled by alpha / r; alpha = r: scale 1
    dropout: float = 0.0  # dropout on the adapter's input x (peft's lora_dropout)
    target_modules: tuple[str, ...] = DIT_BLOCK_LINEARS  # module-name suffixes (peft matches ".<suffix>")

    def __post_init__(self):
        if self.rank < 1:
            raise ValueError(f"the LoRA rank r must be a positive integer, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout is a probability in [0, 1), got {self.dropout}")
        self.target_modules = tuple(self.target_modules)

    def lora_config(self) -> peft.LoraConfig:
        """peft's LoraConfig: B = 0 at init, so the adapted model starts as the base model."""
        return peft.LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                               target_modules=list(self.target_modules), bias="none")


@dataclass
class FinetuneConfig:
    """How the DiT is fine-tuned on a latent cache."""
    window_seconds: float = 30.0  # training window; songs are cropped or padded with silence to it
    steps: int = 500  # training steps
    batch_size: int = 4
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-4, weight_decay=1e-3))
    cfg_dropout: float = 0.1  # keep training the unconditional model for classifier-free guidance
    ema_decay: float = 0.99  # the adapter saved is the EMA of the trained weights
    checkpoint_every: int = 100  # Trainer checkpoint (resumable) every this many steps
    seed: int = 0


# ----------------------------------------------------------------------------------------------------
# The base model's identity

def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of a module's state dict: every key, dtype, shape and byte, keys in sorted order."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def base_identity(model: DiffusionModel) -> dict:
    """What an adapter was made for: the SHA-256 of the base weights and the DiT config.

    Computed once, before any adapter is added, and kept on the model (`model.base_identity`)."""
    if getattr(model, "base_identity", None) is not None:
        return model.base_identity
    if has_adapter(model):
        raise ValueError("this model carries an adapter and no record of its base weights; "
                         "compute base_identity(model) before adding the adapter")
    return {"weights_sha256": weights_sha256(model), "dit": asdict(model.config)}


def has_adapter(model: nn.Module) -> bool:
    return any(isinstance(module, BaseTunerLayer) for module in model.modules())


# ----------------------------------------------------------------------------------------------------
# The two modes

def add_adapter(model: DiffusionModel, config: AdapterConfig) -> DiffusionModel:
    """Inject LoRA layers into the DiT's blocks (in place; the model stays a DiffusionModel, so Pipeline,
    DiffusionStage and the sampler use it as before). Only the adapter's A and B require grad."""
    if has_adapter(model):
        raise ValueError("the model already carries an adapter; start from a fresh base model")
    identity = base_identity(model)
    peft.inject_adapter_in_model(config.lora_config(), model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)  # peft marks only the adapters trainable already; made explicit
    model.base_identity, model.adapter_config = identity, config
    return model


def full_finetuning(model: DiffusionModel) -> DiffusionModel:
    """Every weight of the model trains (the other mode); the base identity is kept for the saved file."""
    model.base_identity = base_identity(model)
    model.adapter_config = None
    return model.requires_grad_(True)


def merge(model: nn.Module) -> nn.Module:
    """W <- W + (alpha / r) B A in every LoRA layer (peft's merge): sampling costs what the base costs."""
    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.merge()
    return model


def unmerge(model: nn.Module) -> nn.Module:
    """W <- W - (alpha / r) B A (peft's unmerge): back to the base weights plus a separate adapter."""
    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.unmerge()
    return model


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


# ----------------------------------------------------------------------------------------------------
# Saving and loading

def save_adapter(model: DiffusionModel, folder: str | Path, extra: dict | None = None) -> Path:
    """Write folder/adapter.safetensors (LoRA: A and B only; full: every weight) and folder/adapter.json."""
    if getattr(model, "base_identity", None) is None:
        raise ValueError("the model has no base identity: wrap it with add_adapter or full_finetuning first")
    lora = model.adapter_config is not None
    if lora and any(module.merged for module in model.modules() if isinstance(module, BaseTunerLayer)):
        raise ValueError("the adapter is merged into the base weights: unmerge(model) before saving it")
    state = peft.get_peft_model_state_dict(model) if lora else model.state_dict()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(folder / ADAPTER_WEIGHTS))
    description = {"mode": "lora" if lora else "full", "base": model.base_identity,
                   "adapter": asdict(model.adapter_config) if lora else None,
                   "peft": peft.__version__, **(extra or {})}
    (folder / ADAPTER_CONFIG).write_text(json.dumps(description, indent=1))
    return folder


def load_adapter(model: DiffusionModel, folder: str | Path) -> DiffusionModel:
    """Put the adapter saved in `folder` on `model` (in place; eval mode), after checking it was made for it:
    a LoRA adapter needs the exact base weights (SHA-256), full fine-tuned weights only the same DiT config."""
    folder = Path(folder)
    description = json.loads((folder / ADAPTER_CONFIG).read_text())
    made_for, this = description["base"], base_identity(model)
    if description["mode"] == "lora" and made_for["weights_sha256"] != this["weights_sha256"]:
        raise ValueError(
            f"the adapter in {folder} was made for base weights with SHA-256 {made_for['weights_sha256'][:16]}..., "
            f"this model's weights have SHA-256 {this['weights_sha256'][:16]}...: a LoRA adapter is a correction "
            f"to one set of weights. Load the base it was trained on (the same checkpoint, reference or own "
            f"weights), or fine-tune a new adapter on this base")
    if made_for["dit"] != this["dit"]:
        raise ValueError(f"the weights in {folder} are for the DiT {made_for['dit']}, this model is {this['dit']}: "
                         f"build the model from that DiTConfig")
    state = load_file(str(folder / ADAPTER_WEIGHTS))
    if description["mode"] == "lora":
        add_adapter(model, AdapterConfig(**description["adapter"]))
        check_keys(peft.get_peft_model_state_dict(model), state, f"the adapter layers of {folder / ADAPTER_CONFIG}")
        peft.set_peft_model_state_dict(model, state)
    else:
        full_finetuning(model)
        model.load_state_dict(state)
        model.base_identity = made_for
    return model.eval()


# ----------------------------------------------------------------------------------------------------
# Training

class FinetuneStage(DiffusionStage):
    """DiffusionStage whose optimizer holds only the trainable parameters (the adapters, or everything)."""

    def optimizers(self) -> dict[str, tuple]:
        return {"model": (trainable_parameters(self.model), self.optimizer)}


def finetune(model: DiffusionModel, text_encoder: nn.Module, cache: str | Path, config: FinetuneConfig,
             out_dir: str | Path, latent_scale: float = 1.0, progress: bool = True) -> tuple[DiffusionModel, list[dict]]:
    """Train a wrapped model (add_adapter or full_finetuning) on a latent cache; resumes from
    out_dir/checkpoints/. Saves the EMA weights' adapter to out_dir/adapter/ and returns (EMA model, history)."""
    if getattr(model, "base_identity", None) is None:
        raise ValueError("wrap the model first: add_adapter(model, AdapterConfig(...)) or full_finetuning(model)")
    dataset = LatentDataset(cache, window_frames=1, seed=config.seed, scale=latent_scale)
    dataset.window_frames = math.ceil(config.window_seconds * dataset.latent_rate)  # L of the window
    if dataset.latent_channels != model.config.latent_channels:
        raise ValueError(f"the latent cache has {dataset.latent_channels} channels, the DiT expects "
                         f"{model.config.latent_channels}: encode the songs with the base model's autoencoder")
    longest = max(record["seconds"] for record in dataset.records)
    if config.window_seconds > longest:  # allowed: every window then ends in silence after seconds_total
        warnings.warn(f"the window ({config.window_seconds:g} s) is longer than every song (the longest is "
                      f"{longest:.1f} s): each window is padded with silence after seconds_total, which teaches "
                      f"the model where songs end but spends steps on silence; a shorter --window trains on more music")
    batch_size = min(config.batch_size, len(dataset))  # a few songs still fill a batch
    train_config = TrainConfig(steps=config.steps, ema_decay=config.ema_decay, log_every=1, seed=config.seed,
                               checkpoint_every=config.checkpoint_every, progress=progress,
                               desc="fine-tuning (LoRA)" if model.adapter_config else "fine-tuning (full)")
    stage = FinetuneStage(model, text_encoder, config.optimizer, config.cfg_dropout)
    trainer = Trainer(stage, train_config, Path(out_dir) / "checkpoints")
    history = trainer.fit(StepBatches(dataset, batch_size, seed=config.seed))
    ema = trainer.ema["model"].eval()
    save_adapter(ema, Path(out_dir) / "adapter",
                 {"window_seconds": config.window_seconds, "latent_scale": latent_scale, "steps": config.steps,
                  "songs": len(dataset), "autoencoder_sha256": dataset.info["autoencoder_sha256"],
                  "encoder_sha256": dataset.info["encoder_sha256"]})
    return ema, history


# ----------------------------------------------------------------------------------------------------
# Command line

def load_base(base: str, sao_config: str | None = None, t5_path: str | None = None):
    """(model, autoencoder, autoencoder file, text encoder, latent scale) of a base: "reference", "own"
    (the profile's DiT, VAE and CLAP) or the path of a Stable Audio Open checkpoint."""
    if base in ("reference", "own"):
        model, description = load_diffusion(source=base)
        return (model, load_autoencoder(source=base), autoencoder_checkpoint(source=base), load_clap(source=base),
                float(description.get("latent_scale") or 1.0))
    path = Path(base)
    if not path.exists():
        raise FileNotFoundError(f"--base {base}: not 'reference', 'own' or an existing Stable Audio Open checkpoint")
    t5 = t5_path or (path.parent / "t5" if (path.parent / "t5").exists() else None)
    pipeline = load_stable_audio_open(path, sao_config or path.parent / "model_config.json", t5, device="cpu")
    return pipeline.model, pipeline.autoencoder, path, pipeline.text_encoder, pipeline.latent_scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samod.finetune", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="folder of audio files")
    parser.add_argument("--captions", required=True, help="CSV or JSONL table (data_prep.importers.import_folder)")
    parser.add_argument("--window", type=float, required=True, help="training window in seconds")
    parser.add_argument("--lora-rank", type=int, default=8, help="r, the LoRA rank (default 8)")
    parser.add_argument("--alpha", type=float, default=None, help="LoRA alpha (default: r, scale 1)")
    parser.add_argument("--full", action="store_true", help="train every weight instead of a LoRA adapter")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--out", default="finetune_out", help="corpus/, latents/, checkpoints/, adapter/ go here")
    parser.add_argument("--base", default="reference",
                        help="'reference' (shipped weights), 'own' (the profile's checkpoints) or a SAO checkpoint")
    parser.add_argument("--sao-config", help="model_config.json of a SAO checkpoint (default: next to it)")
    parser.add_argument("--t5", help="local t5-base folder for a SAO checkpoint (default: <checkpoint dir>/t5)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    out, progress = Path(args.out), not args.no_progress
    model, autoencoder, autoencoder_file, text_encoder, latent_scale = load_base(args.base, args.sao_config, args.t5)
    # 1. import the folder (reruns resume), 2. encode it once (reruns skip encoded songs), 3. train (resumes)
    records, _ = import_folder(args.data, args.captions, out / "corpus", progress=progress)
    if not records:
        raise SystemExit(f"no usable audio in {args.data}: see {out / 'corpus' / 'skipped.txt'}")
    encode_corpus(autoencoder, autoencoder_file, out / "corpus" / "metadata.jsonl", out / "latents", split="all",
                  progress=progress)
    if args.full:
        full_finetuning(model)
    else:
        add_adapter(model, AdapterConfig(rank=args.lora_rank, alpha=args.alpha or float(args.lora_rank)))
    config = FinetuneConfig(window_seconds=args.window, steps=args.steps, batch_size=args.batch_size,
                            optimizer=OptimizerConfig(lr=args.lr, weight_decay=1e-3),
                            checkpoint_every=max(1, min(100, args.steps)))
    finetune(model, text_encoder, out / "latents", config, out, latent_scale=latent_scale, progress=progress)
    n_trainable = count_parameters(trainable_parameters(model))
    print(f"trained {n_trainable:,} of {count_parameters(model):,} parameters; "
          f"adapter in {out / 'adapter'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
