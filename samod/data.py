"""Training data: metadata records, text prompts built from them, and cropped audio windows.

Paper 1 (Stable Audio 2, long-form music) §3.1 and Stable Audio Open §3.2 train the CLAP text encoder
and the DiT on prompts made from each file's metadata: "concatenating a random subset of the metadata
as a string", list values shuffled, half of the prompts with the metadata type and '|' between fields
("Instruments: Guitar, Drums|Moods: Uplifting"), half without types and ', ' between values
("Guitar, Drums, Uplifting"), and random upper/lower case. A prompt can then name any subset of
properties at inference, none of them being required. `build_prompt` implements these rules; the
probabilities the papers leave open are the constants below.

`SongDataset` pairs each prompt with a training window of the song (paper 1 §3.2: 190 s windows for
pre-training, 285 s for fine-tuning): long songs are cropped at a uniform random start, short ones are
zero-padded at the end, and the timing conditioning values `seconds_start` / `seconds_total` (paper 1
§2.3, as in stable-audio-tools) come with every item. Files that cannot be used (corrupt, empty,
unreadable, silent) are skipped with a one-line reason and never stop a training run.

`LatentDataset` is the same for the diffusion transformer, in latent space: windows of the songs'
VAE posteriors cached by data_prep/encode.py, a fresh posterior sample per item, padded at the end
with the VAE's encoding of silence (what zero-padded audio becomes in latent space).

Shapes: audio is (audio channels = 2, samples), latents (D latent channels, L frames).
Taught in notebooks/00_data.ipynb (audio) and notebooks/04_diffusion_training.ipynb (latents).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from samod.audio import SILENCE_PEAK, AudioError, load_audio, probe
from samod.profiles import SAMPLE_RATE

# ----------------------------------------------------------------------------------------------------
# Metadata

def read_metadata(path: str | Path) -> list[dict]:
    """Read a metadata.jsonl file: one record (JSON object) per line; blank lines are ignored.

    Each record keeps its `path` as written and gains `audio_path`: the absolute path of its audio
    file as a string, with a relative `path` resolved against the folder that holds metadata.jsonl;
    a record with a `midi` file (the corpus keeps each song's score) gains `midi_path` the same way.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no metadata file at {path}; render a corpus first "
                                f"(python -m data_prep.synth) or pass the path of a metadata.jsonl")
    records = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {line_number}: not valid JSON ({err.msg} at column {err.colno}); "
                             f"each line must hold one complete JSON object") from None
        if not isinstance(record, dict) or "path" not in record or "seconds" not in record:
            raise ValueError(f"{path}, line {line_number}: expected a JSON object with at least "
                             f"'path' and 'seconds', got {line[:80]!r}")
        audio_path = Path(record["path"])
        record["audio_path"] = str(audio_path if audio_path.is_absolute() else (path.parent / audio_path).resolve())
        if record.get("midi"):
            midi_path = Path(record["midi"])
            record["midi_path"] = str(midi_path if midi_path.is_absolute() else (path.parent / midi_path).resolve())
        records.append(record)
    return records


def load_middle(record: dict, seconds: float) -> np.ndarray:
    """The middle `seconds` of a record's song, (2, samples) (the whole song when it is shorter)."""
    return load_audio(record["audio_path"], start=max(0.0, (record["seconds"] - seconds) / 2), seconds=seconds)


def split_records(records: list[dict], every: int = 8) -> tuple[list[dict], list[dict]]:
    """(training, held-out): every `every`-th record (in file order) is held out for evaluation.

    Deterministic and stable when a corpus grows: the same songs stay held out. Every stage uses
    this split, so no model is evaluated on songs it was trained on.
    """
    if every < 2:
        raise ValueError(f"every must be at least 2 (hold out 1 record in `every`), got {every}")
    held_out = [r for i, r in enumerate(records) if i % every == every - 1]
    training = [r for i, r in enumerate(records) if i % every != every - 1]
    return training, held_out


