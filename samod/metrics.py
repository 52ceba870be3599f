"""Reconstruction metrics: how close an autoencoder's output is to its input (paper 1 Table 5's measures).

Paper 1 §4.3 evaluates the autoencoder on its own, since it sets a quality ceiling for the whole
system: each reference song is encoded and decoded, and the reconstruction is compared with the
original by three metrics of the auraloss library [28] "with its default parameters" (Table 5):

- STFT distance (lower is better): auraloss.freq.STFTLoss(), i.e. spectral convergence
  ||Y - X||_F / ||Y||_F plus the mean absolute difference of log magnitudes, with a 1024-point FFT,
  hop 256, Hann window 1024.
- MEL distance (lower is better): auraloss.freq.MelSTFTLoss(sample_rate=44100), the same two terms on
  a 128-band mel spectrogram of the same STFT.
- SI-SDR in dB (higher is better): the negative of auraloss.time.SISDRLoss(), which returns -SI-SDR.

Every metric is computed per file on a (1, channels, samples) tensor and then averaged over files.
Spectral convergence divides by the norm of the whole tensor it is given, so one call on a batch lets
loud files drown out quiet ones: per file, each song counts the same.

Two baselines put the numbers in scale: silence (the worst sensible reconstruction) and a low-pass
copy that keeps as many numbers per second as the latent holds (what any model of that size beats
if it has learned anything but the slow envelope of the waveform).

Neither distance can tell whether the output depends on its input at all: an input-independent
output (the same clip for every song) can score better than the low-pass. Input dependence asks it
directly: does each output follow its own input's mel envelopes more closely than the other inputs'?

Sections: 1. reconstruction metrics (Table 5), 2. baselines, 3. input dependence and the silence gap.
Table 5 as a table (its rows, header, published numbers) is in samod/autoencoder_evaluation.py, the
table writer in samod/tables.py. The metrics of generations (retrieval for CLAP, the FD, KL and CLAP
score columns of Tables 2-3, musical activity) are in samod/generation_metrics.py.

Shapes: audio is (channels, samples) stereo at 44.1 kHz, as everywhere in samod.
Taught in notebooks/01_autoencoder.ipynb.
"""
from __future__ import annotations

from functools import lru_cache

import auraloss
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from samod.profiles import SAMPLE_RATE

METRIC_NAMES = ("stft_distance", "mel_distance", "si_sdr")  # the three measured columns of Table 5
PAPER_NUMBERS_PER_SECOND = 64 * SAMPLE_RATE / 2048  # = 1378.125: 64 latent channels at 21.5 Hz (§2.1)


# ---------------------------------------------------------------------------------------------------
# 1. Reconstruction metrics (paper 1 §4.3, Table 5)
# ---------------------------------------------------------------------------------------------------

def metric_modules(sample_rate: int = SAMPLE_RATE) -> dict[str, torch.nn.Module]:
    """The auraloss modules behind Table 5, all at their defaults (auraloss 0.4.0).

    STFTLoss: fft_size 1024, hop_size 256, win_length 1024, hann_window, w_sc 1, w_log_mag 1.
    MelSTFTLoss: the same STFT, n_mels 128 (librosa Slaney filters). SISDRLoss: zero_mean, eps 1e-8.
    (MultiResolutionSTFTLoss with a mel scale returns NaN in auraloss 0.4: its 512-point FFT leaves
    11 of 128 mel bands empty and log(0) - log(0) = NaN. Table 5 uses the single-resolution losses.)
    """
    return {"stft_distance": auraloss.freq.STFTLoss(),
            "mel_distance": auraloss.freq.MelSTFTLoss(sample_rate=sample_rate),
            "si_sdr": auraloss.time.SISDRLoss()}


def _as_audio(audio, what: str) -> torch.Tensor:
    """Tensor or array -> float32 (channels, samples) tensor, or a ValueError naming `what`."""
    audio = (audio if torch.is_tensor(audio) else torch.as_tensor(np.asarray(audio))).float()
    if audio.ndim != 2:
        raise ValueError(f"{what} must be (channels, samples) audio, got shape {tuple(audio.shape)}")
    return audio


