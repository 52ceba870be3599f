"""Generation metrics: retrieval, the columns of Tables 2-3, and musical activity.

Paper 1 §4.1 scores generations with stable-audio-metrics (github.com/Stability-AI/stable-audio-metrics):
a Frechet distance on openl3 frames (FD_openl3), the KL divergence between PaSST tag distributions of a
generation and its reference (KL_passt), and the CLAP score, the cosine similarity between a generation
and its prompt in LAION-CLAP's space. The formulas live here, on embeddings and logits; the networks
that make them are in samod/embedders.py, the prompts, renders and scoring in samod/evaluation.py.

Sections: 1. retrieval (CLAP, paper 1 §2.4: Recall@k, zero-shot accuracy, bootstrap intervals),
2. generation metrics (Tables 2-3: Frechet distance, KL divergence, CLAP score) on embeddings,
3. musical activity (onset rate and spectral flux of a generation vs its genre's songs). The
autoencoder's reconstruction metrics (Table 5) are in samod/metrics.py; Tables 2-3 as tables in
samod/evaluation.py, written by samod/tables.py.

Shapes: audio is (channels, samples) stereo at 44.1 kHz, as everywhere in samod.
Taught in notebooks/06_evaluation.ipynb (Tables 2-3), notebooks/05_sampling.ipynb (musical activity)
and notebooks/02_clap.ipynb (retrieval, through clap_evaluation.evaluate_clap).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from scipy import linalg

from samod.profiles import SAMPLE_RATE


# ---------------------------------------------------------------------------------------------------
# 1. Retrieval (CLAP, paper 1 §2.4): how well do audio and text embeddings find each other?
# ---------------------------------------------------------------------------------------------------

def recall_at_k(similarity: torch.Tensor, k: int) -> float:
    """Share of rows whose matching column (the diagonal) is among the row's k most similar.

    `similarity` is (N, N) with similarity[i, j] = query i vs candidate j and the match of i at j = i
    (text-to-audio: rows are texts; audio-to-text: pass the transpose). Chance is k / N.
    """
    n = similarity.shape[0]
    if similarity.ndim != 2 or similarity.shape[1] != n:
        raise ValueError(f"expected a square (queries, candidates) matrix, got {tuple(similarity.shape)}")
    own = similarity.diagonal()[:, None]  # (N, 1)
    rank = (similarity > own).sum(dim=1)  # candidates strictly better than the match; ties favour it
    return float((rank < k).float().mean())


def bootstrap_interval(values, level: float = 0.95, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (resampled with replacement `draws` times)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 values, got {values.size}")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(draws, values.size))].mean(axis=1)  # (draws,)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def zero_shot_predictions(audio_embeddings: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
    """The class of each audio embedding (N, E): the index of its most similar class embedding (K, E). (N,)"""
    return (audio_embeddings @ class_embeddings.T).argmax(dim=1)


def zero_shot_accuracy(audio_embeddings: torch.Tensor, class_embeddings: torch.Tensor,
                       labels: list[int]) -> float:
    """Classify each audio embedding (N, E) by its most similar class embedding (K, E); accuracy vs labels."""
    predicted = zero_shot_predictions(audio_embeddings, class_embeddings)  # (N,)
    return float((predicted == torch.as_tensor(labels)).float().mean())


# ---------------------------------------------------------------------------------------------------
# 2. Generation metrics (paper 1 §4.1, Tables 2-3): FD_openl3, KL_passt, CLAP score
# ---------------------------------------------------------------------------------------------------
#
# The three columns of Tables 2-3, as stable-audio-metrics (github.com/Stability-AI/stable-audio-metrics)
# computes them. Each compares embeddings or logits; the models that make them (openl3, PaSST,
# LAION-CLAP) sit behind an Embedder, and every table names the embedder its numbers came from,
# since an FD on openl3 and an FD on another network are different quantities.

@runtime_checkable
class Embedder(Protocol):
    """What a generation metric needs from an audio model: a name for the table, and embeddings.

    name:  what the numbers were measured with, e.g. "openl3 mel256 music 512, L|R, hop 0.5 s".
    embed: (batch, channels, samples) audio at 44.1 kHz -> (rows, features) array. The embedder
           resamples, downmixes and normalises as its metric prescribes; one row per frame for
           openl3 (FD), per file for PaSST logits (KL) and LAION-CLAP (CLAP score).
    """

    name: str

    def embed(self, audio: torch.Tensor) -> np.ndarray: ...


def _as_matrix(x, what: str, min_rows: int = 1) -> np.ndarray:
    """Tensor or array -> float64 (rows, features) array, or a ValueError naming `what`."""
    x = np.ascontiguousarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float64)  # any strides
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (rows, features) array, got shape {x.shape}; "
                         f"a single row needs x[None]")
    if x.shape[0] < min_rows:
        raise ValueError(f"{what} has {x.shape[0]} rows but needs at least {min_rows}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} holds NaN or inf values; check the embedder's input audio")
    return x


def _same_features(a: np.ndarray, b: np.ndarray, what_a: str, what_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{what_a} has {a.shape[1]} features but {what_b} has {b.shape[1]}; "
                         f"both sides must come from the same embedder")


def gaussian_stats(x) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of embeddings x (N, F), as FD fits them: (mu (F,), Sigma (F, F)).

        mu    = 1/N sum_i x_i
        Sigma = 1/(N-1) sum_i (x_i - mu)(x_i - mu)^T      (np.cov's unbiased default)
    """
    x = _as_matrix(x, "embeddings", min_rows=2)  # (N, F)
    mu = x.mean(axis=0)  # (F,)
    sigma = np.atleast_2d(np.cov(x, rowvar=False))  # (F, F); atleast_2d keeps F = 1 a matrix
    return mu, sigma


