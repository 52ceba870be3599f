"""Evaluation of text-to-music models: prompts, renders, the metric columns of Tables 2-3.

Paper 1 §4.1: one render per prompt of the Song Describer Dataset (no-singing subset, 586 prompts),
at two output lengths per model: the references' length (2 min, the generation trimmed, §2.3) and the
model's maximum (3 m 10 s pre-trained, Table 2; 4 m 45 s fine-tuned, Table 3). Columns: FD_openl3 ↓,
KL_passt ↓, CLAP score ↑ and the inference time per render.

samod rebuilds those tables at the active profile with its own prompts (held-out corpus songs, or the
Song Describer CSV when the user has it) and two baselines that put the numbers in scale:

- the VAE reconstruction of the reference songs: what the decoder gives back of the real songs (a
  reference point, not a bound: FD compares embedding distributions, which generations can match better);
- generation with shuffled prompts: every render answers another song's prompt, so a model that
  follows its text scores worse on KL and CLAP score here than with the right prompts.

The metric formulas are in samod/generation_metrics.py, the table writer (metrics.write_table, for a
Scorer's rows) in samod/metrics.py, the networks that embed the audio in samod/embedders.py and the
figure of the rows (display.plot_rows) in samod/display.py; every table names its embedders. Renders
are written under artifacts/<profile>/generated/evaluation/ with the prompts, settings and the DiT
checkpoint's SHA-256, and reused when those match (notebook 08 scores the same renders for
memorization).

Shapes: audio (A, T) stereo 44.1 kHz per file. Taught in notebooks/06_evaluation.ipynb.
"""
from __future__ import annotations

import csv
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from samod.audio import load_audio, save_audio
from samod.generation import SamplingConfig
from samod.generation_metrics import (bootstrap_interval, clap_score, frechet_distance, kl_divergence,
                                      window_logits_mean)
from samod.profiles import SAMPLE_RATE, Profile, get_profile, profile_preset
from samod.train import file_sha256

# Paper 1, footnote 10: Song Describer prompts holding any of these were removed (586 remain).
NO_SINGING_WORDS = ("speech", "speech synthesizer", "hubbub", "babble", "singing", "male", "man", "female",
                    "woman", "child", "kid", "synthetic singing", "choir", "chant", "mantra", "rapping",
                    "humming", "groan", "grunt", "vocal", "vocalist", "singer", "voice", "acapella")
_NO_SINGING = re.compile(r"\b(" + "|".join(re.escape(w) for w in NO_SINGING_WORDS) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class EvalConfig:
    n_prompts: int  # prompts evaluated (one render each per model and length); the paper: 586
    reference_seconds: float  # the references are cut to this, and the short renders trimmed to it (paper: 120)
    steps: int  # sampler steps per render
    sampler: str = SamplingConfig.sampler  # Stable Audio Open's defaults, as generate's
    cfg_scale: float = SamplingConfig.cfg_scale
    seed: int = SamplingConfig.seed  # render i uses seed + i
    crepe_hop: float = 0.25  # seconds between CREPE frames (rows of the FD)

    @staticmethod
    def tiny() -> "EvalConfig":
        # 6 held-out prompts x 10 s: about 3 minutes for every render of the two tables on 2 cores
        return EvalConfig(n_prompts=6, reference_seconds=10.0, steps=10)

    @staticmethod
    def small() -> "EvalConfig":
        return EvalConfig(n_prompts=64, reference_seconds=60.0, steps=50, crepe_hop=0.1)

    @staticmethod
    def paper() -> "EvalConfig":
        return EvalConfig(n_prompts=586, reference_seconds=120.0, steps=100, crepe_hop=0.1)

    @staticmethod
    def for_profile(name: str) -> "EvalConfig":
        return profile_preset(EvalConfig, name)


# ---------------------------------------------------------------------------------------------------
# Prompts and references
# ---------------------------------------------------------------------------------------------------

def is_no_singing(caption: str) -> bool:
    """True when a caption holds none of the paper's vocal words (whole words, any case)."""
    return _NO_SINGING.search(caption) is None


def read_song_describer(csv_path: str | Path, audio_dir: str | Path | None = None,
                        no_singing: bool = True) -> list[dict]:
    """The Song Describer Dataset's captions as evaluation records {id, prompt, track_id, audio_path}.

    The CSV (song_describer.csv) has the columns caption_id, track_id, caption, is_valid_subset,
    familiarity, artist_id, album_id, path, duration; `path` is the audio file relative to the dataset's
    audio folder (the 2-minute excerpts). no_singing=True keeps the paper's no-singing subset.
    """
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"caption_id", "track_id", "caption"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_path} lacks the columns {sorted(missing)}: is it the Song Describer "
                             f"Dataset's song_describer.csv?")
        rows = list(reader)
    records = []
    for row in rows:
        if no_singing and not is_no_singing(row["caption"]):
            continue
        record = {"id": f"sdd_{row['caption_id']}", "prompt": row["caption"].strip(), "track_id": row["track_id"]}
        if audio_dir is not None and row.get("path"):
            record["audio_path"] = str(Path(audio_dir) / row["path"])
        records.append(record)
    return records


