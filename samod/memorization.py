"""Memorization: does the model copy its training songs? (paper 1 §4.5)

The paper's procedure, in CLAP audio-embedding space:

1. Embed every training song. Pairs whose cosine similarity is above a threshold are exact
   replicas (the paper sets the threshold by hand so that what it selects are replicas; it found 5566
   repeated songs). Repeated songs are the ones a model is most likely to memorize.
2. Generate from prompts of those training songs (in-distribution) and from evaluation prompts
   (out-of-distribution), embed the generations, and find each one's nearest training songs.
3. Listen to the top-k generations closest to the training set, beside their neighbours.

samod sets the threshold from measured similarities instead of by hand: copies of training songs
that differ only in gain and a small time shift (replicas by construction) against pairs of
different songs; the threshold goes between the two distributions (`replica_threshold`), and the
function refuses when they overlap, since then no threshold separates replicas from neighbours.

Embeddings are (N, P) rows, unit-normalised here. Taught in notebooks/08_memorization.ipynb.
"""
from __future__ import annotations

import numpy as np


def _unit_rows(x, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{what} must be a non-empty (items, dim) array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    if (norms == 0).any():
        raise ValueError(f"{what} holds an all-zero embedding (silent audio?): cosine similarity is undefined")
    return x / norms


def cosine_matrix(a, b) -> np.ndarray:
    """(N, P), (M, P) -> (N, M) cosine similarities."""
    return _unit_rows(a, "a") @ _unit_rows(b, "b").T


def replica_variant(audio: np.ndarray, gain_db: float, shift_samples: int) -> np.ndarray:
    """A replica of a song by construction: the same audio, `gain_db` louder, delayed by `shift_samples`."""
    shifted = np.concatenate([np.zeros_like(audio[:, :shift_samples]), audio[:, :audio.shape[1] - shift_samples]], axis=1)
    return shifted * 10 ** (gain_db / 20)


def replica_threshold(replica_similarities, distinct_similarities) -> float:
    """A cosine threshold between replicas and different songs: the midpoint of the gap between them.

        threshold = (min(replica similarities) + max(distinct similarities)) / 2

    Raises when the two overlap (min replica <= max distinct): no threshold separates them.
    """
    low, high = float(np.min(replica_similarities)), float(np.max(distinct_similarities))
    if low <= high:
        raise ValueError(f"replicas reach down to cosine {low:.4f} but different songs reach up to {high:.4f}: "
                         f"the embedding does not separate them, so no threshold finds replicas only")
    return (low + high) / 2


def duplicate_pairs(embeddings, threshold: float) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cosine) with i < j whose similarity is at least `threshold`, most similar first."""
    similarity = cosine_matrix(embeddings, embeddings)  # (N, N)
    i, j = np.triu_indices(len(similarity), k=1)
    keep = similarity[i, j] >= threshold
    pairs = [(int(a), int(b), float(s)) for a, b, s in zip(i[keep], j[keep], similarity[i, j][keep])]
    return sorted(pairs, key=lambda p: -p[2])


def nearest_neighbours(queries, references, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """For each query its k most similar references: (indices (Q, k), cosines (Q, k)), best first."""
    similarity = cosine_matrix(queries, references)  # (Q, R)
    k = min(k, similarity.shape[1])
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]  # (Q, k)
    return order, np.take_along_axis(similarity, order, axis=1)


def top_candidates(nearest_cosines: np.ndarray, k: int) -> list[int]:
    """The k queries whose nearest reference is closest: the memorization candidates to listen to."""
    best = np.asarray(nearest_cosines)[:, 0]  # (Q,)
    return [int(i) for i in np.argsort(-best, kind="stable")[:k]]


def plot_nearest_similarity(groups: dict[str, np.ndarray], threshold: float | None = None,
                            reference: dict[str, np.ndarray] | None = None):
    """Histograms of nearest-training-song cosine per group of generations: (figure, numbers)."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.4))
    everything = list(groups.values()) + list((reference or {}).values())
    bins = np.linspace(min(float(np.min(v)) for v in everything), 1.0, 30)
    for name, values in groups.items():
        ax.hist(values, bins=bins, alpha=0.6, label=f"{name} (n={len(values)})")
    for name, values in (reference or {}).items():
        ax.hist(values, bins=bins, histtype="step", lw=2, label=f"{name} (n={len(values)})")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", label=f"replica threshold {threshold:.3f}")
    ax.set_xlabel("cosine similarity to the nearest training song (CLAP audio)")
    ax.set_ylabel("songs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    numbers = {name: {"n": len(v), "median": float(np.median(v)), "max": float(np.max(v))}
               for name, v in {**groups, **(reference or {})}.items()}
    return fig, {"threshold": threshold, "nearest_similarity": numbers}
