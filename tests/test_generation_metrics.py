"""Generation metrics (samod/generation_metrics.py): Frechet distance, KL divergence, CLAP score.

Each test checks a formula against a number known in closed form or by hand; no model is loaded.
"""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from samod.generation_metrics import (Embedder, clap_score, frechet_distance, frechet_distance_from_stats,
                                      gaussian_stats, kl_divergence, kl_divergence_probs,
                                      window_logits_mean)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- Frechet distance ---------------------------------------------------------------------------

def test_fd_of_a_set_with_itself_is_zero():
    x = _rng().standard_normal((200, 16))
    assert abs(frechet_distance(x, x)) < 1e-6


def test_fd_of_shifted_unit_gaussians_approaches_squared_mean_shift():
    rng = _rng(1)
    mu = np.array([1.0, -0.5, 0.25, 2.0, 0.0, -1.0, 0.5, 1.5])  # |mu|^2 = 8.625
    a = rng.standard_normal((20000, 8))
    b = rng.standard_normal((20000, 8)) + mu
    assert frechet_distance(a, b) == pytest.approx(mu @ mu, rel=0.02)


def test_fd_is_symmetric():
    rng = _rng(2)
    a = rng.standard_normal((300, 6))
    b = rng.standard_normal((250, 6)) * 2.0 + 0.3
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_fd_accepts_torch_tensors():
    a = _rng(3).standard_normal((50, 4))
    assert frechet_distance(torch.from_numpy(a).float(), a + 1.0) == pytest.approx(4.0, rel=1e-5)


def test_fd_equals_closed_form_for_diagonal_gaussians():
    # For diagonal covariances Tr(S_a + S_b - 2 (S_a S_b)^{1/2}) = sum (s_a - s_b)^2 with s the std devs
    mu_a, mu_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    s_a, s_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 1.5])
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((s_a - s_b) ** 2)  # 5 + 5 = 10
    fd = frechet_distance_from_stats(mu_a, np.diag(s_a ** 2), mu_b, np.diag(s_b ** 2))
    assert fd == pytest.approx(expected, rel=1e-10)
    # the same from samples whose empirical statistics are exactly these (whitened, N-1 denominator)
    z = _rng(4).standard_normal((1000, 3))
    z = (z - z.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    assert frechet_distance(z * s_a + mu_a, z * s_b + mu_b) == pytest.approx(expected, rel=1e-8)


def test_fd_of_rank_deficient_sets_is_finite():
    rng = _rng(5)
    a, b = rng.standard_normal((5, 32)), rng.standard_normal((7, 32))  # N < F: singular covariances
    fd = frechet_distance(a, b)
    assert math.isfinite(fd)
    assert fd > 0


def test_gaussian_stats_uses_unbiased_covariance():
    x = _rng(6).standard_normal((10, 3))
    mu, sigma = gaussian_stats(x)
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(sigma, (x - mu).T @ (x - mu) / 9)


# --- KL divergence --------------------------------------------------------------------------------

def test_kl_of_a_distribution_with_itself_is_zero():
    logits = _rng(7).standard_normal((4, 527)) * 3
    assert abs(kl_divergence(logits, logits)) < 1e-12


def test_kl_of_two_known_two_class_distributions():
    # p = (0.8, 0.2), q = (0.5, 0.5): KL(p || q) = 0.8 ln 1.6 + 0.2 ln 0.4
    p, q = np.array([[0.8, 0.2]]), np.array([[0.5, 0.5]])
    expected = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)  # = 0.19274...
    assert kl_divergence(np.log(p), np.log(q)) == pytest.approx(expected, rel=1e-12)
    assert kl_divergence_probs(p, q)[0] == pytest.approx(expected, rel=1e-12)


def test_kl_is_nonnegative_on_random_logits():
    rng = _rng(8)
    kl = kl_divergence(rng.standard_normal((64, 10)) * 4, rng.standard_normal((64, 10)) * 4, per_item=True)
    assert kl.shape == (64,)
    assert (kl >= 0).all()