def held_out_records(profile: Profile | None = None, n: int | None = None) -> list[dict]:
    """n held-out corpus songs (never trained on), spread over the held-out list, with their prompts."""
    from samod.clap_training import evaluation_prompt
    from samod.data import read_metadata, split_records
    profile = profile or get_profile()
    _, held_out = split_records(read_metadata(profile.corpus_dir / "metadata.jsonl"))
    n = len(held_out) if n is None else n
    if n > len(held_out):
        raise ValueError(f"asked for {n} prompts but the {profile.name} corpus holds {len(held_out)} held-out songs")
    chosen = [held_out[i] for i in np.linspace(0, len(held_out) - 1, n).round().astype(int)]
    return [{**r, "prompt": evaluation_prompt(r)} for r in chosen]


def load_references(records: list[dict], seconds: float) -> list[np.ndarray]:
    """The first `seconds` of each record's audio, (2, T) at 44.1 kHz (zero-padded if shorter)."""
    out = []
    for record in records:
        if "audio_path" not in record:
            raise ValueError(f"record {record.get('id')} has no audio_path: pass audio_dir to read_song_describer")
        audio = load_audio(record["audio_path"], seconds=seconds)  # (2, <= T)
        n = round(seconds * SAMPLE_RATE)
        out.append(np.pad(audio, ((0, 0), (0, n - audio.shape[1])))[:, :n])
    return out


# ---------------------------------------------------------------------------------------------------
# Render sets
# ---------------------------------------------------------------------------------------------------

@dataclass
class RenderSet:
    """Audio scored as one row: renders of a model (or reconstructions), each answering prompts[i]."""
    name: str  # the row's label, e.g. "fine-tuned, 15 s"
    audio: list[np.ndarray]  # (2, T) per prompt
    prompts: list[str]  # the prompt each file should match (for shuffled renders: not the one it got)
    seconds_per_item: float  # inference time per render (wall clock, this machine)
    settings: dict = field(default_factory=dict)


def model_id(profile: Profile, stage: str) -> str:
    """SHA-256 of the file a diffusion stage loads: renders are reused only for the same model."""
    from samod.diffusion import diffusion_weights
    return file_sha256(diffusion_weights(profile, stage).path)


def render_set(pipeline, name: str, prompts: list[str], seconds: float, config: EvalConfig,
               folder: str | Path, model: str, conditioning_prompts: list[str] | None = None,
               progress: bool = True) -> RenderSet:
    """One render per prompt (seed config.seed + i), written to `folder` and reused when settings match.

    model identifies the weights (model_id); conditioning_prompts (default: prompts) are what the
    model is given, while the set is scored against `prompts`. Inference time is measured per render
    (text encoding, sampling and decoding), one render at a time.
    """
    conditioning_prompts = list(conditioning_prompts or prompts)
    settings = {"name": name, "prompts": list(prompts), "conditioning_prompts": conditioning_prompts,
                "seconds": seconds, "steps": config.steps, "sampler": config.sampler, "cfg_scale": config.cfg_scale,
                "seed": config.seed, "model": model}
    folder = Path(folder)
    meta_path = folder / "renders.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta["settings"] == settings and all((folder / f"{i:03d}.flac").exists() for i in range(len(prompts))):
            audio = [load_audio(folder / f"{i:03d}.flac") for i in range(len(prompts))]
            return RenderSet(name, audio, list(prompts), meta["seconds_per_item"], settings)
    folder.mkdir(parents=True, exist_ok=True)
    audio, times = [], []
    for i, prompt in enumerate(tqdm(conditioning_prompts, desc=f"rendering {name}", disable=not progress)):
        started = time.perf_counter()
        out = pipeline.generate(prompt, seconds=seconds, steps=config.steps, cfg_scale=config.cfg_scale,
                                seed=config.seed + i, sampler=config.sampler, progress=False)  # (2, T)
        times.append(time.perf_counter() - started)
        save_audio(folder / f"{i:03d}.flac", out)
        audio.append(load_audio(folder / f"{i:03d}.flac"))  # what was written, so a reused set scores the same
    meta_path.write_text(json.dumps({"settings": settings, "seconds_per_item": float(np.mean(times))}, indent=1))
    return RenderSet(name, audio, list(prompts), float(np.mean(times)), settings)


