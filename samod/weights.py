"""Weights: which trained model each stage loads, and loading it (reference or own).

A notebook trains its own stage live for a few CPU minutes: enough to watch the mechanics and a
falling loss, not enough to make music. So that every later stage has models that work, samod ships
the EMA weights of longer runs of the same recipes, trained with the same code, in
samod/weights/<profile>/<stage>.safetensors (float16), each with <stage>.json: where they came from
(commit, command, seed, steps, audio hours seen, wall time, hardware) and their measured numbers.

Which weights the later stages load is one switch, the environment variable ``SAMOD_WEIGHTS``:

- ``reference`` (default): the shipped weights when the profile has them, else the profile's own;
- ``own``: the models trained in <profile>/checkpoints/ (by the notebooks or by ``make weights``).

`weights_for(stage)` says which file a stage will load and why, in a sentence a notebook prints;
`load_autoencoder`, `load_clap` and `load_diffusion` load what it picks (their `*_folder` forms load
one training run's folder). This is the only module that reads trained weights: the training files
(samod/*_training.py) train and save checkpoints, samod/reference.py (`make weights`) trains the
shipped ones with them, and inference (samod/generation.py and what builds on it) loads through here
without importing any training code.

Sections: 1. the switch and the shipped files, 2. the autoencoder, 3. CLAP, 4. the DiT.
Taught in notebooks/01_autoencoder.ipynb (the first stage that ships weights).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from samod.autoencoder import Autoencoder, AutoencoderConfig
from samod.clap import CONFIG_NAME as CLAP_CONFIG_NAME, ClapEncoder, ClapModelConfig
from samod.data import read_metadata, split_records
from samod.diffusion import CONFIG_NAME, STAGES, DiffusionModel
from samod.dit import DiTConfig
from samod.profiles import REPO_ROOT, Profile, get_profile
from samod.train import CHECKPOINT_NAME, file_sha256, load_weights

WEIGHTS_ENV = "SAMOD_WEIGHTS"  # reference | own
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SOURCES = ("reference", "own")


# ----------------------------------------------------------------------------------------------------
# 1. The switch and the shipped files

def weights_source(source: str | None = None) -> str:
    """`source`, else $SAMOD_WEIGHTS, else "reference"; checked."""
    source = (source or os.environ.get(WEIGHTS_ENV) or "reference").strip().lower()
    if source not in SOURCES:
        raise ValueError(f"unknown weights source {source!r} (from ${WEIGHTS_ENV}): choose 'reference' (the "
                         f"weights shipped in samod/weights/) or 'own' (this profile's checkpoints), "
                         f"e.g. `export {WEIGHTS_ENV}=own`")
    return source


def reference_file(stage: str, profile: Profile | None = None) -> Path:
    """samod/weights/<profile>/<stage>.safetensors (it may not exist)."""
    return WEIGHTS_DIR / (profile or get_profile()).name / f"{stage}.safetensors"


@dataclass
class WeightsChoice:
    reference: bool  # True: the shipped weights; False: the profile's own checkpoint
    path: Path  # the file that will be loaded
    sentence: str  # what a notebook prints


def weights_for(stage: str, own_path: Path, profile: Profile | None = None, source: str | None = None) -> WeightsChoice:
    """Which weights `stage` loads: the reference file when asked for and shipped, else `own_path`."""
    profile = profile or get_profile()
    wanted = weights_source(source)
    shipped = reference_file(stage, profile)
    if wanted == "reference" and shipped.exists():
        info = provenance(stage, profile)
        return WeightsChoice(True, shipped, f"{stage}: reference weights of the {profile.name} profile "
                                            f"({_shown(shipped)}, {info['steps']} steps, "
                                            f"{info['wall_minutes']:.0f} min on {info['hardware']}); "
                                            f"{WEIGHTS_ENV}=own uses this profile's own checkpoint")
    why = (f"{WEIGHTS_ENV}=own" if wanted == "own" else f"the {profile.name} profile ships no reference {stage}")
    return WeightsChoice(False, own_path, f"{stage}: this profile's own checkpoint {own_path} ({why})")


def _shown(path: Path) -> str:
    """A path relative to the repository when it lies inside it."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def provenance(stage: str, profile: Profile | None = None) -> dict:
    """The provenance and measured numbers of a shipped reference model."""
    path = reference_file(stage, profile).with_suffix(".json")
    if not path.exists():
        raise FileNotFoundError(f"no reference {stage} for profile {(profile or get_profile()).name!r} "
                                f"({path} is missing); `make weights` trains one")
    return json.loads(path.read_text())


