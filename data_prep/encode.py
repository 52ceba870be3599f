"""Encode a corpus once with the trained VAE: the latent cache the diffusion transformer trains on.

    python -m data_prep.encode [--split train|all] [--batch-seconds 60]

reads the active profile's corpus (samod/profiles.py) and its trained autoencoder, and writes
<profile>/cache/latents/:

    info.json                 the autoencoder it was made with (SHA-256 of its encoder and file; latent channels, rate)
    <id>.safetensors          per song: mean and std (D, L) of the VAE posterior, float32
    silence.safetensors       mean and std (D,) of the VAE's encoding of digital silence
    index.jsonl               the song records (corpus metadata) plus latent_path and frames

Why mean and std, not one latent: the diffusion model trains on samples z0 = mean + std * noise of the
posterior (as stable-audio-tools, which encodes on the fly), and a fresh sample per step is free once
mean and std are stored.

Why a silence latent: training windows are zero-padded audio at the end (the model must learn to
write silence after seconds_total). In latent space, zero audio is the VAE's encoding of silence,
which is not the zero vector; the latent dataset pads with this frame (samod.data.LatentDataset).

Rerunning skips songs already encoded with the same autoencoder; a cache made with another
autoencoder is refused with advice (delete the folder or pass --force). Taught in
notebooks/04_diffusion_training.ipynb.

`reconstruct_corpus` writes every song as the VAE reconstructs it (<id>.flac, index.jsonl, info.json): a
metric network that only heard rendered songs may judge the VAE's artifacts instead of the music, so the
reference CLAP trains on these too (samod.reference; notebook 02 measures the difference).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from data_prep.common import write_jsonl
from samod.audio import load_audio, save_audio
from samod.autoencoder import Autoencoder, vae_bottleneck
from samod.data import LATENT_INDEX, LATENT_INFO, SILENCE_LATENT, read_metadata, split_records
from samod.profiles import Profile, get_profile
from samod.train import file_sha256
from samod.weights import autoencoder_checkpoint, encoder_sha256, load_autoencoder

SILENCE_SECONDS = 5.0  # long enough that the middle frame is far from both edges (receptive field ~ +-10 frames)


@torch.inference_mode()
def posterior(autoencoder: Autoencoder, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, T) audio -> mean, std (D, L) of the VAE posterior (chunked: any length)."""
    h = autoencoder.encode_distribution_chunked(audio[None])  # (1, 2D, L)
    _, mean, std, _ = vae_bottleneck(h)
    return mean[0], std[0]  # (D, L) each


@torch.inference_mode()
def silence_latent(autoencoder: Autoencoder) -> tuple[torch.Tensor, torch.Tensor]:
    """mean, std (D,) on the CPU of the posterior of silence: the middle frame of SILENCE_SECONDS of zeros."""
    device = next(autoencoder.parameters()).device
    zeros = torch.zeros(2, round(SILENCE_SECONDS * autoencoder.config.sample_rate), device=device)  # (A, T)
    mean, std = posterior(autoencoder, zeros)  # (D, L)
    middle = mean.shape[1] // 2
    return mean[:, middle].cpu().clone(), std[:, middle].cpu().clone()


def encode_corpus(autoencoder: Autoencoder, autoencoder_checkpoint: str | Path, metadata: str | Path,
                  out_dir: str | Path, split: str = "train", force: bool = False,
                  progress: bool = True, max_songs: int | None = None) -> list[dict]:
    """Write the latent cache of a corpus (see the module docstring); returns the index records.

    max_songs keeps the first songs of the split only (a profile's diffusion_songs).
    """
    if split not in ("train", "all"):
        raise ValueError(f"split must be 'train' (the songs the DiT trains on) or 'all', got {split!r}")
    out_dir = Path(out_dir)
    info = {"encoder_sha256": encoder_sha256(autoencoder_checkpoint),  # what the latents depend on
            "autoencoder_sha256": file_sha256(autoencoder_checkpoint),  # the file that wrote them
            "latent_channels": autoencoder.config.latent_dim, "latent_rate": autoencoder.config.latent_rate,
            "downsampling": autoencoder.config.downsampling, "sample_rate": autoencoder.config.sample_rate,
            "metadata": str(Path(metadata).resolve())}
    info_path = out_dir / LATENT_INFO
    if info_path.exists() and not force:
        old = json.loads(info_path.read_text())
        same_file = old.get("autoencoder_sha256") == info["autoencoder_sha256"]  # caches written before encoder_sha256
        if old.get("encoder_sha256", info["encoder_sha256"] if same_file else None) != info["encoder_sha256"]:
            raise RuntimeError(f"{out_dir} holds latents of another autoencoder's encoder (SHA-256 "
                               f"{old.get('encoder_sha256', '?')[:12]}..., now {info['encoder_sha256'][:12]}...): "
                               f"delete the folder or pass force=True (--force) to re-encode everything")
    elif info_path.exists() and force:
        for old_file in out_dir.glob("*.safetensors"):
            old_file.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps(info, indent=1))

    records = read_metadata(metadata)
    if split == "train":
        records, _ = split_records(records)
    records = records[:max_songs]  # max_songs None: all
    autoencoder = autoencoder.eval()
    mean, std = silence_latent(autoencoder)
    save_file({"mean": mean.contiguous(), "std": std.contiguous()}, str(out_dir / SILENCE_LATENT))
    index = []
    for record in tqdm(records, desc="encoding songs", disable=not progress):
        path = out_dir / f"{record['id']}.safetensors"
        if path.exists():
            with safe_open(str(path), framework="pt") as f:
                frames = f.get_slice("mean").get_shape()[1]  # read the header only
        else:
            audio = torch.from_numpy(load_audio(record["audio_path"]))  # (A, T)
            mean, std = posterior(autoencoder, audio)  # (D, L) each
            tmp = path.with_name(path.name + ".tmp")
            save_file({"mean": mean.contiguous(), "std": std.contiguous()}, str(tmp))
            tmp.replace(path)  # appears whole or not at all: an interrupted run redoes only this song
            frames = mean.shape[1]
        entry = {k: v for k, v in record.items() if k != "audio_path"}
        index.append({**entry, "audio_path": record["audio_path"], "latent_path": path.name, "frames": frames})
    write_jsonl(out_dir / LATENT_INDEX, index)
    return index


