"""Table 5's reconstruction metrics (auraloss, per file), the silence and low-pass baselines, input
dependence (does an output follow its own input?) and its two columns in the table."""
import json

import numpy as np
import pytest
import torch

import auraloss
from samod.autoencoder_evaluation import PUBLISHED_TABLE5, table5_row
from samod.metrics import (METRIC_NAMES, PAPER_NUMBERS_PER_SECOND, envelope_similarity, input_dependence,
                           input_dependence_gate, log_mel_envelopes, lowpass_baseline, lowpass_kernel, metric_modules,
                           reconstruction_metrics, silence_baseline, silence_gap_db)
from samod.tables import markdown_table

SR = 44100


def sines(freqs, seconds=1.0, amplitude=0.3):
    """(2, samples) stereo: a sum of sines, the right channel a quarter period late."""
    t = torch.arange(int(seconds * SR)) / SR
    left = sum(torch.sin(2 * torch.pi * f * t) for f in freqs)
    right = sum(torch.sin(2 * torch.pi * f * t + torch.pi / 2) for f in freqs)
    return amplitude * torch.stack([left, right]) / len(freqs)  # (2, samples)


def song(seed=0, seconds=1.0):
    g = torch.Generator().manual_seed(seed)
    return sines([110, 220, 440, 1760, 5000], seconds) + 0.01 * torch.randn(2, int(seconds * SR), generator=g)


def rms(x):
    return x.pow(2).mean().sqrt().item()


def test_auraloss_defaults_are_the_spec():
    m = metric_modules()
    stft, mel = m["stft_distance"], m["mel_distance"]
    assert (stft.fft_size, stft.hop_size, stft.win_length) == (1024, 256, 1024)
    assert (mel.fft_size, mel.hop_size, mel.n_bins, mel.sample_rate) == (1024, 256, 128, SR)
    assert mel.fb.shape == (1, 128, 513) and (mel.fb.sum(-1) > 0).all()  # no empty band -> no NaN


def test_identical_audio_is_perfect():
    x = song()
    out = reconstruction_metrics([x, x.numpy()], [x.clone(), x.numpy()], progress=False)
    assert out["n_files"] == 2 and all(len(out["per_file"][k]) == 2 for k in METRIC_NAMES)
    assert abs(out["stft_distance"]) < 1e-6 and abs(out["mel_distance"]) < 1e-6
    assert out["si_sdr"] > 80.0


def test_more_noise_is_worse():
    x, g = song(), torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    scores = [reconstruction_metrics([x], [x + level * noise], progress=False)
              for level in (0.001, 0.01, 0.1)]
    for a, b in zip(scores, scores[1:]):
        assert a["stft_distance"] < b["stft_distance"] and a["mel_distance"] < b["mel_distance"]
        assert a["si_sdr"] > b["si_sdr"] + 5.0  # 10x the noise amplitude: about 20 dB
    assert all(np.isfinite(s[k]) for s in scores for k in METRIC_NAMES)


def test_si_sdr_is_the_metric_not_the_loss():
    # Le Roux et al. 2018, by hand per channel: 10 log10 |a y|^2 / |a y - x|^2, a = <x, y> / |y|^2
    y, g = song(), torch.Generator().manual_seed(2)
    x = 0.5 * y + 0.01 * torch.randn(y.shape, generator=g)
    y0, x0 = (y - y.mean(-1, keepdim=True)).double(), (x - x.mean(-1, keepdim=True)).double()
    a = (x0 * y0).sum(-1, keepdim=True) / (y0 * y0).sum(-1, keepdim=True)
    by_hand = (10 * torch.log10((a * y0).pow(2).sum(-1) / (a * y0 - x0).pow(2).sum(-1))).mean().item()
    assert by_hand > 0
    assert reconstruction_metrics([y], [x], progress=False)["si_sdr"] == pytest.approx(by_hand, abs=1e-3)


def test_spectral_convergence_is_per_file():
    # a loud file reconstructed well and a quiet file reconstructed as silence (spectral convergence 1)
    loud, g = song(), torch.Generator().manual_seed(3)
    quiet = 0.01 * song(seed=4)
    references = [loud, quiet]
    reconstructions = [loud + 0.001 * torch.randn(loud.shape, generator=g), torch.zeros_like(quiet)]
    sc = auraloss.freq.STFTLoss(w_log_mag=0.0)  # the spectral convergence term alone
    per_file = [sc(x[None], y[None]).item() for x, y in zip(reconstructions, references)]
    batch = sc(torch.stack(reconstructions), torch.stack(references)).item()
    assert per_file[1] == pytest.approx(1.0, abs=0.01)
    assert np.mean(per_file) > 0.5 and batch < 0.05  # one batch call hides the quiet file's failure
    # and reconstruction_metrics follows the per-file recipe for the whole STFT distance
    out = reconstruction_metrics(references, reconstructions, progress=False)
    stft = auraloss.freq.STFTLoss()
    assert out["stft_distance"] == pytest.approx(np.mean([stft(x[None], y[None]).item()
                                                           for x, y in zip(reconstructions, references)]))
    batch_stft = stft(torch.stack(reconstructions), torch.stack(references)).item()
    assert abs(out["stft_distance"] - batch_stft) > 0.4


