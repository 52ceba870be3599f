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

The metric formulas are in samod/generation_metrics.py, the networks that embed the audio in
samod/embedders.py, the figure of the rows (display.plot_rows) in samod/display.py. A Scorer's rows
become Tables 2-3's columns here (`generation_columns`, GENERATION_HEADER) and are written by
samod/tables.py's write_table; every table names its embedders. Renders are written under
artifacts/<profile>/generated/evaluation/ with the prompts, settings and the DiT checkpoint's SHA-256,
and reused when those match (notebook 08 scores the same renders for memorization).

Does the output follow the request? `timing_adherence` measures how quiet a generation is after
seconds_total (paper 1 §2.3), at lengths the training songs have (`length_quartiles`);
`prompt_adherence` whether a render matches its own prompt better than another's, in CLAP's space,
and the zero-shot genre of the renders. `table1_parameters` counts paper 1 Table 1 from the code.

Sections: 1. prompts and references, 2. render sets, 3. scores and tables (Tables 2-3), 4. timing and prompt
adherence, 5. Table 1. Shapes: audio (A, T) stereo 44.1 kHz per file. Taught in
notebooks/06_evaluation.ipynb (Table 1 in notebooks/03_dit.ipynb).
"""
from __future__ import annotations

import csv
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import ClapModel

from samod import chroma
from samod.audio import load_audio, save_audio
from samod.autoencoder import Autoencoder, AutoencoderConfig
from samod.checkpoints import count_parameters
from samod.clap import ClapModelConfig
from samod.clap_evaluation import evaluation_prompt, genre_prompts
from samod.data import read_metadata, split_records
from samod.dit import DiT, DiTConfig, TimingConditioner
from samod.generation import Pipeline, SamplingConfig
from samod.generation_metrics import (bootstrap_interval, clap_score, frechet_distance, kl_divergence,
                                      window_logits_mean, zero_shot_predictions)
from samod.profiles import SAMPLE_RATE, Profile, get_profile, profile_preset
from samod.tables import table_format
from samod.train import file_sha256
from samod.weights import diffusion_weights

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
        # 6 held-out prompts x 10 s and 10 solver steps: every render of the two tables on a CPU; the profile's guidance
        return EvalConfig(n_prompts=6, reference_seconds=10.0, steps=10, cfg_scale=SamplingConfig.tiny().cfg_scale)

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
# 1. Prompts and references
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
# 2. Render sets
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
# 3. Scores and tables (Tables 2-3)
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


GENERATION_HEADER = ("model", "output length", "FD ↓", "KL ↓", "CLAP score ↑", "inference time")  # Tables 2-3


def _with_interval(row: dict, key: str) -> str:
    interval = row.get(f"{key} interval")  # the 95 % bootstrap interval, when the row has one
    return f"{row[key]:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


@table_format("FD")
def generation_columns(rows: list[dict]) -> tuple[tuple[str, ...], list[list[str]]]:
    """Tables 2-3's header and cells for samod.tables.markdown_table (rows of Scorer.score): GENERATION_HEADER's
    columns, KL and CLAP score with their bootstrap interval."""
    return GENERATION_HEADER, [[row["model"], f"{row['seconds']:g} s", f"{row['FD']:.2f}", _with_interval(row, "KL"),
                                _with_interval(row, "CLAP score"), f"{row['inference seconds']:.2f} s"]
                               for row in rows]


def paired_margin(row: dict, baseline: dict, key: str) -> dict:
    """row minus baseline on `key` ("KL" or "CLAP score"), prompt by prompt (the same prompts in both):
    the mean difference and its 95 % bootstrap interval."""
    difference = np.asarray(row["per prompt"][key]) - np.asarray(baseline["per prompt"][key])  # (N,)
    low, high = bootstrap_interval(difference)
    return {"difference": float(difference.mean()), "low": low, "high": high}


# ----------------------------------------------------------------------------------------------------
# 4. Does the output follow the request? Length and prompt, measured on generations

def length_quartiles(records: list[dict], window_seconds: float) -> list[float]:
    """The lower and upper quartiles of the songs' lengths (`seconds`), rounded to whole seconds and at
    most two thirds of the window (room for the silence after them): lengths that a DiT trained on these
    songs has learned to end at (seconds_total is each song's length; a request shorter than every
    training song asks it to extrapolate)."""
    if not records:
        raise ValueError("length_quartiles needs the training songs' records (each with 'seconds')")
    quartiles = np.percentile([r["seconds"] for r in records], [25, 75])
    return sorted({float(min(round(q), round(2 * window_seconds / 3))) for q in quartiles})


def timing_adherence(pipeline: Pipeline, prompts: list[str], lengths: list[float], steps: int = 20, seed: int = 0,
                     sampler: str = "dpmpp-2m", margin_seconds: float = 0.5, **settings) -> dict:
    """How quiet the model is after seconds_total: per prompt and length, the RMS of the untrimmed window
    after seconds_total + margin_seconds over the RMS before seconds_total, in dB (paper 1 §2.3: the
    model writes silence after the requested length). A model that ignores the timing scores ~0 dB.
    Other keywords (cfg_scale, sigma_min, ...) go to the sampler, as in `Pipeline.generate`."""
    rows = []
    for seconds in lengths:
        audio = pipeline.generate(prompts, seconds=seconds, steps=steps, seed=seed, sampler=sampler, trim=False,
                                  progress=False, **settings)
        cut, margin = round(seconds * SAMPLE_RATE), round(margin_seconds * SAMPLE_RATE)
        for prompt, a in zip(prompts, audio):
            before, after = np.sqrt(np.mean(a[:, :cut] ** 2)), np.sqrt(np.mean(a[:, cut + margin:] ** 2))
            rows.append({"prompt": prompt, "seconds_total": seconds, "rms_before": float(before),
                         "rms_after": float(after),
                         "after_vs_before_db": float(20 * np.log10((after + 1e-12) / (before + 1e-12)))})
    return {"median_after_vs_before_db": float(np.median([r["after_vs_before_db"] for r in rows])),
            "prompts": len(prompts), "lengths": list(lengths), "steps": steps, **settings, "rows": rows}


@torch.no_grad()
def prompt_adherence(pipeline: Pipeline, prompts: list[str], seconds: float = 5.0, steps: int = 20, seed: int = 0,
                     sampler: str = "dpmpp-2m", labels: list[int] | None = None, genres: list[str] | None = None,
                     clap=None, batch_size: int = 16, clip_seconds: float | None = None, harmony: bool = False,
                     **settings) -> dict:
    """Does a generation match its own prompt better than another's? One render per prompt; `clap`
    (default: the pipeline's text encoder, a samod CLAP) embeds renders and prompts; the difference
    between a render's similarity to its own prompt and to the next prompt's (a shuffle that never
    keeps a prompt), with a 95 % bootstrap interval over prompts. With `labels` (index into `genres`
    per prompt), also the zero-shot genre accuracy of the renders (chance 1 / len(genres); `genre_majority`:
    what naming the labels' most frequent genre for every render would score) and each render's predicted
    genre index (`genre_predicted`).
    Renders are made `batch_size` prompts at a time (seed + batch index), `seconds` long (seconds_total:
    ask for a length the model trained on, see `length_quartiles`); with `clip_seconds`, only the middle
    clip_seconds of each render are decoded and embedded. Give the length of the crops CLAP trained on
    (ClapRecipe.crop_seconds): audio longer than CLAP's window is heard through fusion (a global view and local
    windows), shorter audio without it, and a CLAP trained on fused crops classifies unfused audio poorly.
    With `harmony`, also each render's chroma clarity and movement (`samod.chroma.harmony`, lists under
    "harmony"): do the renders hold notes, read against the corpus's range (`samod.chroma.inside_range`)?
    Other keywords (cfg_scale, ...) go to the sampler, as in `Pipeline.generate`."""
    clap = clap or pipeline.text_encoder
    rate, margin = pipeline.latent_rate, pipeline.autoencoder.config.chunk_overlap // 2  # what chunking crops
    clip_seconds = min(clip_seconds or seconds, seconds)
    first = math.floor((seconds - clip_seconds) / 2 * rate)  # latent frames of the middle clip
    last = first + math.ceil(clip_seconds * rate)
    started = time.perf_counter()
    renders = []
    for k in range(0, len(prompts), batch_size):
        latents = pipeline.generate_latents(prompts[k:k + batch_size], seconds, steps=steps, seed=seed + k // batch_size,
                                            sampler=sampler, progress=False, **settings)  # (b, D, L)
        lo, hi = max(first - margin, 0), min(last + margin, latents.shape[-1])  # a margin decodes the clip exactly
        audio = pipeline.decode(latents[..., lo:hi])  # (b, A, (hi - lo) * 2048)
        start = (first - lo) * pipeline.autoencoder.config.downsampling
        renders += list(audio[..., start:start + round(clip_seconds * SAMPLE_RATE)].float().cpu())
    render_seconds = time.perf_counter() - started
    audio = torch.stack(renders)  # (prompts, A, clip samples)
    audio_emb = F.normalize(clap.audio_embeddings(audio, generator=torch.Generator().manual_seed(seed)), dim=-1)
    text_emb = F.normalize(clap.text_embeddings(prompts), dim=-1)
    n = len(prompts)
    other = torch.roll(torch.arange(n), 1)  # render i against prompt i - 1
    own = clap_score(audio_emb.numpy(), text_emb.numpy(), per_item=True)  # (n,) cosine with its own prompt
    shuffled = clap_score(audio_emb.numpy(), text_emb[other].numpy(), per_item=True)  # (n,) with another song's
    difference = own - shuffled
    low, high = bootstrap_interval(difference)
    result = {"prompts": n, "seconds": seconds, "clip_seconds": clip_seconds, "steps": steps, "own": float(own.mean()),
              "shuffled": float(shuffled.mean()), "difference": float(difference.mean()),
              "difference_low": low, "difference_high": high,
              "render_spread": float(audio.std(dim=0).mean()),  # 0 when every prompt gives the same audio
              "render_seconds": render_seconds, "differences": difference.tolist()}
    if labels is not None:
        classes = torch.stack([F.normalize(clap.text_embeddings(genre_prompts(g)).mean(dim=0), dim=0) for g in genres])
        predicted = zero_shot_predictions(audio_emb, classes).tolist()  # (n,) genre index per render
        counts = np.bincount(labels, minlength=len(genres))
        result.update({"genre_accuracy": float(np.mean(np.equal(predicted, labels))), "genre_chance": 1 / len(genres),
                       # what naming the prompts' most frequent genre for every render would score
                       "genre_majority": float(counts.max() / len(labels)), "genre_predicted": predicted})
    if harmony:
        measured = [chroma.harmony(render) for render in audio]
        result["harmony"] = {k: [m[k] for m in measured] for k in chroma.HARMONY}
    return result


GENRE_READINGS = {  # what a model's genre accuracies on training and held-out songs' prompts say, by `genre_reading`
    "no genres": "does not make the genres yet, not even those of the songs it trained on",
    "memorised": "makes the genres of songs it trained on, and those of new songs less often: it has memorised "
                 "songs more than it has learned what a genre sounds like",
    "generalises": "makes the genres of new songs about as often as those of songs it trained on",
}


def genre_reading(seen: dict, held: dict, gap: float = 0.1) -> str:
    """Which reading of GENRE_READINGS holds for two `prompt_adherence` results with genre labels: `seen` on
    prompts of training songs, `held` on prompts of held-out songs. "no genres" when the training songs' renders
    are named right less than 3x chance; "memorised" when the held-out songs' renders are named right `gap` or
    more less often than those; else "generalises"."""
    if seen["genre_accuracy"] < 3 * seen["genre_chance"]:
        return "no genres"
    return "memorised" if seen["genre_accuracy"] - held["genre_accuracy"] > gap else "generalises"


# ----------------------------------------------------------------------------------------------------
# 5. Paper 1 Table 1: parameter counts

PAPER_TABLE1 = {"DiT": 1.1e9, "AE": 157e6, "CLAP": 125e6, "Total": 1.3e9}  # paper 1 Table 1 as printed: 1.1B, ...


def table1_parameters(preset: str) -> dict[str, int]:
    """Paper 1 Table 1 counted from the code at a preset ("tiny", "small", "paper"): the DiT, the AE, CLAP
    (its text tower: the only part of CLAP the generator uses) and their Total, plus "timing", the two
    timing embedders of DiffusionModel, which the table leaves out. Built on the meta device: no memory."""
    if preset not in ("tiny", "small", "paper"):
        raise ValueError(f"preset must be 'tiny', 'small' or 'paper', got {preset!r}")
    with torch.device("meta"):  # shapes only: nothing is allocated
        dit = DiT(getattr(DiTConfig, preset)())
        counts = {"DiT": count_parameters(dit),
                  "AE": count_parameters(Autoencoder(getattr(AutoencoderConfig, preset)())),
                  "CLAP": count_parameters(ClapModel(getattr(ClapModelConfig, preset)().to_transformers()).text_model)}
        timing = count_parameters(TimingConditioner(dit.config.cond_dim))
    return {**counts, "Total": sum(counts.values()), "timing": timing}