def test_kl_is_not_symmetric_and_its_direction_is_generated_given_reference():
    p, q = np.array([[0.9, 0.1]]), np.array([[0.5, 0.5]])
    kl_pq = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)  # KL(p || q) = 0.3681
    kl_qp = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)  # KL(q || p) = 0.5108
    assert kl_divergence(generated_logits=np.log(p), reference_logits=np.log(q)) == pytest.approx(kl_pq)
    assert kl_divergence(generated_logits=np.log(q), reference_logits=np.log(p)) == pytest.approx(kl_qp)
    # the same direction as torch's kl_div(log q, p), which stable-audio-metrics calls
    torch_kl = torch.nn.functional.kl_div(torch.tensor(q).log(), torch.tensor(p), reduction="sum")
    assert kl_pq == pytest.approx(float(torch_kl))


def test_kl_eps_matches_stable_audio_metrics_offset():
    rng = _rng(9)
    g, r = rng.standard_normal((3, 527)), rng.standard_normal((3, 527))
    p, q = torch.softmax(torch.tensor(g), 1), torch.softmax(torch.tensor(r), 1)
    theirs = np.mean([float(torch.nn.functional.kl_div((q[i] + 1e-6).log(), p[i], reduction="sum"))
                      for i in range(3)])
    assert kl_divergence(g, r, eps=1e-6) == pytest.approx(theirs, rel=1e-9)


def test_window_logits_mean_averages_logits_before_the_softmax():
    windows = np.array([[0.0, 2.0, -1.0], [2.0, 0.0, 1.0]])
    np.testing.assert_allclose(window_logits_mean(windows), [1.0, 1.0, 0.0])


# --- CLAP score -----------------------------------------------------------------------------------

def test_clap_score_of_identical_and_opposite_embeddings():
    e = _rng(10).standard_normal((8, 512))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    assert clap_score(e, e) == pytest.approx(1.0, abs=1e-12)
    assert clap_score(e, -e) == pytest.approx(-1.0, abs=1e-12)
    assert clap_score(3 * e, e) == pytest.approx(1.0, abs=1e-12)  # normalised inside


def test_embedder_protocol_names_the_model():
    class Constant:
        name = "constant"

        def embed(self, audio):
            return np.zeros((audio.shape[0], 4))

    assert isinstance(Constant(), Embedder)


# --- bad inputs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: frechet_distance(np.zeros((1, 4)), np.zeros((5, 4))), "at least 2"),
    (lambda: frechet_distance(np.zeros((5, 4)), np.zeros((5, 3))), "features"),
    (lambda: frechet_distance(np.zeros(4), np.zeros((5, 4))), "2-D"),
    (lambda: frechet_distance(np.full((3, 2), np.nan), np.zeros((3, 2))), "NaN"),
    (lambda: frechet_distance_from_stats(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2)), "mismatched"),
    (lambda: kl_divergence(np.zeros((2, 5)), np.zeros((3, 5))), "one reference row"),
    (lambda: kl_divergence_probs(np.array([[0.5, 0.6]]), np.array([[0.5, 0.5]])), "probabilities"),
    (lambda: window_logits_mean(np.zeros((0, 527))), "at least 1"),
    (lambda: clap_score(np.ones((2, 8)), np.ones((3, 8))), "one prompt embedding"),
    (lambda: clap_score(np.zeros((1, 8)), np.ones((1, 8))), "all zeros"),
])
def test_bad_inputs_raise_value_errors_that_say_why(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_reversed_and_strided_arrays_are_accepted():
    logits = np.random.default_rng(0).standard_normal((40, 5))
    assert kl_divergence(logits, logits[::-1]) == pytest.approx(kl_divergence(logits, logits[::-1].copy()), abs=1e-15)
    assert frechet_distance(logits[:, ::-1], logits[:, ::-1].copy()) == pytest.approx(0.0, abs=1e-9)


# --- retrieval (Recall@k, zero-shot accuracy) ----------------------------------------------------

def test_recall_at_k_on_a_known_ranking():
    from samod.generation_metrics import recall_at_k
    sim = torch.tensor([[0.9, 0.1, 0.0],   # match first
                        [0.8, 0.5, 0.1],   # match second
                        [0.7, 0.6, 0.2]])  # match third
    assert recall_at_k(sim, 1) == pytest.approx(1 / 3)
    assert recall_at_k(sim, 2) == pytest.approx(2 / 3)
    assert recall_at_k(sim, 3) == 1.0
    assert recall_at_k(sim.T, 1) == pytest.approx(2 / 3)  # audio-to-text: audio 0 and 2 find their text
    with pytest.raises(ValueError, match="square"):
        recall_at_k(torch.zeros(2, 3), 1)


def test_zero_shot_accuracy():
    from samod.generation_metrics import zero_shot_accuracy, zero_shot_predictions
    classes = torch.eye(3)
    audio = torch.tensor([[1.0, 0.1, 0], [0, 0.2, 1.0], [0, 1.0, 0.3], [1.0, 0, 0]])
    assert zero_shot_accuracy(audio, classes, [0, 2, 1, 1]) == 0.75
    assert zero_shot_predictions(audio, classes).tolist() == [0, 2, 1, 0]


# --- bootstrap interval --------------------------------------------------------------------------

def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_values():
    from samod.generation_metrics import bootstrap_interval
    rng = _rng(3)
    small, large = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 2000)
    low, high = bootstrap_interval(small)
    assert low < small.mean() < high
    big_low, big_high = bootstrap_interval(large)
    assert big_low < 1.0 < big_high and big_high - big_low < (high - low) / 5  # ~ 1 / sqrt(100)
    assert bootstrap_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert bootstrap_interval(small) == bootstrap_interval(small)  # seeded
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_interval([1.0])