def test_silence_baseline():
    x = song()
    zeros = silence_baseline(x.numpy())
    assert zeros.shape == x.shape and zeros.dtype == torch.float32 and not zeros.any()
    out = reconstruction_metrics([x], [zeros], progress=False)
    assert out["si_sdr"] == pytest.approx(-80.0)  # auraloss's eps floor
    assert out["stft_distance"] > 5.0 and out["mel_distance"] > 5.0


def test_lowpass_kernel_for_the_paper_vae():
    assert PAPER_NUMBERS_PER_SECOND == pytest.approx(1378.125)  # 64 channels * 44100 / 2048 Hz
    assert lowpass_kernel(PAPER_NUMBERS_PER_SECOND) == 64
    assert lowpass_kernel(64 * SR / 1024) == 32  # twice the latent rate: half the window
    with pytest.raises(ValueError, match="exceed"):
        lowpass_kernel(10 * SR)


def test_lowpass_keeps_bass_and_removes_treble():
    odd = song(seconds=0.5)[:, :22001]  # not a multiple of the 64-sample window
    assert lowpass_baseline(odd, PAPER_NUMBERS_PER_SECOND).shape == odd.shape
    low, high = sines([50]), sines([10_000])
    kept = lowpass_baseline(low, PAPER_NUMBERS_PER_SECOND)
    removed = lowpass_baseline(high, PAPER_NUMBERS_PER_SECOND)
    assert rms(kept - low) < 0.04 * rms(low)  # 97% of a 50 Hz amplitude survives
    assert rms(removed) < 0.03 * rms(high)  # about 1% of a 10 kHz amplitude survives
    # on music it sits between silence and a perfect copy
    x = song()
    lowpassed = lowpass_baseline(x, PAPER_NUMBERS_PER_SECOND)
    out = reconstruction_metrics([x], [lowpassed], progress=False)
    silent = reconstruction_metrics([x], [silence_baseline(x)], progress=False)
    assert 0.0 < out["stft_distance"] < silent["stft_distance"] and out["si_sdr"] > silent["si_sdr"]


def test_mismatched_inputs_say_what_to_do():
    x = song()
    with pytest.raises(ValueError, match=r"file 0: reference has shape \(2, 44100\) but reconstruction "
                                         r"has shape \(2, 44000\); trim both"):
        reconstruction_metrics([x], [x[:, :44000]], progress=False)
    with pytest.raises(ValueError, match="1 references but 2 reconstructions"):
        reconstruction_metrics([x], [x, x], progress=False)
    with pytest.raises(ValueError, match=r"must be \(channels, samples\)"):
        reconstruction_metrics([x[0]], [x[0]], progress=False)


# ---------------------------------------------------------------------------------------------------
# Input dependence: does an output follow its own input?
# ---------------------------------------------------------------------------------------------------

def note_song(seed, seconds=3.0):
    """(2, samples) stereo: a seeded random song of decaying harmonic notes and noise bursts.

    Notes: random pitch (MIDI 36-89), onset, length, decay, harmonic weights and pan. Bursts: short
    decaying white noise (a snare or hi-hat stand-in) at random times. Every seed is a different song.
    """
    rng = np.random.default_rng(seed)
    samples = int(seconds * SR)
    out = np.zeros((2, samples))
    for _ in range(rng.integers(10, 20)):
        start = int(rng.uniform(0, seconds - 0.2) * SR)
        t = np.arange(min(samples - start, int(rng.uniform(0.1, 0.8) * SR))) / SR
        f0 = 440 * 2 ** ((rng.integers(36, 90) - 69) / 12)
        tone = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
                   for k in range(1, 8) if k * f0 < SR / 2)
        note = rng.uniform(0.1, 0.3) * np.exp(-t * rng.uniform(2, 12)) * np.minimum(1, t / 0.005) * tone
        pan = rng.uniform(0.2, 0.8)
        out[:, start:start + len(t)] += np.stack([(1 - pan) * note, pan * note])
    for _ in range(rng.integers(5, 15)):
        start = int(rng.uniform(0, seconds - 0.1) * SR)
        t = np.arange(min(samples - start, int(0.1 * SR))) / SR
        burst = rng.uniform(0.05, 0.2) * rng.standard_normal(len(t)) * np.exp(-t * rng.uniform(30, 80))
        out[:, start:start + len(t)] += burst  # the same in both channels: centred
    return torch.from_numpy(out).float()


@pytest.fixture(scope="module")
def songs():
    return [note_song(seed) for seed in range(10)]


def dependence(references, outputs):
    return input_dependence(references, outputs, SR)


