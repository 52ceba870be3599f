"""Reference weights: models of a profile trained once, for long, and shipped inside samod.

A notebook trains its own stage live for a few CPU minutes: enough to watch the mechanics and a
falling loss, not enough to make music. So that every later stage has models that work, samod ships
the EMA weights of longer runs of the same recipes, trained with the same code, in
samod/weights/<profile>/<stage>.safetensors (float16), each with <stage>.json: where they came from
(commit, command, seed, steps, audio hours seen, wall time, hardware) and their measured numbers.

Which weights the later stages load is one switch, the environment variable ``SAMOD_WEIGHTS``:

- ``reference`` (default): the shipped weights when the profile has them, else the profile's own;
- ``own``: the models trained in <profile>/checkpoints/ (by the notebooks or by ``make weights``).

`weights_for(stage)` says which file a stage will load and why, in a sentence a notebook prints.
`python -m samod.reference autoencoder` retrains the reference weights from scratch (`make weights`):
it trains with the profile's recipe in segments (the Trainer resumes exactly, so a segmented run
equals an uninterrupted one), measures the model after each segment, and exports the EMA weights.

Taught in notebooks/01_autoencoder.ipynb (the first stage that ships them).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from samod.profiles import REPO_ROOT, Profile, get_profile

WEIGHTS_ENV = "SAMOD_WEIGHTS"  # reference | own
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SOURCES = ("reference", "own")


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
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{platform.processor() or platform.machine()} CPU"
    return {"commit": commit, "command": " ".join(["python -m samod.reference", *sys.argv[1:]]),
            "hardware": f"{device}, {torch.get_num_threads()} threads", "torch": torch.__version__}


# ----------------------------------------------------------------------------------------------------
# Training the reference autoencoder

def train_reference_autoencoder(steps: int | None = None, evaluate_every: int = 250, files: int = 16,
                                profile: Profile | None = None) -> Path:
    """Train the profile's VAE recipe for `steps`, measure it every `evaluate_every` steps on `files`
    held-out songs (Table 5 with identification, specificity and the silence gap), export the EMA weights.

    Checkpoints go to <profile>/checkpoints/reference/autoencoder/ (apart from the notebook's own run):
    rerunning resumes where it stopped.
    """
    from samod.autoencoder_training import AutoencoderRecipe, table5, train_autoencoder
    from samod.data import read_metadata, split_records

    facts = run_facts()  # the code that trains, not the code that is checked out when it ends
    profile = profile or get_profile()
    folder = profile.checkpoint_dir / "reference" / "autoencoder"
    recipe = AutoencoderRecipe.for_profile(profile.name)
    recipe = replace(recipe, steps=steps or recipe.steps)
    _, held_out = split_records(read_metadata(profile.corpus_dir / "metadata.jsonl"))
    log_path = folder / "curve.json"
    curve = json.loads(log_path.read_text()) if log_path.exists() else []
    start = time.time() - (curve[-1]["wall_minutes"] * 60 if curve else 0.0)
    done = curve[-1]["step"] if curve else 0
    model = None
    for target in [*range(done + evaluate_every, recipe.steps, evaluate_every), recipe.steps]:
        if target <= done:
            continue
        model, _ = train_autoencoder(replace(recipe, steps=target), profile, progress=True, folder=folder)
        rows, details = table5(model, held_out[:files], progress=False)
        vae, lowpass = rows[0], rows[1]
        point = {"step": target, "wall_minutes": (time.time() - start) / 60,
                 "audio_hours": target * recipe.batch_size * recipe.crop_samples / recipe.model.sample_rate / 3600,
                 "identification": vae["identification"], "specificity_ratio": vae["specificity_ratio"],
                 "silence_gap_db": details[vae["model"]]["silence_gap_db"],
                 "stft_distance": vae["stft_distance"], "mel_distance": vae["mel_distance"],
                 "lowpass_stft_distance": lowpass["stft_distance"], "lowpass_mel_distance": lowpass["mel_distance"]}
        curve.append(point)
        log_path.write_text(json.dumps(curve, indent=1) + "\n")
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in point.items()}), flush=True)
    if model is None:  # nothing left to train: load the finished run
        model, _ = train_autoencoder(recipe, profile, progress=False, folder=folder)
    info = {"stage": "autoencoder", "profile": profile.name, **facts, "seed": profile.seed,
            "steps": recipe.steps, "audio_hours": curve[-1]["audio_hours"], "wall_minutes": curve[-1]["wall_minutes"],
            "recipe": json.loads(json.dumps(asdict(recipe))), "weights": "EMA, float16",
            "held_out_files": files, "final": curve[-1], "curve": curve}
    return save_reference("autoencoder", model.state_dict(), info, profile)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train a profile's reference weights from scratch "
                                                 "(or resume) and export them to samod/weights/<profile>/.")
    parser.add_argument("stage", choices=["autoencoder"])
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    parser.add_argument("--evaluate-every", type=int, default=250, help="steps between measurements")
    args = parser.parse_args(argv)
    path = train_reference_autoencoder(args.steps, args.evaluate_every)
    print(f"wrote {path} and {path.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