def _autoencoder_section_steps(section: str, profile: Profile | None) -> int | None:
    """`steps` of a section ("campaign", "decoder") of the reference autoencoder's provenance, if it has one."""
    shipped = reference_file("autoencoder", profile).with_suffix(".json")
    return json.loads(shipped.read_text()).get(section, {}).get("steps") if shipped.exists() else None


def promoted_campaign_step(profile: Profile | None = None) -> int | None:
    """The campaign step (samod/campaign.py) whose weights are the profile's reference autoencoder, from its
    provenance (`python -m samod.reference autoencoder --from-campaign` writes it); None when it is not one."""
    return _autoencoder_section_steps("campaign", profile)


def decoder_fine_tune_steps(profile: Profile | None = None) -> int | None:
    """Steps the reference autoencoder's decoder was fine-tuned alone after the campaign's weights were promoted
    (`--from-campaign --decoder-steps N` writes them to its provenance); None when it was not."""
    return _autoencoder_section_steps("decoder", profile)


def load_reference(stage: str, profile: Profile | None = None) -> dict[str, torch.Tensor]:
    """The shipped state dict of `stage`, in float32."""
    return {k: v.float() for k, v in load_file(str(reference_file(stage, profile))).items()}


def save_reference(stage: str, state: dict[str, torch.Tensor], info: dict, profile: Profile | None = None) -> Path:
    """Write samod/weights/<profile>/<stage>.safetensors (float16) and its provenance <stage>.json."""
    path = reference_file(stage, profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    return path


def run_facts() -> dict:
    """Commit, command line, hardware and thread count of the running process, for provenance."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or "unknown"
        changed = subprocess.run(["git", "status", "--porcelain", "--", "samod/*.py", "data_prep"], cwd=REPO_ROOT,
                                 capture_output=True, text=True, timeout=10).stdout.strip()
        commit += " with uncommitted changes to the code" if changed else ""
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{platform.processor() or platform.machine()} CPU"
    return {"commit": commit, "command": command_line(),
            "hardware": f"{device}, {torch.get_num_threads()} threads", "torch": torch.__version__}


def command_line() -> str:
    """How the running process was started: `python -m module args` or `python script args`."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    program = f"-m {spec.name.removesuffix('.__main__')}" if spec is not None else Path(sys.argv[0]).name
    return " ".join(["python", program, *sys.argv[1:]])


# ----------------------------------------------------------------------------------------------------
# 2. The autoencoder

def autoencoder_weights(profile: Profile | None = None, source: str | None = None) -> WeightsChoice:
    """Which VAE the later stages load: the shipped reference weights (default, where the profile has
    them) or the profile's own checkpoint (`source="own"` or SAMOD_WEIGHTS=own)."""
    profile = profile or get_profile()
    return weights_for("autoencoder", profile.checkpoint_dir / "autoencoder" / CHECKPOINT_NAME, profile, source)


# where an encoder's weights sit in the files an autoencoder is loaded from: a Trainer checkpoint (its EMA), the
# shipped reference weights, a Stable Audio Open checkpoint (samod.pretrained)
ENCODER_PREFIXES = ("ema.autoencoder.encoder.", "encoder.", "pretransform.model.encoder.")


def encoder_sha256(checkpoint: str | Path) -> str:
    """What fixes an autoencoder's latents: the SHA-256 of its encoder's weights in `checkpoint` (reference weights,
    a Trainer checkpoint, whose EMA encoder is hashed, or a Stable Audio Open checkpoint's pretransform).

    Latent caches and the DiTs trained on them are tied to this, not to the whole file, so that a decoder
    fine-tuned alone (encoder frozen: `AutoencoderRecipe.train_encoder`) leaves them valid. Reconstructions
    depend on the decoder too and stay tied to the file (`file_sha256`)."""
    digest = hashlib.sha256()
    with safe_open(str(checkpoint), framework="pt") as f:  # reads the encoder's tensors only (a SAO file is GBs)
        keys = list(f.keys())
        prefix = next((p for p in ENCODER_PREFIXES if any(k.startswith(p) for k in keys)), None)
        if prefix is None:
            raise KeyError(f"{checkpoint} holds no encoder weights (no tensor name starts with one of "
                           f"{', '.join(ENCODER_PREFIXES)}): is it an autoencoder's checkpoint?")
        for name in sorted(k for k in keys if k.startswith(prefix)):
            tensor = f.get_tensor(name)
            tensor = tensor.float() if tensor.is_floating_point() else tensor  # fp16 or fp32 alike
            digest.update(name[len(prefix):].encode())
            digest.update(tensor.contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def autoencoder_checkpoint(profile: Profile | None = None, source: str | None = None) -> Path:
    """The file the VAE of a profile is loaded from (it may not exist yet): ties latents and DiTs to it."""
    return autoencoder_weights(profile, source).path


def load_autoencoder(profile: Profile | None = None, ema: bool = True, source: str | None = None) -> Autoencoder:
    """The VAE of a profile in eval mode: the reference weights or its own checkpoint (EMA weights by
    default), as `autoencoder_weights` decides; a clear error if there is none."""
    profile = profile or get_profile()
    choice = autoencoder_weights(profile, source)
    if choice.reference:
        model = Autoencoder(autoencoder_config(provenance("autoencoder", profile)["recipe"]["model"]))
        model.load_state_dict(load_reference("autoencoder", profile))
        return model.eval()
    folder = profile.checkpoint_dir / "autoencoder"
    if not (folder / CHECKPOINT_NAME).exists():
        raise FileNotFoundError(f"no trained autoencoder in {folder}: run notebooks/01_autoencoder.ipynb "
                                f"or samod.autoencoder_training.train_autoencoder() at profile {profile.name!r}")
    return load_autoencoder_folder(folder, ema)


def load_autoencoder_folder(folder: Path, ema: bool = True) -> Autoencoder:
    """The VAE trained in `folder` (its config.json and checkpoint), in eval mode."""
    model = Autoencoder(autoencoder_config(json.loads((Path(folder) / "config.json").read_text())))
    model.load_state_dict(load_weights(Path(folder) / CHECKPOINT_NAME, "autoencoder", ema=ema))
    return model.eval()


def autoencoder_config(config: dict) -> AutoencoderConfig:
    """AutoencoderConfig from its JSON form (lists back to tuples)."""
    return AutoencoderConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})