# ----------------------------------------------------------------------------------------------------
# Prompts (paper 1 §3.1, Stable Audio Open §3.2)

# (name printed in a prompt, record key). Genre..Key come with every corpus song; Tags..Year only
# with real data (Stable Audio Open §3.2: Freesound tags and titles, FMA year, album, title, artist).
PROMPT_FIELDS = (("Genre", "genre"), ("Instruments", "instruments"), ("Moods", "moods"), ("BPM", "bpm"),
                 ("Key", "key"), ("Tags", "tags"), ("Title", "title"), ("Artist", "artist"),
                 ("Album", "album"), ("Year", "year"))
CAPTION_PROB = 0.5  # a record with a caption is prompted by its caption (unchanged) this often
NAMED_PROB = 0.5  # "Name: value|Name: value" this often, else "value, value" (paper: half and half)
# case transformations of the metadata string and their probabilities (papers: "upper and lower case")
CASE_WEIGHTS = {"keep": 0.5, "lower": 0.25, "upper": 0.125, "title": 0.125}


def prompt_fields(record: dict) -> dict[str, str | list[str]]:
    """The usable metadata of a record, by prompt name: {"Genre": "bossa nova", "Instruments": [...]}.

    None, empty strings and empty lists are unavailable and left out; BPM is printed as an integer.
    """
    fields: dict[str, str | list[str]] = {}
    for name, key in PROMPT_FIELDS:
        value = record.get(key)
        if key == "bpm" and value is not None:
            value = str(int(round(float(value)))) if float(value) > 0 else None
        elif key == "year" and isinstance(value, (int, float)):
            value = str(int(value))
        if isinstance(value, (list, tuple)):
            value = [str(v).strip() for v in value if v is not None and str(v).strip()]
        elif value is not None:
            value = str(value).strip()
        if value:
            fields[name] = value
    return fields


def _shuffled(items: list, generator: torch.Generator) -> list:
    """A uniformly random permutation of `items`."""
    return [items[i] for i in torch.randperm(len(items), generator=generator).tolist()]


def _title_case(text: str) -> str:
    """Capitalise the first letter of every word ("a minor" -> "A Minor", "can't" stays "Can't")."""
    return re.sub(r"(?<![\w'])[a-z]", lambda m: m.group(0).upper(), text)


def change_case(text: str, generator: torch.Generator) -> str:
    """Keep, lower-case, upper-case or title-case `text`, drawn with the CASE_WEIGHTS probabilities."""
    weights = torch.tensor(list(CASE_WEIGHTS.values()))  # (4,)
    case = list(CASE_WEIGHTS)[torch.multinomial(weights, 1, generator=generator).item()]
    return {"keep": text, "lower": text.lower(), "upper": text.upper(), "title": _title_case(text)}[case]


def build_prompt(record: dict, generator: torch.Generator) -> str:
    """A random text prompt for one training example (paper 1 §3.1, Stable Audio Open §3.2).

    1. A record with a `caption` returns it unchanged with probability CAPTION_PROB (the papers pair
       natural-language descriptions with metadata); otherwise, or without a caption:
    2. a random non-empty subset of `prompt_fields(record)` in random order: a size k uniform in
       1..n, then the first k fields of a random permutation;
    3. list values (instruments, moods, tags) shuffled;
    4. with probability NAMED_PROB "Genre: bossa nova|Instruments: flute, nylon guitar|BPM: 133",
       else "bossa nova, flute, nylon guitar, 133";
    5. the whole string kept, lower-, upper- or title-cased (`change_case`, CASE_WEIGHTS).

    Only `generator` is used for randomness: the same generator state gives the same prompt.
    A record with nothing usable gives "", which the DiT treats like a prompt dropped by
    classifier-free-guidance dropout: an empty context.
    """
    caption = str(record.get("caption") or "").strip()
    if caption and torch.rand(1, generator=generator).item() < CAPTION_PROB:
        return caption
    fields = prompt_fields(record)
    if not fields:
        return caption  # "" when the record has neither metadata nor caption
    k = torch.randint(1, len(fields) + 1, (1,), generator=generator).item()
    names = _shuffled(list(fields), generator)[:k]
    values = {name: _shuffled(fields[name], generator) if isinstance(fields[name], list) else [fields[name]]
              for name in names}
    if torch.rand(1, generator=generator).item() < NAMED_PROB:
        text = "|".join(f"{name}: {', '.join(values[name])}" for name in names)
    else:
        text = ", ".join(v for name in names for v in values[name])
    return change_case(text, generator)


