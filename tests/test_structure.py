"""Self-similarity structure analysis (paper 1 Figure 4): embedding, mutual kNN matrix, lag peaks, scoring."""
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from samod.display import figure4_ssms
from samod.structure import (StructureConfig, chance_hit_rate, delay_embedding, expected_lags, frame_features,
                             lag_hits, lag_profile, neighbour_count, recurrence_from_features, recurrence_matrix,
                             repeat_lift, repeated_pairs, score_song, section_means, self_similarity,
                             structure_summary)

SR = 44100
HOP = 0.25  # seconds per frame in the toy configs


def toy_config(**changes):
    """Quarter-second frames, 4 frames of context, 8% neighbours, lags with 5 s of overlap at least."""
    return StructureConfig(**{**dict(hop_seconds=HOP, embed_frames=4, kappa=0.08, min_overlap_seconds=5.0,
                                     tolerance_seconds=0.5), **changes})


def random_frames(n, features=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, features))  # (N, F)


def aba(block=40, features=6, seed=0, noise=0.05):
    """Feature frames A B A (A repeated with a little noise): A repeats 2 * block frames later."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(block, features)), rng.normal(size=(block, features))
    return np.concatenate([a, b, a + noise * rng.normal(size=a.shape)])  # (3 block, F)


def nearest_sets(x, k, band):
    """Brute force, written independently: for each row the set of its k nearest allowed rows."""
    n = len(x)
    sets = []
    for i in range(n):
        allowed = [j for j in range(n) if abs(i - j) >= band]
        order = sorted(allowed, key=lambda j: (np.linalg.norm(x[i] - x[j]), j))
        sets.append(set(order[:k]))
    return sets


# ---------------------------------------------------------------------------------------------------
# delay embedding

def test_delay_embedding_shape_and_order():
    x = np.arange(10 * 3, dtype=float).reshape(10, 3)  # (N=10, F=3)
    e = delay_embedding(x, 4)
    assert e.shape == (7, 12)  # (N - m + 1, m F)
    np.testing.assert_array_equal(e[0], np.concatenate([x[3], x[2], x[1], x[0]]))  # newest frame first
    np.testing.assert_array_equal(e[-1, :3], x[-1])
    np.testing.assert_array_equal(delay_embedding(x, 1), x)  # m = 1: no embedding


@pytest.mark.parametrize("m, match", [(0, "positive integer"), (11, "lower m")])
def test_delay_embedding_bad_m(m, match):
    with pytest.raises(ValueError, match=match):
        delay_embedding(np.zeros((10, 3)), m)


def test_delay_embedding_wants_2d():
    with pytest.raises(ValueError, match=r"x\[:, None\]"):
        delay_embedding(np.zeros(10), 2)


# ---------------------------------------------------------------------------------------------------
# mutual k-nearest-neighbour recurrence matrix

def test_recurrence_is_binary_symmetric_with_an_empty_band():
    r = recurrence_matrix(random_frames(60), k=5, band=3)
    assert r.shape == (60, 60) and r.dtype == np.uint8
    assert set(np.unique(r)) <= {0, 1} and r.sum() > 0
    np.testing.assert_array_equal(r, r.T)
    lag = np.abs(np.arange(60)[:, None] - np.arange(60)[None, :])
    assert r[lag < 3].sum() == 0  # no link inside the band, the diagonal included
    assert (r.sum(axis=1) <= 5).all()  # mutual links are a subset of each row's k nearest


@pytest.mark.parametrize("band", [1, 4])
def test_mutual_knn_property(band):
    x, k = random_frames(50, seed=1), 4
    r = recurrence_matrix(x, k=k, band=band)
    sets = nearest_sets(x, k, band)
    for i in range(len(x)):
        for j in range(len(x)):
            assert r[i, j] == int(j in sets[i] and i in sets[j]), (i, j)


def test_one_sided_neighbours_are_not_linked():
    # a point far from a tight cluster: its nearest are cluster points, but it is nobody's nearest
    x = np.concatenate([np.random.default_rng(0).normal(scale=0.01, size=(8, 2)), [[10.0, 10.0]]])
    r = recurrence_matrix(x, k=2, band=1)
    assert r[8].sum() == 0 and r[:, 8].sum() == 0


def test_agrees_with_librosa_affinity_mode():
    librosa = pytest.importorskip("librosa")
    x = random_frames(80, seed=2)
    k, band = 6, 3
    ours = recurrence_matrix(x, k=k, band=band)
    theirs = librosa.segment.recurrence_matrix(x.T, k=k, width=band, sym=True, mode="affinity")  # (N, N)
    np.testing.assert_array_equal(ours, (theirs > 0).astype(np.uint8))


@pytest.mark.parametrize("k, band", [(0, 1), (60, 1), (40, 20)])
def test_bad_k_says_how_to_fix(k, band):
    with pytest.raises(ValueError, match="lower kappa"):
        recurrence_matrix(random_frames(50), k=k, band=band)


def test_neighbour_count():
    assert neighbour_count(100, 0.05) == 5 and neighbour_count(10, 0.01) == 1
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        neighbour_count(100, 5)


# ---------------------------------------------------------------------------------------------------
# lag profile and repetition

def test_lag_profile_by_hand():
    r = np.zeros((6, 6), dtype=np.uint8)
    r[0, 3] = r[3, 0] = r[1, 4] = r[4, 1] = 1  # lag 3 on two of its three cells
    p = lag_profile(r, band=2, min_overlap=2)
    assert np.isnan(p[:2]).all() and np.isnan(p[5])  # trivial band; a 1-cell diagonal is too short
    np.testing.assert_allclose(p[2:5], [0.0, 2 / 3, 0.0])
    with pytest.raises(ValueError, match="square"):
        lag_profile(np.zeros((3, 4)))


def test_repeated_block_is_found_at_its_lag():
    config = toy_config()
    ssm = recurrence_from_features(aba(block=40), config)
    summary = structure_summary(ssm, config)
    assert min(abs(l - 80 * HOP) for l in summary["peak_lags_seconds"]) <= HOP  # A again after A B: 20 s
    top = summary["peak_lags_seconds"][int(np.argmax(summary["peak_heights"]))]
    assert abs(top - 80 * HOP) <= HOP  # and it is the strongest
    assert summary["repetition_strength"] > 12


def test_no_repetition_no_strong_peak():
    config = toy_config()
    # independent random frames: every lag is as likely as any other; p's maximum over its mean stays
    # a few units (seeds 0-9: 2.8-4.6), while A B A puts most links on one diagonal (17-20)
    summary = structure_summary(recurrence_from_features(random_frames(120, seed=3), config), config)
    assert summary["repetition_strength"] < 7
    repeated = structure_summary(recurrence_from_features(aba(block=40, seed=3), config), config)
    assert repeated["repetition_strength"] > 12
    strict = toy_config(peak_factor=8.0)  # peaks must stand 8x above the mean: only true repeats
    assert structure_summary(recurrence_from_features(random_frames(120, seed=3), strict), strict)["peak_lags_seconds"] == []
    found = structure_summary(recurrence_from_features(aba(block=40, seed=3), strict), strict)["peak_lags_seconds"]
    assert len(found) >= 1 and all(abs(l - 20.0) <= HOP for l in found)


def test_synthesized_tones_a_b_a():
    """Audio: phrase A (C E G A, 0.5 s notes), phrase B (other notes), A again: lag = 2 phrases = 8 s."""
    t = np.arange(int(0.5 * SR)) / SR
    tone = lambda f: np.sin(2 * np.pi * f * t) * np.hanning(t.size)
    phrase = lambda freqs: np.concatenate([tone(f) for f in freqs * 2])  # 8 notes, 4 s
    a = phrase([261.6, 329.6, 392.0, 440.0])
    b = phrase([293.7, 349.2, 466.2, 277.2])
    mono = 0.3 * np.concatenate([a, b, a])  # 12 s
    config = toy_config(feature="chroma", min_overlap_seconds=2.0)
    ssm = self_similarity(np.stack([mono, mono]), SR, config)
    n = int(12 / HOP)
    assert ssm["R"].shape == (n - 3, n - 3) and np.allclose(ssm["times"][1] - ssm["times"][0], HOP)
    summary = structure_summary(ssm, config)
    assert any(abs(l - 8.0) <= 2 * HOP for l in summary["peak_lags_seconds"]), summary["peak_lags_seconds"]


def test_frame_features_shape_and_bad_audio():
    audio = 0.1 * np.random.default_rng(0).normal(size=(2, 5 * SR)).astype(np.float32)
    config = toy_config()
    x = frame_features(audio, SR, config)
    assert x.shape == (20, 12 + config.n_mfcc) and np.isfinite(x).all()
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-6)  # z-scored over the song
    with pytest.raises(ValueError, match="load_audio"):
        frame_features(np.zeros((3, 3, SR)), SR, config)
    with pytest.raises(ValueError, match="longer song"):
        frame_features(audio[:, : SR], SR, config)
    with pytest.raises(ValueError, match="feature must be one of"):
        frame_features(audio, SR, toy_config(feature="tempogram"))
    with pytest.raises(ValueError, match="kappa"):
        frame_features(audio, SR, toy_config(kappa=3))


# ---------------------------------------------------------------------------------------------------
# scoring against a section plan

SECTIONS = [dict(label="intro", start=0.0, end=2.0, variation=None),
            dict(label="verse", start=2.0, end=8.0, variation=None),
            dict(label="chorus", start=8.0, end=14.0, variation=None),
            dict(label="verse", start=14.0, end=20.0, variation=None),
            dict(label="chorus", start=20.0, end=26.0, variation="octave up")]


def test_expected_lags_from_sections():
    assert [(a["start"], b["start"]) for a, b in repeated_pairs(SECTIONS)] == [(2.0, 14.0)]
    assert len(repeated_pairs(SECTIONS, "all")) == 2 and len(repeated_pairs(SECTIONS, "varied")) == 1
    assert expected_lags(SECTIONS) == [12.0]
    assert expected_lags(SECTIONS, repeats="all") == [12.0]  # verse and chorus share the lag: merged
    assert expected_lags(SECTIONS, repeats="varied") == []  # the exact verse repeat already tests lag 12
    shifted = SECTIONS[:4] + [dict(SECTIONS[4], start=23.0)]
    assert expected_lags(shifted, repeats="varied") == [15.0]
    with pytest.raises(ValueError, match="repeats must be one of"):
        repeated_pairs(SECTIONS, "some")
    assert expected_lags(SECTIONS, max_lag_seconds=10.0) == []
    with pytest.raises(ValueError, match="label, start and end"):
        repeated_pairs([{"label": "verse"}])


def test_lag_hits_tolerance():
    assert lag_hits([3.0, 12.4], [12.0, 7.0], 0.5) == [True, False]
    assert lag_hits([], [12.0], 1.0) == [False]


def test_score_song_on_a_planned_repeat_and_chance_baseline():
    config = toy_config()
    # frames laid out as SECTIONS (0.25 s frames): verse material at 2-8 s again at 14-20 s
    rng = np.random.default_rng(4)
    x = rng.normal(size=(104, 6))  # 26 s
    x[56:80] = x[8:32] + 0.05 * rng.normal(size=(24, 6))  # verse (frames 8..31) again from frame 56 (14 s)
    ssm = recurrence_from_features(x, config)
    score = score_song(ssm, SECTIONS, config)
    assert score["expected_lags_seconds"] == [12.0] and score["hits"] == [True]
    assert score["lift"] > 5 and score["expected_cells"] > 0
    # the same peaks scored against a plan whose repeat is elsewhere: a miss
    other = [dict(label="verse", start=0.0, end=5.0), dict(label="verse", start=5.0, end=10.0)]
    assert score_song(ssm, other, config)["hits"] == [False]
    assert repeat_lift(ssm, other, config)["lift"] < 2
    # two songs with the same peaks: song 0's peaks miss song 1's lag (5 s), song 1's hit song 0's (12 s)
    chance = chance_hit_rate([score, score], [SECTIONS, other], config)
    assert chance == {"hit_rate": 0.5, "expected_lags": 2}
    with pytest.raises(ValueError, match="at least two songs"):
        chance_hit_rate([score], [SECTIONS], config)


def test_config_presets_and_figure():
    for preset in (StructureConfig.tiny(), StructureConfig.small(), StructureConfig.paper()):
        preset.check()
    config = toy_config()
    ssm = recurrence_from_features(aba(block=20), config)
    grid = {"real": {"rock": {"ssm": ssm, "sections": SECTIONS, "title": "a"}},
            "generated": {"rock": {"ssm": ssm, "title": "b"}}}
    fig, numbers = figure4_ssms(grid, config)
    assert numbers["rows"] == ["real", "generated"] and numbers["genres"] == ["rock"]
    assert numbers["cells"]["real"]["rock"]["repetition_strength"] > 1
    with pytest.raises(ValueError, match="same genres"):
        figure4_ssms({"real": {"rock": grid["real"]["rock"]}, "generated": {"jazz": grid["real"]["rock"]}}, config)


def test_section_means_average_the_frames_of_each_section():
    features = np.arange(20, dtype=float)[:, None] * np.ones((1, 3))  # frame n holds n, hop 0.5 s
    sections = [{"start": 0.0, "end": 2.0}, {"start": 2.0, "end": 10.0}, {"start": 9.9, "end": 10.0}]
    means = section_means(features, sections, hop_seconds=0.5)
    assert [m[0] for m in means] == [1.5, 11.5, 19.0]  # frames 0-3, 4-19, and the last frame for a sliver
    assert all(m.shape == (3,) for m in means)