@torch.no_grad()
def reconstruction_metrics(references: list, reconstructions: list, sample_rate: int = SAMPLE_RATE,
                           progress: bool = True) -> dict:
    """Table 5's metrics for paired files: {metric: mean over files, "n_files", "per_file": {metric: [..]}}.

    references[i] and reconstructions[i] are (channels, samples) tensors or arrays of the same shape.
    Each pair is scored as one (1, channels, samples) batch, then the per-file values are averaged.
    """
    if len(references) != len(reconstructions):
        raise ValueError(f"got {len(references)} references but {len(reconstructions)} reconstructions: "
                         f"pass one reconstruction per reference file, in the same order")
    if not references:
        raise ValueError("no files to evaluate: pass at least one (reference, reconstruction) pair")
    modules = metric_modules(sample_rate)
    fft_size = modules["stft_distance"].fft_size
    per_file: dict[str, list[float]] = {name: [] for name in METRIC_NAMES}
    pairs = zip(references, reconstructions)
    for i, (reference, reconstruction) in enumerate(tqdm(pairs, total=len(references), desc="metrics",
                                                         disable=not progress)):
        y = _as_audio(reference, f"reference {i}")
        x = _as_audio(reconstruction, f"reconstruction {i}")
        if x.shape != y.shape:
            raise ValueError(f"file {i}: reference has shape {tuple(y.shape)} but reconstruction has shape "
                             f"{tuple(x.shape)}; trim both to the same (channels, samples) before scoring "
                             f"(a decoder may return a few extra samples of padding)")
        if y.shape[-1] < fft_size:
            raise ValueError(f"file {i} has {y.shape[-1]} samples; the STFT metrics need at least {fft_size}")
        x, y = x[None], y[None]  # (1, channels, samples): auraloss wants (batch, channels, time)
        # auraloss's argument order is (input, target): the reference is the target
        per_file["stft_distance"].append(modules["stft_distance"](x, y).item())
        per_file["mel_distance"].append(modules["mel_distance"](x, y).item())
        per_file["si_sdr"].append(-modules["si_sdr"](x, y).item())  # SISDRLoss returns -SI-SDR
    means = {name: float(np.mean(values)) for name, values in per_file.items()}
    return {**means, "n_files": len(references), "per_file": per_file}


# ---------------------------------------------------------------------------------------------------
# 2. Baselines
# ---------------------------------------------------------------------------------------------------

def silence_baseline(audio) -> torch.Tensor:
    """Zeros of the audio's shape. Its SI-SDR is -80 dB: auraloss's eps (1e-8) floors log10(0)."""
    return torch.zeros_like(_as_audio(audio, "audio"))


def lowpass_kernel(numbers_per_second: float, channels: int = 2, sample_rate: int = SAMPLE_RATE) -> int:
    """Samples averaged into one number so that `channels` audio channels hold `numbers_per_second`."""
    kernel = round(channels * sample_rate / numbers_per_second)
    if kernel < 1:
        raise ValueError(f"{numbers_per_second} numbers per second exceed the {channels * sample_rate} "
                         f"the audio itself holds; a low-pass baseline needs fewer numbers than samples")
    return kernel