def test_constant_output_is_caught(songs):
    average = torch.stack(songs).mean(dim=0)  # (2, samples): the mean of all songs, for every input
    for constant in (songs[0], average):
        numbers = dependence(songs, [constant] * len(songs))
        assert numbers["chance"] == 0.1 and numbers["identification"] <= 0.1  # at most one by luck
        assert numbers["specificity_ratio"] == pytest.approx(1.0)  # exactly 1 for any constant output
        passed, reasons = input_dependence_gate(numbers)
        assert not passed and len(reasons) == 2
        assert "identification" in reasons[0] and "chance 0.10 = 1/10" in reasons[0]
        assert "specificity ratio 1.00" in reasons[1]


def test_lowpass_and_mild_damage_follow_their_input(songs):
    half = [0.5 * x for x in songs]
    eight_bit = [torch.round(x * 127) / 127 for x in songs]
    lowpass = [lowpass_baseline(x, PAPER_NUMBERS_PER_SECOND) for x in songs]
    for outputs, min_own, max_ratio in ((half, 0.999, 0.01), (eight_bit, 0.8, 0.25), (lowpass, 0.25, 0.85)):
        numbers = dependence(songs, outputs)
        assert numbers["identification"] == 1.0
        assert numbers["own_similarity"] > min_own and numbers["specificity_ratio"] < max_ratio
        assert abs(numbers["other_similarity"]) < 0.15
        assert input_dependence_gate(numbers) == (True, [])
    assert envelope_similarity(songs[0], songs[0]) == pytest.approx(1.0)
    assert envelope_similarity(songs[0], half[0]) == pytest.approx(1.0)  # the floor follows the gain


def test_another_song_and_silence_are_not_their_input(songs):
    rotated = dependence(songs, songs[1:] + songs[:1])  # output i is song i + 1
    assert rotated["identification"] == 0.0 and abs(rotated["own_similarity"]) < 0.15
    assert rotated["specificity_ratio"] > 1.0
    assert all(rotated["similarity"][i][(i + 1) % 10] == pytest.approx(1.0) for i in range(10))
    silent = dependence(songs, [torch.zeros_like(x) for x in songs])
    assert np.isfinite(silent["similarity"]).all() and not np.any(silent["similarity"])
    assert silent["identification"] == 0.0 and silent["specificity_ratio"] == 1.0  # ties are misses
    assert not input_dependence_gate(silent)[0]
    assert envelope_similarity(torch.zeros(2, 4096), torch.zeros(2, 4096)) == 0.0  # nothing to follow


def test_band_limited_reference_skips_its_silent_bands():
    # a 200 Hz tone swelling and fading: the top bands never rise above the floor; a copy still scores 1.0
    t = torch.arange(SR) / SR
    tone = (torch.sin(2 * torch.pi * 200 * t) * (0.2 + torch.sin(torch.pi * t) ** 2)).repeat(2, 1)
    _, audible = log_mel_envelopes(tone, SR)
    assert 0 < audible.sum() < 64  # the top bands are below the floor: skipped
    assert envelope_similarity(tone, tone.clone()) == pytest.approx(1.0)
    assert envelope_similarity(tone, 0.7 * tone + 0.001) == pytest.approx(1.0, abs=1e-3)


def test_input_dependence_says_what_to_do(songs):
    x, y = songs[0], songs[1]
    with pytest.raises(ValueError, match="at least 2"):
        input_dependence([x], [x])
    with pytest.raises(ValueError, match="2 references but 1 outputs"):
        input_dependence([x, y], [x])
    with pytest.raises(ValueError, match=r"file 1: reference has shape \(2, 132300\) but output has shape "
                                         r"\(2, 132000\)"):
        input_dependence([x, y], [x, y[:, :132000]])
    # clips of different lengths are compared on their common span
    assert input_dependence([x, y[:, :100000]], [x, y[:, :100000]])["identification"] == 1.0


def test_silence_gap_db():
    x = song()
    assert silence_gap_db(x, x) == 0.0
    assert silence_gap_db(0.5 * x, x) == pytest.approx(20 * np.log10(2), abs=1e-6)  # 6.02 dB
    assert silence_gap_db(0.5 * x, [x, x]) == pytest.approx(6.0206, abs=1e-3)
    assert silence_gap_db(x, 0.5 * x) == pytest.approx(-6.0206, abs=1e-3)  # louder on silence: negative
    gap = silence_gap_db(torch.zeros_like(x), x)
    assert np.isfinite(gap) and gap > 150


def test_table_with_input_dependence_columns(songs):
    references = songs[:3]
    outputs = [lowpass_baseline(x, PAPER_NUMBERS_PER_SECOND) for x in references]
    numbers = dependence(references, outputs)
    row = table5_row("low-pass", reconstruction_metrics(references, outputs, progress=False), SR, None, None,
                     input_dependence=numbers)
    assert row["identification"] == 1.0 and row["specificity_ratio"] == numbers["specificity_ratio"]
    table = markdown_table([row, PUBLISHED_TABLE5[-1]]).splitlines()
    assert table[0].endswith("| latent channels | identification ↑ | specificity ratio ↓ |")
    assert table[2].endswith(f"| — | — | 1.00 | {numbers['specificity_ratio']:.2f} |")
    assert table[3].endswith("| 21.5 Hz | 64 | — | — |")  # published rows have no such numbers
    json.dumps(row)  # plain numbers, ready for write_table