# --- length and prompt adherence of generations (samod.generation) -------------------------------

class _TonePipeline:
    """A stand-in pipeline: prompt "tone k" gives a sine of frequency 200 (k + 1) Hz for `seconds`, then
    silence (or, with ignore_timing, the tone to the end of the window; with ignore_prompt, tone 0 always).
    Its "latents" are the audio itself (one frame per sample), so decoding is the identity."""
    window_seconds, latent_rate = 4.0, 44100.0
    autoencoder = SimpleNamespace(config=SimpleNamespace(chunk_overlap=0, downsampling=1))

    def __init__(self, ignore_timing=False, ignore_prompt=False):
        self.ignore_timing, self.ignore_prompt = ignore_timing, ignore_prompt
        self.text_encoder = _ToneClap()

    def generate_latents(self, prompts, seconds, **_):
        t = torch.arange(int(self.window_seconds * 44100)) / 44100
        tones = []
        for prompt in prompts:
            k = 0 if self.ignore_prompt else int(prompt.split()[1])
            tone = torch.sin(2 * np.pi * 200 * (k + 1) * t)
            if not self.ignore_timing:
                tone[t >= seconds] = 0.0
            tones.append(torch.stack([tone, tone]))
        return torch.stack(tones)  # (B, 2, window samples)

    def decode(self, latents):
        return latents

    def generate(self, prompts, seconds, trim=True, **_):
        audio = self.decode(self.generate_latents(prompts, seconds))
        return [a[:, :int(seconds * 44100)].numpy() if trim else a.numpy() for a in audio]


class _ToneClap:
    """Embeds a tone by its strongest of 8 frequencies and "tone k" by k (one-hot vectors); the genre
    "low" covers tones 0-3, "high" tones 4-7."""

    def audio_embeddings(self, audio, generator=None):
        spectrum = torch.fft.rfft(audio[:, 0], n=44100).abs()  # 1 Hz bins
        return torch.nn.functional.one_hot(spectrum[:, 200:1601:200].argmax(dim=1), 8).float()

    def text_embeddings(self, prompts):
        def embed(prompt):
            if "tone" in prompt:
                return torch.nn.functional.one_hot(torch.tensor(int(prompt.split()[1])), 8).float()
            return torch.tensor([1.0] * 4 + [0.0] * 4) if "low" in prompt.lower() else torch.tensor([0.0] * 4 + [1.0] * 4)
        return torch.stack([embed(p) for p in prompts])


def test_timing_adherence_is_large_for_silence_after_the_end_and_zero_when_ignored():
    from samod.evaluation import timing_adherence
    prompts = ["tone 1", "tone 2"]
    follows = timing_adherence(_TonePipeline(), prompts, [1.0, 2.0])
    assert follows["median_after_vs_before_db"] < -100 and len(follows["rows"]) == 4
    ignores = timing_adherence(_TonePipeline(ignore_timing=True), prompts, [1.0, 2.0])
    assert abs(ignores["median_after_vs_before_db"]) < 0.1