# ----------------------------------------------------------------------------------------------------
# Dataset

class SongDataset(Dataset):
    """Training windows of songs with their prompts and timing conditioning.

    Item i is a dict:
        audio          float32 tensor (2, window_samples): the window, zero-padded at the end
        padding_mask   bool tensor (window_samples,): True on samples that come from the file
        seconds_start  float: where the window starts in the file, in seconds (to within one sample)
        seconds_total  int: ceil(file seconds), as stable-audio-tools' timing conditioning
        prompt         str: `build_prompt(record)`
        id             the record's id

    Randomness (crop start and prompt) comes from a torch.Generator seeded with (seed, epoch, index)
    (`item_generator`): an item is the same every time it is read in one epoch, in any worker process,
    and changes with `set_epoch(e)`, which a training loop calls before each epoch. DataLoader workers
    get a copy of the dataset when their iterator starts, so call set_epoch before iterating, and with
    persistent_workers=True the workers keep the epoch they started with.

    Bad files: a file that cannot be read (corrupt, empty, missing) or that is silent as a whole is
    skipped, its one-line reason printed once and stored in `skipped` (id -> reason), and the next
    usable item is returned instead. A silent window of a non-silent file is fine; only a silent
    window triggers the whole-file check (`probe`), so music pays nothing for it. In DataLoader worker
    processes `skipped` is filled in the worker's copy: the parent never sees it. To get the list in
    the parent, call `check_files()` once before training: it probes every file and drops bad ones.
    """

    def __init__(self, metadata: str | Path | list[dict], window_seconds: float,
                 sample_rate: int = SAMPLE_RATE, seed: int = 0, random_crop: bool = True):
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds}; "
                             f"use e.g. get_profile().pretrain_seconds")
        # records given as a list use `audio_path` when present, else `path` as it is
        self.records = (read_metadata(metadata) if isinstance(metadata, (str, Path))
                        else [{**r, "audio_path": str(r.get("audio_path") or r["path"])} for r in metadata])
        if not self.records:
            raise ValueError(f"no records in {metadata if isinstance(metadata, (str, Path)) else 'the list'}; "
                             f"a dataset needs at least one song")
        self.window_seconds = float(window_seconds)
        self.sample_rate = sample_rate
        self.window_samples = int(round(window_seconds * sample_rate))
        self.seed = seed
        self.random_crop = random_crop
        self.epoch = 0
        self.skipped: dict[str, str] = {}  # id -> one-line reason, filled in this process

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Draw new crops and prompts: every item depends on (seed, epoch, index)."""
        self.epoch = epoch

    def item_generator(self, index: int) -> torch.Generator:
        """The generator of item `index` in the current epoch; distinct for index, epoch < 1_000_003."""
        m = 1_000_003  # a prime larger than any index or epoch count: (seed, epoch, index) -> one integer
        return torch.Generator().manual_seed(((self.seed * m + self.epoch) * m + index) % 2**63)

    def __getitem__(self, index: int) -> dict:
        n = len(self.records)
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} songs")
        for step in range(n):  # item `index`, else the next usable one (wrapping around)
            j = (index + step) % n
            record = self.records[j]
            if self._key(record) in self.skipped:
                continue
            try:
                return self._load_item(j)
            except AudioError as err:
                self._skip(record, str(err))
        raise AudioError(f"no usable audio file: all {n} files of this dataset were skipped "
                         f"(reasons in dataset.skipped); check the corpus folder, or re-render it")

    def _load_item(self, index: int) -> dict:
        record = self.records[index]
        generator = self.item_generator(index)
        seconds = float(record["seconds"])
        u = torch.rand(1, generator=generator).item()  # drawn always, so prompts don't depend on random_crop
        seconds_start = u * max(seconds - self.window_seconds, 0.0) if self.random_crop else 0.0
        audio = load_audio(record["audio_path"], seconds_start, self.window_seconds,
                           self.sample_rate)  # (2, about window_samples or fewer)
        audio = audio[:, :self.window_samples]  # (2, n_valid)
        if not np.isfinite(audio).all():
            raise AudioError(f"non-finite samples (NaN or inf) in {Path(record['audio_path']).name}")
        if audio.shape[1] == 0 or np.abs(audio).max() < SILENCE_PEAK:
            probe(record["audio_path"])  # a silent window: raises if the whole file is silent or empty
        n_valid = audio.shape[1]
        window = np.zeros((2, self.window_samples), dtype=np.float32)  # (2, window_samples)
        window[:, :n_valid] = audio  # zero padding at the end
        return {
            "audio": torch.from_numpy(window),  # (2, window_samples)
            "padding_mask": torch.arange(self.window_samples) < n_valid,  # (window_samples,)
            "seconds_start": seconds_start,
            "seconds_total": math.ceil(seconds),
            "prompt": build_prompt(record, generator),
            "id": record.get("id", record["audio_path"]),
        }

    @staticmethod
    def _key(record: dict) -> str:
        return str(record.get("id", record["audio_path"]))

    def _skip(self, record: dict, reason: str) -> None:
        key = self._key(record)
        if key not in self.skipped:
            self.skipped[key] = " ".join(reason.split())
            print(f"skipped {key}: {self.skipped[key]}", flush=True)

    def check_files(self, skipped_path: str | Path | None = None, progress: bool = True) -> list[tuple[str, str]]:
        """Probe every file once, drop the unusable ones; return, print and optionally write them.

        `skipped_path` gets one "<id>\\t<reason>" line per dropped file (the format of data_prep's
        skipped.txt). Reads every file in full: run it once before training, not every epoch.
        """
        bad = []
        for record in tqdm(self.records, desc="checking audio files", disable=not progress):
            try:
                probe(record["audio_path"])
            except AudioError as err:
                bad.append((self._key(record), " ".join(str(err).split())))
        bad_keys = {key for key, _ in bad}
        self.records = [r for r in self.records if self._key(r) not in bad_keys]
        self.skipped.update(bad)
        if bad:
            print(f"{len(bad)} of {len(bad) + len(self.records)} file(s) skipped:")
            for key, reason in bad:
                print(f"  {key}: {reason}")
        if skipped_path is not None:
            Path(skipped_path).write_text("".join(f"{key}\t{reason}\n" for key, reason in bad), encoding="utf-8")
        if not self.records:
            raise AudioError(f"no usable audio file: all {len(bad)} files of this dataset are unusable "
                             f"(listed above); check the corpus folder, or re-render it")
        return bad


# ----------------------------------------------------------------------------------------------------
# Latent windows for the diffusion transformer (cache written by data_prep/encode.py)

LATENT_INDEX = "index.jsonl"  # one record per encoded song: corpus metadata + latent_path + frames
LATENT_INFO = "info.json"  # the autoencoder the cache was made with
SILENCE_LATENT = "silence.safetensors"  # mean, std (D,) of the VAE posterior of silence


class LatentDataset(Dataset):
    """Training windows of cached VAE latents with prompts and timing conditioning.

    Item i is a dict:
        latents        float32 tensor (D, window_frames): a posterior sample mean + std * noise of the
                       window, padded at the end with samples of the silence posterior, divided by `scale`
        padding_mask   bool tensor (window_frames,): True on frames that come from the song
        seconds_start  float: window start in seconds (start frame / latent rate)
        seconds_total  int: ceil(song seconds), as SongDataset
        prompt         str: `build_prompt(record)`
        id             the record's id

    Crops, noise and prompts come from the item's generator (seed, epoch, index), as SongDataset:
    an item is reproducible, which exact resumption of training relies on.
    """

    def __init__(self, cache_dir: str | Path, window_frames: int, seed: int = 0, random_crop: bool = True,
                 records: list[dict] | None = None, scale: float = 1.0):
        cache_dir = Path(cache_dir)
        if not scale > 0:
            raise ValueError(f"scale must be positive (latents are divided by it), got {scale}")
        if not (cache_dir / LATENT_INDEX).exists():
            raise FileNotFoundError(f"no latent cache in {cache_dir}: encode the corpus first with "
                                    f"`python -m data_prep.encode` (or data_prep.encode.encode_profile())")
        if window_frames < 1:
            raise ValueError(f"window_frames must be at least 1, got {window_frames}")
        self.cache_dir = cache_dir
        self.info = json.loads((cache_dir / LATENT_INFO).read_text())
        self.records = records if records is not None else [
            json.loads(line) for line in (cache_dir / LATENT_INDEX).read_text(encoding="utf-8").splitlines() if line]
        if not self.records:
            raise ValueError(f"{cache_dir / LATENT_INDEX} lists no songs")
        silence = load_file(str(cache_dir / SILENCE_LATENT))
        self.silence_mean, self.silence_std = silence["mean"], silence["std"]  # (D,) each
        self.latent_rate = float(self.info["latent_rate"])
        self.window_frames, self.seed, self.random_crop, self.epoch = window_frames, seed, random_crop, 0
        self.scale = scale  # latents are divided by it (DiffusionRecipe.latent_scale)
        self._posteriors: dict[str, dict[str, torch.Tensor]] = {}  # loaded on first use, kept in memory

    @property
    def latent_channels(self) -> int:
        return int(self.info["latent_channels"])

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    item_generator = SongDataset.item_generator

    def posterior(self, record: dict) -> dict[str, torch.Tensor]:
        key = record["latent_path"]
        if key not in self._posteriors:
            self._posteriors[key] = load_file(str(self.cache_dir / key))  # mean, std (D, L)
        return self._posteriors[key]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.records):
            raise IndexError(f"index {index} out of range for a dataset of {len(self.records)} songs")
        record, generator = self.records[index], self.item_generator(index)
        u = torch.rand(1, generator=generator).item()
        prompt = build_prompt(record, generator)
        post = self.posterior(record)
        frames, window = post["mean"].shape[1], self.window_frames
        start = int(u * max(frames - window, 0)) if self.random_crop else 0
        n_valid = min(window, frames - start)
        mean = self.silence_mean[:, None].repeat(1, window)  # (D, W): silence everywhere ...
        std = self.silence_std[:, None].repeat(1, window)
        mean[:, :n_valid] = post["mean"][:, start:start + n_valid]  # ... except where the song is
        std[:, :n_valid] = post["std"][:, start:start + n_valid]
        noise = torch.randn(mean.shape, generator=generator)  # (D, W)
        return {
            "latents": (mean + std * noise) / self.scale,  # (D, W): z0, a posterior sample, scaled
            "padding_mask": torch.arange(window) < n_valid,  # (W,)
            "seconds_start": start / self.latent_rate,
            "seconds_total": math.ceil(float(record["seconds"])),
            "prompt": prompt,
            "id": record.get("id", record["latent_path"]),
        }


def latent_std(cache_dir: str | Path) -> float:
    """The standard deviation of every cached posterior mean (all songs, channels and frames together)."""
    cache_dir = Path(cache_dir)
    records = [json.loads(line) for line in (cache_dir / LATENT_INDEX).read_text(encoding="utf-8").splitlines() if line]
    means = [load_file(str(cache_dir / r["latent_path"]))["mean"].double() for r in records]
    count = sum(m.numel() for m in means)
    mu = sum(m.sum() for m in means) / count
    return float((sum(((m - mu) ** 2).sum() for m in means) / count).sqrt())