def lowpass_baseline(audio, numbers_per_second: float, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Keep as many numbers per second as a latent holds: average-pool, then interpolate back linearly.

    A latent of C channels at R frames per second holds C * R numbers per second; spread over the
    audio's channels (2), each channel keeps C * R / 2 values per second, one per pooled window of
        kernel = 2 * sample_rate / (C * R) samples.
    Paper VAE: C * R = 64 * 44100 / 2048 = 1378.125 numbers per second, so each channel is pooled by
    2 * 44100 / 1378.125 = 64 samples (one value per 1.45 ms). Pooling is a 64-sample box filter
    and linear interpolation a triangle of twice its width, so the amplitude response is about
    sinc(f * 64 / 44100)^3, with its first null at 44100 / 64 = 689 Hz: a 50 Hz sine keeps 97% of its
    amplitude, 200 Hz 66%, 10 kHz about 1%. Bass survives; treble (cymbals, brightness) is lost.
    Each pooled value sits at the centre of its window; linear interpolation between centres restores
    the original length. A last window shorter than the kernel averages the samples it has.
    """
    audio = _as_audio(audio, "audio")  # (channels, samples)
    channels, samples = audio.shape
    kernel = lowpass_kernel(numbers_per_second, channels, sample_rate)
    pooled = F.avg_pool1d(audio[None], kernel, stride=kernel,
                          ceil_mode=True)  # (1, channels, ceil(samples / kernel))
    restored = F.interpolate(pooled, size=pooled.shape[-1] * kernel, mode="linear",
                             align_corners=False)  # (1, channels, ceil(samples / kernel) * kernel)
    return restored[0, :, :samples]  # (channels, samples)


# ---------------------------------------------------------------------------------------------------
# 3. Input dependence: does the output follow its input at all?
# ---------------------------------------------------------------------------------------------------
#
# The STFT and MEL distances compare magnitudes bin by bin, so they reward sounding like music in
# general: an output that ignores its input (the same average-sounding clip for every song) can score
# better than the low-pass, which follows every song but loses its treble. The question "does the
# output depend on the input?" needs a measure that is high only when the output moves with its own
# input: when the input gets louder in a band, so does the output.
#
#     envelope_similarity(x, y) = mean over bands b of  corr_t( log M_x[b, t], log M_y[b, t] )
#
# with M the mel power spectrogram of the mono mix and corr_t the Pearson correlation over frames t.
# Correlation ignores each band's gain and offset, so a quieter copy, a tilted EQ or a band the model
# renders 10 dB too soft all count as following; only the shape over time matters (tests/test_metrics.py
# scores half gain, quantisation, the low-pass, the average song, another song and silence).
#
# The low-pass follows its bass bands exactly; its bands above a few hundred Hz hold aliased images
# of the bass rather than the song's own treble. The average of all songs scores about as well
# against every input, so one number cannot tell "follows its input" from "sounds like music". N songs
# can: input_dependence scores every output against every reference and asks whether each output is
# closest to its own input (an input-independent output is closest to its own input 1 time in N).

ENVELOPE_MELS = 64  # mel bands (librosa's Slaney scale, triangles of height 1)
ENVELOPE_FFT = 2048  # STFT size, Hann window: 46 ms at 44.1 kHz
ENVELOPE_HOP = 512  # frames every 11.6 ms at 44.1 kHz
ENVELOPE_FLOOR_DB = 60.0  # the log floor sits this far below the clip's mean mel power
DIGITAL_SILENCE_FLOOR = 1e-12  # absolute floor, so all-zero audio has a finite (constant) log


@lru_cache(maxsize=8)
def _mel_filters(sample_rate: int) -> torch.Tensor:
    """(ENVELOPE_MELS, ENVELOPE_FFT // 2 + 1) float64 mel filter bank; librosa imported here (slow import)."""
    import librosa  # librosa: heavy to import (numba), needed only for the mel filters
    filters = librosa.filters.mel(sr=sample_rate, n_fft=ENVELOPE_FFT, n_mels=ENVELOPE_MELS, norm=None)
    return torch.from_numpy(filters).double()


def log_mel_envelopes(audio, sample_rate: int = SAMPLE_RATE) -> tuple[torch.Tensor, torch.Tensor]:
    """Log mel envelopes of the mono mix: (envelopes (mels, frames) float64, audible (mels,) bool).

        mono    = mean over channels
        P[f, t] = |STFT(mono)[f, t] * 2 / sum(window)|^2       (a full-scale sine: power 1 at its bin)
        M[b, t] = sum_f filters[b, f] P[f, t]                  (64 mel bands)
        floor   = max(mean(M) * 10^(-60 / 10), 1e-12)
        E[b, t] = log(M[b, t] + floor)

    The floor sits 60 dB below the clip's own mean mel power, so the envelopes do not depend on the
    clip's gain, and anything quieter than that counts as silence rather than as a log that dives to
    -inf. Digital silence gets the absolute floor 1e-12 and so a constant envelope. A band is audible
    if its power exceeds the floor in at least one frame; a band that never does carries no shape.
    """
    audio = _as_audio(audio, "audio").double()  # (channels, samples)
    if audio.shape[-1] < ENVELOPE_FFT:
        raise ValueError(f"audio has {audio.shape[-1]} samples; the envelopes need at least {ENVELOPE_FFT}")
    mono = audio.mean(dim=0)  # (samples,)
    window = torch.hann_window(ENVELOPE_FFT, dtype=torch.float64)
    spectrum = torch.stft(mono, ENVELOPE_FFT, ENVELOPE_HOP, window=window,
                          return_complex=True)  # (fft // 2 + 1, frames)
    power = (spectrum.abs() * 2 / window.sum()).pow(2)  # (freqs, frames)
    mel = _mel_filters(sample_rate) @ power  # (mels, frames)
    floor = max(mel.mean().item() * 10 ** (-ENVELOPE_FLOOR_DB / 10), DIGITAL_SILENCE_FLOOR)
    audible = (mel > floor).any(dim=1)  # (mels,)
    return torch.log(mel + floor), audible


def _standardised(envelopes: torch.Tensor, audible: torch.Tensor) -> torch.Tensor:
    """Each band's envelope minus its mean over time, over its standard deviation: (mels, frames).

    Bands that are inaudible or have no variance (a constant output) become all zeros, so their
    correlation with anything is 0 rather than 0 / 0 = NaN.
    """
    centred = envelopes - envelopes.mean(dim=-1, keepdim=True)  # (mels, frames)
    std = centred.pow(2).mean(dim=-1, keepdim=True).sqrt()  # (mels, 1), population std as in Pearson's r
    keep = audible[:, None] & (std > 1e-9)  # (mels, 1)
    return torch.where(keep, centred / std.clamp_min(1e-9), 0.0)


def _band_mean_similarity(z_outputs: torch.Tensor, z_references: torch.Tensor,
                          audible: torch.Tensor) -> torch.Tensor:
    """Similarity of every output to every reference from standardised envelopes.

    z_outputs (N, mels, frames), z_references (M, mels, frames), audible (M, mels): the references'
    audible bands. Returns (N, M): the per-band Pearson correlation averaged over the reference's
    audible bands, 0 for a reference with none.
    """
    frames = z_references.shape[-1]
    correlation = torch.einsum("ibt,jbt->ijb", z_outputs, z_references) / frames  # (N, M, mels)
    counted = audible.double()  # (M, mels)
    total = (correlation * counted[None]).sum(dim=-1)  # (N, M)
    return total / counted.sum(dim=-1).clamp_min(1)[None]  # (N, M); 0 / 1 = 0 when none is audible


def envelope_similarity(reference, output, sample_rate: int = SAMPLE_RATE) -> float:
    """How closely `output` follows `reference` over time, band by band, in [-1, 1] (1: perfectly).

        similarity = mean over the reference's audible bands b of  corr_t(E_ref[b, t], E_out[b, t])

    with E the log mel envelopes of `log_mel_envelopes`. Bands that are silent in the reference are
    skipped: they have no shape to follow, and counting them as 0 would keep even a perfect copy of a
    band-limited song below 1. Bands with no variance in the output (silence, a constant tone) count
    as correlation 0: the output did not follow. A reference with no audible band scores 0. Never NaN.
    Both clips are (channels, samples) of one shape.
    """
    reference, output = _as_audio(reference, "reference"), _as_audio(output, "output")
    if reference.shape != output.shape:
        raise ValueError(f"reference has shape {tuple(reference.shape)} but output has shape "
                         f"{tuple(output.shape)}; trim both to the same (channels, samples)")
    e_ref, audible = log_mel_envelopes(reference, sample_rate)
    e_out, audible_out = log_mel_envelopes(output, sample_rate)
    z_ref, z_out = _standardised(e_ref, audible), _standardised(e_out, audible_out)
    return _band_mean_similarity(z_out[None], z_ref[None], audible[None]).item()


def input_dependence(references: list, outputs: list, sample_rate: int = SAMPLE_RATE) -> dict:
    """Does each output follow its own input more than the others? Scores N outputs against N inputs.

    outputs[i] is the model's output for references[i]; each is (channels, samples), the pair of one
    shape. Every output is compared with every reference by `envelope_similarity`, on the first
    min-length samples of all clips so every pair spans the same time:

        S[i, j] = envelope_similarity(references[j], outputs[i])        (N, N); own pairs on the diagonal
        identification    = share of outputs i with S[i, i] > S[i, j] for every j != i
        specificity_ratio = mean_i D[i, i] / mean_{i != j} D[i, j],   D = 1 - S

    Identification is 1/N by chance; ties count as a miss, so N silent outputs identify nothing.
    The specificity ratio is the distance to one's own input in units of the distance to the others:
    exactly 1.0 for any output that ignores its input (every row of S is then the same, so the two
    means coincide), near 0 for an output that follows its input closely. (It is 1.0 too in the
    degenerate case of no distance to the other inputs at all, when nothing can be told apart.)

    Returns {"identification", "specificity_ratio", "own_similarity" (mean of the diagonal),
    "other_similarity" (mean off the diagonal), "chance" (1/N), "n_files", "similarity" (N x N
    list of lists, rows outputs, columns references), "identified" (per output)}.
    """
    if not isinstance(references, (list, tuple)) or not isinstance(outputs, (list, tuple)):
        raise ValueError("pass references and outputs as lists of (channels, samples) clips, one output "
                         "per reference, in the same order")
    if len(references) != len(outputs):
        raise ValueError(f"got {len(references)} references but {len(outputs)} outputs: pass one output "
                         f"per reference, in the same order")
    if len(references) < 2:
        raise ValueError(f"got {len(references)} reference(s); input dependence compares each output with "
                         f"the other inputs, so it needs at least 2 (pairs), better 8 or more")
    references = [_as_audio(r, f"reference {i}") for i, r in enumerate(references)]
    outputs = [_as_audio(o, f"output {i}") for i, o in enumerate(outputs)]
    for i, (reference, output) in enumerate(zip(references, outputs)):
        if reference.shape != output.shape:
            raise ValueError(f"file {i}: reference has shape {tuple(reference.shape)} but output has shape "
                             f"{tuple(output.shape)}; trim both to the same (channels, samples)")
    samples = min(r.shape[-1] for r in references)  # a common span for the cross pairs
    envelopes = [log_mel_envelopes(clip[:, :samples], sample_rate) for clip in references + outputs]
    z = torch.stack([_standardised(e, audible) for e, audible in envelopes])  # (2N, mels, frames)
    n = len(references)
    audible = torch.stack([audible for _, audible in envelopes[:n]])  # (N, mels)
    similarity = _band_mean_similarity(z[n:], z[:n], audible)  # (N outputs, N references)

    own = similarity.diagonal()  # (N,)
    off_diagonal = ~torch.eye(n, dtype=torch.bool)  # (N, N)
    best_other = similarity.masked_fill(~off_diagonal, -torch.inf).amax(dim=1)  # (N,)
    identified = own > best_other  # (N,); a tie is a miss
    distance = 1 - similarity  # (N, N)
    own_distance, other_distance = distance.diagonal().mean().item(), distance[off_diagonal].mean().item()
    specificity = own_distance / other_distance if other_distance > 0 else 1.0
    return {"identification": identified.double().mean().item(), "specificity_ratio": specificity,
            "own_similarity": own.mean().item(), "other_similarity": similarity[off_diagonal].mean().item(),
            "chance": 1 / n, "n_files": n, "similarity": similarity.tolist(),
            "identified": identified.tolist()}


def input_dependence_gate(numbers: dict, min_identification: float = 0.9,
                          max_specificity: float = 0.8) -> tuple[bool, list[str]]:
    """Pass if outputs follow their own inputs: (passed, reasons), one reason per failed check.

    numbers is `input_dependence`'s output. The checks: at least `min_identification` of the outputs
    are closest to their own input (chance is 1/N), and the specificity ratio is at most
    `max_specificity` (an input-independent output scores exactly 1.0). The defaults pass the
    paper-size low-pass on music (identification 1.0, ratio 0.62 on 8 songs of the tiny corpus) and
    fail any constant output (identification 1/N at most, ratio 1.0). Use as
        passed, reasons = input_dependence_gate(numbers); assert passed, "; ".join(reasons)
    """
    reasons = []
    identification, chance, n = numbers["identification"], numbers["chance"], numbers["n_files"]
    if identification < min_identification:
        reasons.append(f"identification {identification:.2f} is below the required {min_identification:.2f} "
                       f"(chance {chance:.2f} = 1/{n}): only {round(identification * n)} of {n} outputs are "
                       f"closest to their own input")
    ratio = numbers["specificity_ratio"]
    if ratio > max_specificity:
        reasons.append(f"specificity ratio {ratio:.2f} is above the allowed {max_specificity:.2f} "
                       f"(1.00 = the output ignores its input): the outputs are nearly as far from their "
                       f"own inputs (mean similarity {numbers['own_similarity']:.2f}) as from the others "
                       f"({numbers['other_similarity']:.2f})")
    return not reasons, reasons


def silence_gap_db(decoded_silence, decoded_music, eps: float = 1e-10) -> float:
    """How many dB quieter the output for silent input is than the output for music (> 0: quieter).

        gap = 20 log10( (rms_music + eps) / (rms_silence + eps) )

    decoded_silence is one (channels, samples) clip; decoded_music one clip or a list of clips, whose
    level is the RMS of them all together (the root of the mean over clips of each clip's mean square,
    so each clip counts the same). eps keeps digital silence finite: with music at RMS 0.1, an
    all-zero output scores 20 log10(0.1 / 1e-10) = 180 dB. Equal levels give 0, half amplitude 6.02.
    A model that hums on silence as loudly as it plays music scores about 0.
    """
    silence = _as_audio(decoded_silence, "decoded_silence").double()
    music = decoded_music if isinstance(decoded_music, (list, tuple)) else [decoded_music]
    if not music:
        raise ValueError("decoded_music is empty: pass the model's output for at least one music clip")
    mean_squares = [_as_audio(clip, f"decoded_music {i}").double().pow(2).mean().item()
                    for i, clip in enumerate(music)]
    rms_music = float(np.sqrt(np.mean(mean_squares)))
    rms_silence = silence.pow(2).mean().sqrt().item()
    return float(20 * np.log10((rms_music + eps) / (rms_silence + eps)))
