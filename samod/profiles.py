"""Profiles: one switch for every size of the project.

samod runs the same code at three sizes, chosen by the environment variable ``SAMOD_PROFILE``:

- ``tiny``  (default): sized for a 2-core CPU. What CI runs and what a laptop reader steps through.
- ``small``: sized for one GPU.
- ``paper``: the published sizes of Stable Audio 2 (paper 1, §2-§3).

A profile holds the numbers that are not a single component's: the corpus size, the training
windows of the two diffusion stages, and where each profile keeps its artifacts (corpus, caches,
checkpoints), so that switching profile never overwrites another profile's work. Each component
adds its own config dataclass with ``tiny()`` / ``small()`` / ``paper()`` presets beside its code,
and ``profile_preset`` picks the one named like a profile.

Artifacts live under ``$SAMOD_HOME/<profile>/`` (default ``<repository>/artifacts/<profile>/``)::

    corpus/        the rendered song corpus (data_prep.synth): audio/, midi/, metadata.jsonl
    cache/         derived data (encoded latents, embeddings)
    checkpoints/   trained models, one sub-folder per stage
    figures/       the figures and tables the notebooks write (``$SAMOD_FIGURES`` when set)

The repository's own ``figures/`` holds the committed reference results of the ``tiny`` profile; a run
never writes there unless asked to (``make reference-figures`` sets ``SAMOD_FIGURES`` to it).

Taught in notebooks/00_data.ipynb.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROFILE_ENV = "SAMOD_PROFILE"  # tiny | small | paper
HOME_ENV = "SAMOD_HOME"  # root folder of all artifacts
FIGURES_ENV = "SAMOD_FIGURES"  # folder for figures and tables, overriding <profile root>/figures
REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RATE = 44100  # Hz, stereo, everywhere in samod (paper 1 §2.1)


@dataclass(frozen=True)
class Profile:
    name: str  # tiny | small | paper
    n_songs: int  # songs in the rendered corpus
    min_seconds: float  # shortest corpus song
    max_seconds: float  # longest corpus song
    pretrain_seconds: float  # training window of the first diffusion stage (paper: 190 s)
    finetune_seconds: float  # training window of the second, longer stage (paper: 285 s)
    diffusion_songs: int | None = None  # training songs encoded for the DiT (None: all of them)
    seed: int = 0  # seed of the corpus and of every training run of this profile

    @property
    def root(self) -> Path:
        """Folder holding every artifact of this profile."""
        home = os.environ.get(HOME_ENV)
        return (Path(home) if home else REPO_ROOT / "artifacts") / self.name

    @property
    def corpus_dir(self) -> Path:
        return self.root / "corpus"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def figures_dir(self) -> Path:
        """Where figures and tables are written: $SAMOD_FIGURES when set, else <root>/figures."""
        folder = os.environ.get(FIGURES_ENV)
        return Path(folder) if folder else self.root / "figures"


def tiny() -> Profile:
    # 512 songs of 20-45 s: 448 training songs, and 64 held out, one prompt each for notebook 06's measures of
    # generations (4 prompts of each of 16 songs swung from model to model: docs/experiments.md). A notebook's own
    # DiT trains on 8 of the training songs, so that encoding them stays short on a CPU, and notebook 04's live run
    # (50 + 30 steps x 4 windows) sees each one 40 times (the reference DiT trains on the first ones: its provenance)
    return Profile("tiny", n_songs=512, min_seconds=20.0, max_seconds=45.0,
                   pretrain_seconds=30.0, finetune_seconds=60.0, diffusion_songs=8)


def small() -> Profile:
    # thousands of 1-5 minute songs; windows scaled down from the paper's by 2
    return Profile("small", n_songs=2000, min_seconds=60.0, max_seconds=300.0,
                   pretrain_seconds=95.0, finetune_seconds=190.0)


def paper() -> Profile:
    # paper 1 §3.2: pre-training on 190 s windows, fine-tuning on 285 s (6144 latents)
    return Profile("paper", n_songs=8000, min_seconds=60.0, max_seconds=300.0,
                   pretrain_seconds=190.0, finetune_seconds=285.0)


PRESETS = {"tiny": tiny, "small": small, "paper": paper}


def get_profile(name: str | None = None) -> Profile:
    """The profile called `name`, or the active one (``$SAMOD_PROFILE``, default ``tiny``)."""
    name = (name or os.environ.get(PROFILE_ENV) or "tiny").strip().lower()
    if name not in PRESETS:
        raise ValueError(f"unknown profile {name!r} (from ${PROFILE_ENV}); "
                         f"choose one of {', '.join(PRESETS)}, e.g. `export {PROFILE_ENV}=tiny`")
    return PRESETS[name]()


def profile_preset(cls, name: str | None = None):
    """cls.tiny(), cls.small() or cls.paper(): the preset of a component's config for profile `name`
    (None: the active profile). The name goes through get_profile, so an unknown one says what to choose."""
    return getattr(cls, get_profile(name).name)()