def test_timing_is_measured_at_lengths_the_training_songs_have_with_room_for_silence():
    from samod.evaluation import length_quartiles
    songs = [{"seconds": s} for s in (20.0, 24.0, 26.0, 30.0, 34.0, 38.0, 44.0)]  # quartiles 25 and 36
    assert length_quartiles(songs, 60.0) == [25.0, 36.0]
    assert length_quartiles(songs, 30.0) == [20.0]  # both clipped to two thirds of the window
    with pytest.raises(ValueError, match="training songs"):
        length_quartiles([], 60.0)


def test_prompt_adherence_separates_a_model_that_follows_prompts_from_one_that_does_not():
    from samod.evaluation import prompt_adherence
    prompts = [f"tone {k}" for k in range(8)]
    genres = ["low", "high"]
    labels = [k // 4 for k in range(8)]
    follows = prompt_adherence(_TonePipeline(), prompts, seconds=1.0, labels=labels, genres=genres)
    assert follows["own"] == 1.0 and follows["shuffled"] == 0.0
    assert follows["difference_low"] == follows["difference_high"] == 1.0
    assert follows["genre_accuracy"] == 1.0 and follows["genre_chance"] == 0.5
    deaf = prompt_adherence(_TonePipeline(ignore_prompt=True), prompts, seconds=1.0, labels=labels, genres=genres)
    assert deaf["genre_accuracy"] == 0.5 and deaf["genre_predicted"] == [0] * 8  # every render classified "low"
    assert follows["genre_predicted"] == labels
    assert deaf["genre_majority"] == 0.5  # naming one genre for all: half the labels
    unequal = prompt_adherence(_TonePipeline(ignore_prompt=True), prompts, seconds=1.0, labels=[0] * 6 + [1] * 2,
                               genres=genres)
    assert unequal["genre_accuracy"] == unequal["genre_majority"] == 0.75  # the constant scores the majority share
    assert deaf["difference"] == 0.0 and deaf["difference_low"] < 0 < deaf["difference_high"]
    assert deaf["render_spread"] == 0.0 and follows["render_spread"] > 0.1


def test_prompt_adherence_can_embed_the_middle_of_a_longer_render():
    from samod.evaluation import prompt_adherence
    prompts = [f"tone {k}" for k in range(8)]
    clipped = prompt_adherence(_TonePipeline(), prompts, seconds=3.0, clip_seconds=1.0)
    assert clipped["clip_seconds"] == 1.0 and clipped["difference"] == 1.0
    whole = prompt_adherence(_TonePipeline(), prompts, seconds=3.0)
    assert whole["clip_seconds"] == 3.0 and whole["difference"] == 1.0


# --- musical activity ----------------------------------------------------------------------------

def test_activity_counts_notes_and_sees_none_in_a_drone():
    from samod.generation_metrics import activity, activity_range
    sr = 44100
    t = np.arange(4 * sr) / sr
    drone = 0.3 * np.sin(2 * np.pi * 220 * t)
    notes = np.zeros_like(t)
    for k in range(16):  # 4 notes per second, each a decaying tone
        start = k * sr // 4
        seg = t[: sr // 4]
        notes[start:start + sr // 4] = 0.5 * np.exp(-12 * seg) * np.sin(2 * np.pi * (220 + 40 * (k % 5)) * seg)
    a_drone, a_notes = activity(np.stack([drone, drone])), activity(np.stack([notes, notes]))
    assert a_drone["onset_rate"] <= 0.5 and 3.0 <= a_notes["onset_rate"] <= 5.0
    assert a_notes["spectral_flux"] > 5 * a_drone["spectral_flux"]
    span = activity_range([np.stack([drone, drone]), np.stack([notes, notes])])
    assert span["onset_rate"] == (a_drone["onset_rate"], a_notes["onset_rate"])
    with pytest.raises(ValueError, match="finite audio"):
        activity(np.full((2, 4096), np.nan))