def frechet_distance_from_stats(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray,
                                sigma_b: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu_a, Sigma_a) and N(mu_b, Sigma_b) (Dowson & Landau 1982):

        FD = |mu_a - mu_b|^2 + Tr(Sigma_a + Sigma_b - 2 (Sigma_a Sigma_b)^{1/2})

    (Sigma_a Sigma_b)^{1/2} is scipy.linalg.sqrtm in float64. Its eigenvalues are those of
    Sigma_a^{1/2} Sigma_b Sigma_a^{1/2}, real and >= 0, so any imaginary part is rounding error and
    only the real part is kept. If the product is singular and sqrtm returns inf or NaN, eps * I is
    added to both covariances first, as the FID reference (pytorch-fid) and stable-audio-metrics do.
    """
    mu_a, mu_b = np.atleast_1d(np.asarray(mu_a, np.float64)), np.atleast_1d(np.asarray(mu_b, np.float64))
    sigma_a = np.atleast_2d(np.asarray(sigma_a, np.float64))
    sigma_b = np.atleast_2d(np.asarray(sigma_b, np.float64))
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape or sigma_a.shape != mu_a.shape * 2:
        raise ValueError(f"mismatched Gaussians: mu {mu_a.shape} vs {mu_b.shape}, Sigma {sigma_a.shape} "
                         f"vs {sigma_b.shape}; both need (F,) means and (F, F) covariances of one F")
    diff = mu_a - mu_b  # (F,)
    covmean = linalg.sqrtm(sigma_a @ sigma_b)  # (F, F), possibly complex
    if not np.isfinite(covmean).all():  # singular product: regularise, as the FID reference does
        offset = eps * np.eye(sigma_a.shape[0])  # (F, F)
        covmean = linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(covmean))


def frechet_distance(a, b, eps: float = 1e-6) -> float:
    """FD between Gaussians fitted to two embedding sets a (N, F) and b (M, F); 0 when they match.

        FD = |mu_a - mu_b|^2 + Tr(Sigma_a + Sigma_b - 2 (Sigma_a Sigma_b)^{1/2})

    with mu, Sigma from `gaussian_stats` (N-1 denominator). FD_openl3 in Tables 2-3 is this on openl3
    frames (every 0.5 s frame of every file one row, L and R concatenated to 1024 features); a is the
    generated set, b the reference, though the distance is symmetric. With fewer rows than features
    the covariances are singular: the number is finite (see frechet_distance_from_stats) but noisy,
    so keep N well above F for a number worth reporting.
    """
    a = _as_matrix(a, "a (first embedding set)", min_rows=2)  # (N, F)
    b = _as_matrix(b, "b (second embedding set)", min_rows=2)  # (M, F)
    _same_features(a, b, "a (first embedding set)", "b (second embedding set)")
    return frechet_distance_from_stats(*gaussian_stats(a), *gaussian_stats(b), eps=eps)


def window_logits_mean(logits) -> np.ndarray:
    """Average a file's classifier logits over its analysis windows: (W, C) -> (C,).

    KL_passt runs PaSST on 10 s windows with a 5 s hop and averages the logits (not the
    probabilities) before the softmax, as stable-audio-metrics' return_probabilities(collect='mean').
    """
    logits = _as_matrix(logits, "window logits (windows, classes)", min_rows=1)  # (W, C)
    return logits.mean(axis=0)  # (C,)


def kl_divergence_probs(p, q, eps: float = 0.0) -> np.ndarray:
    """Per-item KL(p || q) of probability rows p (N, C) and q (N, C): an (N,) array, each >= 0.

        KL(p || q) = sum_c p_c (log p_c - log(q_c + eps))

    with 0 log 0 = 0. eps = 0 gives the exact divergence (KL(p || p) = 0); stable-audio-metrics adds
    eps = 1e-6 to the reference probabilities, which lowers each value by about C * 1e-6 at most.
    """
    p = _as_matrix(p, "p (probabilities)")  # (N, C)
    q = _as_matrix(q, "q (probabilities)")  # (N, C)
    if p.shape != q.shape:
        raise ValueError(f"p has shape {p.shape} but q has shape {q.shape}; pass one q row per p row")
    for name, x in (("p", p), ("q", q)):
        if (x < 0).any() or not np.allclose(x.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError(f"{name} rows must be probabilities (>= 0, summing to 1); "
                             f"for logits use kl_divergence, which applies the softmax")
    with np.errstate(divide="ignore"):
        log_ratio = np.log(p) - np.log(q + eps)  # (N, C); -inf - x where p_c = 0, masked next
    return np.where(p > 0, p * log_ratio, 0.0).sum(axis=1)  # (N,)


def kl_divergence(generated_logits, reference_logits, eps: float = 0.0, per_item: bool = False):
    """KL_passt: mean over items of KL(P_generated || P_reference), with P = softmax(logits).

        p_i = softmax(generated_logits[i]),  q_i = softmax(reference_logits[i])
        KL_i = sum_c p_ic (log p_ic - log q_ic)
        KL   = 1/N sum_i KL_i

    Rows pair up: generated i answers the prompt of reference i. Logits are (N, C) (C = 527 AudioSet
    classes for PaSST), each row already averaged over windows (window_logits_mean). The direction is
    stable-audio-metrics' (src/passt_kld.py, passt_kld: F.kl_div((ref_p + 1e-6).log(), eval_p,
    reduction='sum'), and torch's kl_div(log q, p) is KL(p || q)): the generated distribution is the
    first argument, so classes the generation predicts but the reference lacks are punished hardest.
    eps = 1e-6 reproduces its reference offset; the default 0 computes the exact divergence in log
    space. per_item=True returns the (N,) values instead of their mean.
    """
    generated = _as_matrix(generated_logits, "generated_logits (items, classes)")  # (N, C)
    reference = _as_matrix(reference_logits, "reference_logits (items, classes)")  # (N, C)
    if generated.shape != reference.shape:
        raise ValueError(f"generated_logits has shape {generated.shape} but reference_logits has shape "
                         f"{reference.shape}; pass one reference row per generated row, same classes")
    log_p = torch.log_softmax(torch.from_numpy(generated), dim=1)  # (N, C)
    if eps > 0:
        log_q = torch.log(torch.softmax(torch.from_numpy(reference), dim=1) + eps)  # (N, C)
    else:
        log_q = torch.log_softmax(torch.from_numpy(reference), dim=1)  # (N, C)
    p = log_p.exp()  # (N, C)
    kl = torch.where(p > 0, p * (log_p - log_q), 0.0).sum(dim=1).numpy()  # (N,); 0 log 0 = 0
    return kl if per_item else float(kl.mean())


def clap_score(audio_embeddings, text_embeddings, per_item: bool = False):
    """CLAP score: mean cosine similarity between each audio and the text of its own prompt.

        score = 1/N sum_i <a_i, t_i> / (|a_i| |t_i|)      in [-1, 1], higher is better

    audio_embeddings[i] (N, P) is the generation for prompt i, text_embeddings[i] (N, P) that prompt,
    both from one CLAP model (Tables 2-3: LAION-CLAP 630k-audioset-fusion, audio at 48 kHz mono).
    Rows are normalised here, so raw projections may be passed. per_item=True returns the (N,) values.
    """
    a = _as_matrix(audio_embeddings, "audio_embeddings (items, dim)")  # (N, P)
    t = _as_matrix(text_embeddings, "text_embeddings (items, dim)")  # (N, P)
    if a.shape != t.shape:
        raise ValueError(f"audio_embeddings has shape {a.shape} but text_embeddings has shape {t.shape}; "
                         f"pass one prompt embedding per audio, from the same CLAP model")
    norm_a, norm_t = np.linalg.norm(a, axis=1), np.linalg.norm(t, axis=1)  # (N,), (N,)
    if (norm_a == 0).any() or (norm_t == 0).any():
        raise ValueError("an embedding is all zeros, so its cosine similarity is undefined; "
                         "check that the audio is not silent and the prompt not empty")
    cosine = (a * t).sum(axis=1) / (norm_a * norm_t)  # (N,)
    return cosine if per_item else float(cosine.mean())


# ---------------------------------------------------------------------------------------------------
# 3. Musical activity: is a generation as busy as the music it imitates?
# ---------------------------------------------------------------------------------------------------
#
# A drone has almost no onsets and no spectral flux; noise has flux but no onsets that repeat; notes
# have both. Comparing a generation's onset rate and mean spectral flux with the range of corpus songs
# of its genre asks whether it moves like that music (not whether it sounds like it).

def activity(audio, sample_rate: int = SAMPLE_RATE, hop: int = 512) -> dict:
    """Onset rate (onsets per second, librosa's onset detector) and mean spectral flux (librosa's onset
    strength: the positive log-mel difference between frames, averaged over frames) of (2, T) audio."""
    import librosa  # librosa: heavy to import (numba), needed only for onsets
    mono = np.asarray(audio, dtype=np.float32).mean(axis=0)  # (T,)
    if not np.isfinite(mono).all() or mono.size < 4 * hop:
        raise ValueError(f"activity needs finite audio of at least {4 * hop} samples, got {mono.size}")
    flux = librosa.onset.onset_strength(y=mono, sr=sample_rate, hop_length=hop)  # (frames,)
    onsets = pick_peaks(flux, frames_per_second=sample_rate / hop)
    return {"onset_rate": len(onsets) / (mono.size / sample_rate), "spectral_flux": float(flux.mean())}


def pick_peaks(envelope, frames_per_second: float, delta: float = 0.07) -> np.ndarray:
    """Onset frames of an onset-strength envelope, with librosa.onset.onset_detect's default rule
    (its numba kernel crashes on some machines): the envelope scaled to [0, 1]; a frame is an onset
    when it is the maximum of the 30 ms before it, exceeds the mean of the 100 ms around it by
    `delta`, and comes at least 30 ms after the previous onset. Unlike librosa, an envelope whose
    range is under 1 (librosa's onset strength is in dB: under 1 dB of change) is not stretched to
    [0, 1], so the ripple of a steady tone is not read as onsets."""
    env = np.asarray(envelope, dtype=np.float64)
    env = (env - env.min()) / max(np.ptp(env), 1.0)
    pre_max, pre_avg, post_avg, wait = (max(1, round(s * frames_per_second)) for s in (0.03, 0.10, 0.10, 0.03))
    onsets, last = [], -wait - 1
    for n in range(len(env)):
        local_max = env[n] >= env[max(0, n - pre_max):n + 2].max()
        above_mean = env[n] >= env[max(0, n - pre_avg):n + post_avg + 1].mean() + delta
        if local_max and above_mean and n - last > wait:
            onsets.append(n)
            last = n
    return np.array(onsets, dtype=int)


def activity_range(audio_list: list, sample_rate: int = SAMPLE_RATE) -> dict:
    """Min and max of `activity` over songs (e.g. the corpus songs of one genre)."""
    values = [activity(a, sample_rate) for a in audio_list]
    return {key: (min(v[key] for v in values), max(v[key] for v in values)) for key in values[0]}
