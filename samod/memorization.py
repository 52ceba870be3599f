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
That check also tests the embedding: one that maps different songs as close together as replicas
cannot find replicas, and `replica_check` says so, so that another embedder can be tried (notebook 08
tries CLAP first, as the paper, then the frame statistics of CREPE, `FrameStatistics`).

Embeddings are centred on the training set's mean before cosines are taken (`centred`): what every
song shares (the corpus's common sound) then does not count as similarity.

Embeddings are (N, P) rows, unit-normalised here. The histogram of nearest-training-song similarities is
drawn by samod/display.py (`plot_nearest_similarity`). Taught in notebooks/08_memorization.ipynb.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from samod.audio import load_audio
from samod.train import file_sha256


def _unit_rows(x, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{what} must be a non-empty (items, dim) array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    if (norms == 0).any():
        raise ValueError(f"{what} holds an all-zero embedding (silent audio?): cosine similarity is undefined")
    return x / norms


class FrameStatistics:
    """Song vectors from a frame embedder (e.g. CrepeEmbedder): the mean and std of its frames, concatenated."""

    def __init__(self, frame_embedder):
        self.frame_embedder = frame_embedder
        self.name = f"mean and std over frames of {frame_embedder.name.split(':')[0]}"

    def embed_files(self, files: list[np.ndarray]) -> np.ndarray:
        """Files (A, T) -> (N, 2F)."""
        rows = [self.frame_embedder.embed(f[None]) for f in files]  # N x (frames, F)
        return np.stack([np.concatenate([r.mean(axis=0), r.std(axis=0)]) for r in rows])  # (N, 2F)


def centred(x, mean) -> np.ndarray:
    """Embeddings minus the training set's mean embedding (rows (N, P) - (P,))."""
    return np.asarray(x, dtype=np.float64) - np.asarray(mean, dtype=np.float64)


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


def replica_check(train_embeddings, replica_embeddings, originals: list[int]) -> dict:
    """Can these embeddings tell replicas from different songs?

    replica_embeddings[k] is a replica of training song originals[k]. Returns the cosines of each
    replica with its original, of every pair of different training songs, and the threshold between
    them (None when the two overlap: this embedding cannot find replicas).
    """
    similarity = cosine_matrix(train_embeddings, train_embeddings)  # (N, N)
    distinct = similarity[np.triu_indices(len(similarity), k=1)]  # (N (N - 1) / 2,)
    replica = (_unit_rows(np.asarray(train_embeddings)[originals], "originals")
               * _unit_rows(replica_embeddings, "replicas")).sum(axis=1)  # (K,)
    try:
        threshold = replica_threshold(replica, distinct)
    except ValueError:
        threshold = None
    return {"replica": replica, "distinct": distinct, "threshold": threshold, "separates": threshold is not None}


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


def read_embedding_cache(path, embedder_name: str) -> dict[str, np.ndarray]:
    """{key: embedding} from a cache written by `TrainingSetSearch.save`; empty when the file is missing or
    was written by another embedder (its rows would be in another space)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with np.load(path) as f:
        if str(f["embedder"]) != embedder_name:
            return {}
        return dict(zip(f["keys"].tolist(), f["rows"]))


class TrainingSetSearch:
    """The training songs closest to new audio, in an embedder's space centred on the training mean: step 2
    of the procedure for one set of generations (the demo page's memorization section).

    TrainingSetSearch(embedder, paths, names) embeds the training songs one file at a time (embedder as in
    notebook 08, e.g. FrameStatistics(CrepeEmbedder())). With `planted`, it also plants replicas of those
    songs (`replica_variant`: -3 dB, 10 ms later) and measures the replica threshold (`replica_check`),
    so that `nearest` can say whether a neighbour is as close as a replica.

    caches: .npz files written by `save`, read in order. A song whose bytes (SHA-256) and embedder match a
    cached row is not embedded again (`reused` counts them); a changed or new file is.
    """

    def __init__(self, embedder, paths: list, names: list[str], planted: int = 8, caches: list = ()):
        if len(paths) != len(names) or len(paths) < 2:
            raise ValueError(f"pass at least two training songs, one name each; got {len(paths)} paths and "
                             f"{len(names)} names")
        self.embedder, self.paths, self.names = embedder, list(paths), list(names)
        stored, self.caches = {}, []  # the caches that held rows of this embedder
        for cache in caches:
            rows_of = read_embedding_cache(cache, embedder.name)
            if rows_of:
                stored.update(rows_of)
                self.caches.append(Path(cache))
        self.embedded: dict[str, np.ndarray] = {}  # key -> embedding: SHA-256 of a song, "<SHA-256> replica"
        self.reused = 0
        rows, replicas = [], []
        originals = list(range(0, len(paths), max(1, len(paths) // planted)))[:planted] if planted else []
        for i, path in enumerate(self.paths):
            sha = file_sha256(path)
            keys = [sha, f"{sha} replica"] if i in originals else [sha]
            if all(k in stored for k in keys):
                self.reused += 1
                found = [stored[k] for k in keys]
            else:
                audio = load_audio(path)  # (A, T), one song in memory at a time
                found = [embedder.embed_files([audio])[0]]
                if i in originals:
                    found.append(embedder.embed_files([replica_variant(audio, gain_db=-3.0, shift_samples=441)])[0])
            self.embedded.update(zip(keys, found))
            rows.append(found[0])
            if i in originals:
                replicas.append(found[1])
        train = np.stack(rows)  # (N, P)
        self.mean = train.mean(axis=0)
        self.train = centred(train, self.mean)
        self.replicas = None
        if planted:
            self.replicas = replica_check(self.train, centred(np.stack(replicas), self.mean), originals)

    def save(self, path, info: dict | None = None) -> Path:
        """Write the embeddings of the training songs (and replicas), keyed by their files' SHA-256 and named by
        the embedder, as an .npz cache for `caches`; `info` (e.g. provenance) is stored beside them as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, embedder=np.array(self.embedder.name), keys=np.array(list(self.embedded)),
                 rows=np.stack(list(self.embedded.values())), info=np.array(json.dumps(info or {})))
        return path

    @property
    def threshold(self) -> float | None:
        """The measured replica threshold, or None when the embedding cannot separate replicas (or none planted)."""
        return self.replicas["threshold"] if self.replicas and self.replicas["separates"] else None

    def nearest(self, files: list[np.ndarray], k: int = 3) -> list[list[dict]]:
        """Per file (A, T): its k closest training songs, [{"index", "name", "path", "similarity"}], closest first."""
        index, cosine = nearest_neighbours(centred(self.embedder.embed_files(files), self.mean), self.train, k)
        return [[{"index": int(i), "name": self.names[i], "path": self.paths[i], "similarity": float(c)}
                 for i, c in zip(row_i, row_c)] for row_i, row_c in zip(index, cosine)]