RECONSTRUCTION_INFO = "info.json"  # the autoencoder the reconstructions were made with
RECONSTRUCTION_INDEX = "index.jsonl"  # the song records with audio_path pointing at the reconstruction


def reconstruct_corpus(autoencoder: Autoencoder, autoencoder_checkpoint: str | Path, metadata: str | Path,
                       out_dir: str | Path, progress: bool = True) -> list[dict]:
    """Write every song of a corpus as the VAE reconstructs it (posterior mean, decoded, trimmed to the
    song's length) to out_dir/<id>.flac, with index.jsonl (the corpus records, audio_path pointing at the
    reconstruction) and info.json (the autoencoder's checkpoint SHA-256). Rerunning skips songs already
    written by the same autoencoder; another autoencoder's folder is refused. Returns the index records.

    What for: a metric network trained on real audio only may judge the VAE's artifacts instead of the
    music, and every generation is decoded by the VAE (the reference CLAP also trains on these).
    """
    out_dir = Path(out_dir)
    info = {"autoencoder_sha256": file_sha256(autoencoder_checkpoint), "metadata": str(Path(metadata).resolve())}
    info_path = out_dir / RECONSTRUCTION_INFO
    if info_path.exists():
        old = json.loads(info_path.read_text())
        if old.get("autoencoder_sha256") != info["autoencoder_sha256"]:
            raise RuntimeError(f"{out_dir} holds reconstructions by another autoencoder (checkpoint SHA-256 "
                               f"{old.get('autoencoder_sha256', '?')[:12]}..., now {info['autoencoder_sha256'][:12]}...): "
                               f"delete the folder to reconstruct the corpus again")
    out_dir.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps(info, indent=1))
    autoencoder = autoencoder.eval()
    index = []
    for record in tqdm(read_metadata(metadata), desc="reconstructing songs", disable=not progress):
        path = out_dir / f"{record['id']}.flac"
        if not path.exists():
            audio = torch.from_numpy(load_audio(record["audio_path"]))  # (A, T)
            mean, _ = posterior(autoencoder, audio)  # (D, L)
            with torch.inference_mode():
                decoded = autoencoder.decode_chunked(mean[None])[0, :, :audio.shape[1]]  # (A, T)
            tmp = path.with_name(path.stem + ".tmp.flac")
            save_audio(tmp, decoded.numpy())
            tmp.replace(path)  # appears whole or not at all
        index.append({**record, "audio_path": str(path), "original_path": record["audio_path"]})
    write_jsonl(out_dir / RECONSTRUCTION_INDEX, index)
    return index


def encode_profile(profile: Profile | None = None, split: str = "train", force: bool = False,
                   progress: bool = True) -> Path:
    """Encode the profile's corpus with its trained autoencoder; returns the cache folder."""
    profile = profile or get_profile()
    autoencoder = load_autoencoder(profile)
    out_dir = profile.cache_dir / "latents"
    encode_corpus(autoencoder, autoencoder_checkpoint(profile), profile.corpus_dir / "metadata.jsonl",
                  out_dir, split=split, force=force, progress=progress, max_songs=profile.diffusion_songs)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="train", choices=["train", "all"],
                        help="encode the training split (default) or every song")
    parser.add_argument("--force", action="store_true", help="re-encode everything (after retraining the VAE)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    out = encode_profile(split=args.split, force=args.force, progress=not args.no_progress)
    print(f"latents in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