# ----------------------------------------------------------------------------------------------------
# 3. CLAP

def clap_weights(profile: Profile | None = None, source: str | None = None) -> WeightsChoice:
    """Which CLAP the later stages load: the shipped reference weights (default, where the profile has
    them) or the profile's own checkpoint (`source="own"` or SAMOD_WEIGHTS=own)."""
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
    config = ClapModelConfig(**json.loads((folder / CLAP_CONFIG_NAME).read_text()))
    encoder = ClapEncoder(config, AutoTokenizer.from_pretrained(folder, local_files_only=True))
    encoder.load_state_dict(load_weights(folder / CHECKPOINT_NAME, "clap", ema=ema))
    return encoder.eval()


# ----------------------------------------------------------------------------------------------------
# 4. The DiT of each stage

def stage_dir(profile: Profile, stage: str, root: Path | None = None) -> Path:
    """<root>/dit_<stage>/, the checkpoints of a stage (root: default <profile>/checkpoints/)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return Path(root or profile.checkpoint_dir) / f"dit_{stage}"


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
                                    f"or samod.diffusion_training.train_diffusion({stage!r}) at profile "
                                    f"{profile.name!r}")
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
        # the encoder's weights (DiTs since the decoder could be fine-tuned alone), else the whole file's
        key = "encoder_sha256" if "encoder_sha256" in description else "autoencoder_sha256"
        sha = (encoder_sha256 if key == "encoder_sha256" else file_sha256)(autoencoder_checkpoint)
        if sha != description[key]:
            raise ValueError(f"the DiT {where} was trained on the latents of another autoencoder "
                             f"({key} {description[key][:12]}..., given {sha[:12]}...): "
                             f"use the VAE it was made for (SAMOD_WEIGHTS selects reference or own weights "
                             f"for every stage together), or re-encode the corpus "
                             f"(python -m data_prep.encode --force) and retrain the DiT")
