"""Evaluating CLAP: text-to-audio and audio-to-text retrieval, zero-shot genre classification.

Paper 1 §2.4 trains CLAP for two jobs: its text tower conditions the DiT, and its audio-text space
scores prompt adherence. `evaluate_clap` measures both on held-out songs: text-to-audio and
audio-to-text Recall@1/@10 (each song's full-metadata prompt, `evaluation_prompt`, against a crop
from its middle) and zero-shot genre accuracy (the nearest genre embedding, each the mean over the
forms of `genre_prompts`, as CLIP's prompt ensembles). The formulas (Recall@k, zero-shot accuracy)
are in samod/generation_metrics.py; training is in samod/clap_training.py.

Shapes (glossary): B batch, A audio channels (2), T samples, N songs, K genres, P projection width.
Taught in notebooks/02_clap.ipynb.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from samod.clap import ClapEncoder
from samod.data import load_middle, prompt_fields
from samod.generation_metrics import recall_at_k, zero_shot_accuracy
from samod.profiles import SAMPLE_RATE

RETRIEVAL_NUMBERS = ("text_to_audio_r1", "text_to_audio_r10", "audio_to_text_r1", "audio_to_text_r10",
                     "zero_shot_genre_accuracy")  # the numbers of evaluate_clap that rank songs and genres


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
        batch = [torch.from_numpy(load_middle(r, crop_seconds)) for r in records[i:i + batch_size]]
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