@torch.no_grad()
def reconstruction_set(autoencoder, references: list[np.ndarray], prompts: list[str],
                       name: str = "VAE reconstruction") -> RenderSet:
    """decode(posterior mean of encode(reference)) for each reference: what the decoder gives back of them."""
    audio, started = [], time.perf_counter()
    device = next(autoencoder.parameters()).device
    for reference in references:
        x = torch.from_numpy(reference)[None].to(device)  # (1, 2, T)
        latents = autoencoder.encode_distribution_chunked(x).chunk(2, dim=1)[0]  # (1, D, L): the mean
        audio.append(autoencoder.decode_chunked(latents)[0, :, :x.shape[-1]].float().cpu().numpy())
    return RenderSet(name, audio, list(prompts), (time.perf_counter() - started) / len(references),
                     {"name": name, "latents": "posterior mean"})


def shuffled(prompts: list[str]) -> list[str]:
    """Each prompt replaced by the next one (a rotation: no render keeps its own prompt)."""
    if len(prompts) < 2:
        raise ValueError("shuffling needs at least two prompts")
    return prompts[1:] + prompts[:1]


# ---------------------------------------------------------------------------------------------------
# Scores and tables
# ---------------------------------------------------------------------------------------------------

@dataclass
class Scorer:
    """The three embedders of a table and the reference set's embeddings (computed once)."""
    fd_embedder: object  # .name, .embed(audio (B, A, T)) -> (rows, F)
    kl_tagger: object  # .name, .logits(audio) -> per file (windows, classes)
    clap: object  # .name, .embed(audio) -> (B, P), .embed_text(prompts) -> (B, P)
    references: list[np.ndarray]  # (2, T) per prompt
    reference_fd_rows: np.ndarray = None
    reference_logits: np.ndarray = None

    def __post_init__(self):
        self.reference_fd_rows = self.embed_fd(self.references)
        self.reference_logits = self.file_logits(self.references)

    def embed_fd(self, audio: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([self.fd_embedder.embed(a[None]) for a in audio])  # (rows, F)

    def file_logits(self, audio: list[np.ndarray]) -> np.ndarray:
        return np.stack([window_logits_mean(self.kl_tagger.logits(a[None])[0]) for a in audio])  # (N, C)

    @property
    def names(self) -> dict:
        return {"FD": self.fd_embedder.name, "KL": self.kl_tagger.name, "CLAP score": self.clap.name}

    def score(self, renders: RenderSet) -> dict:
        """One table row: FD (vs all references), KL (paired with reference i), CLAP score (vs prompt i)."""
        if len(renders.audio) != len(self.references):
            raise ValueError(f"{renders.name} has {len(renders.audio)} files for {len(self.references)} references")
        audio_embeddings = np.concatenate([self.clap.embed(a[None]) for a in renders.audio])  # (N, P)
        kl = kl_divergence(self.file_logits(renders.audio), self.reference_logits, per_item=True)  # (N,)
        clap = clap_score(audio_embeddings, self.clap.embed_text(renders.prompts), per_item=True)  # (N,)
        return {"model": renders.name, "seconds": round(renders.audio[0].shape[-1] / SAMPLE_RATE, 2),
                "FD": frechet_distance(self.embed_fd(renders.audio), self.reference_fd_rows),
                "KL": float(kl.mean()), "KL interval": bootstrap_interval(kl),
                "CLAP score": float(clap.mean()), "CLAP score interval": bootstrap_interval(clap),
                "inference seconds": renders.seconds_per_item, "n": len(renders.audio), "source": "measured",
                "per prompt": {"KL": kl.tolist(), "CLAP score": clap.tolist()}}


def paired_margin(row: dict, baseline: dict, key: str) -> dict:
    """row minus baseline on `key` ("KL" or "CLAP score"), prompt by prompt (the same prompts in both):
    the mean difference and its 95 % bootstrap interval."""
    difference = np.asarray(row["per prompt"][key]) - np.asarray(baseline["per prompt"][key])  # (N,)
    low, high = bootstrap_interval(difference)
    return {"difference": float(difference.mean()), "low": low, "high": high}
