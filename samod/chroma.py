"""Does a reconstruction keep the notes? Chroma measures that rhythm and loudness alone cannot pass.

The distances of Table 5 and the envelope measures of samod/metrics.py reward an output that follows
its input's loudness over time. Noise shaped by the input's band envelopes ("rhythm only") passes them
while holding no note at all. Chroma asks about pitch: how much energy each of the 12 pitch classes
(C, C#, ..., B) holds in each frame, octaves folded together.

    C[p, t]  = librosa CQT chroma of the mono mix at 22.05 kHz, hop 512 (43 frames a second)
    c[p, t]  = C[p, t] - mean_p C[p, t]           each frame's mean removed: only which classes stand out
    sim(a, b) = mean_t cos(c_a[:, t], c_b[:, t])  frame-wise cosine, averaged over the frames

- **chroma identification**: the share of outputs whose most similar input (by `sim`) is their own.
  Chance is 1/N; a constant, random noise and rhythm-only noise stay near it.
- **chroma motion**: the temporal standard deviation of the output's chroma over the input's
  (1.0: the harmony moves as much as in the input; a drone or a constant scores near 0).
- **chroma clarity and movement** (`harmony`): for a clip without a reference (a generation), how clearly
  some pitch classes stand out and how much they change over time, read against the corpus's range.
- **MIDI agreement**: every corpus song is rendered from a MIDI file the corpus keeps, so the pitch classes
  sounding in each frame are known exactly: `sim` between the audio's chroma and that ground truth (drums
  left out). The rendered song itself is the ceiling of any reconstruction of it.

`rhythm_only` builds the stand-in that a measure of notes must fail: the input's 24 mel-band envelopes
laid on random-phase noise.

Shapes: audio is (channels, samples) at 44.1 kHz, as everywhere in samod; chroma is (12, frames).
Taught in notebooks/01_autoencoder.ipynb.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from samod.data import load_middle
from samod.profiles import SAMPLE_RATE

CHROMA_RATE = 22050  # Hz: the audio is resampled to this before the constant-Q transform
CHROMA_HOP = 512  # samples at CHROMA_RATE: 43 frames a second
RHYTHM_BANDS = 24  # mel bands of the rhythm-only stand-in
MOVEMENT_SECONDS = 0.5  # chroma_movement averages the chroma over this long first (about one beat)
KEEPS_NOTES = 0.8  # chroma identification from which an autoencoder counts as keeping the notes
HOLDS_NOTES = 0.75  # share of generations inside the corpus's range of each `harmony` measure that counts
_FFT = 2048  # STFT of the rhythm-only stand-in (hop _FFT // 4)


def _mono(audio) -> np.ndarray:
    """(channels, samples) or (samples,) tensor or array -> (samples,) float32 mono mix."""
    audio = np.asarray(audio.detach().cpu() if isinstance(audio, torch.Tensor) else audio, dtype=np.float32)
    if audio.ndim not in (1, 2):
        raise ValueError(f"expected audio of shape (channels, samples) or (samples,), got {audio.shape}")
    return audio.mean(axis=0) if audio.ndim == 2 else audio


def _chroma_cqt(audio, sample_rate: int) -> np.ndarray | None:
    """(12, frames) librosa CQT chroma of the mono mix at CHROMA_RATE, each frame scaled to a maximum of 1;
    None for digital silence."""
    import librosa  # slow to import: only where chroma is computed
    mono = _mono(audio)
    if sample_rate != CHROMA_RATE:
        mono = librosa.resample(mono, orig_sr=sample_rate, target_sr=CHROMA_RATE, res_type="soxr_hq")
    if not np.any(mono):
        return None
    return librosa.feature.chroma_cqt(y=mono, sr=CHROMA_RATE, hop_length=CHROMA_HOP)


def chroma(audio, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(12, frames) CQT chroma of the mono mix, each frame's mean over the pitch classes removed.

    Digital silence gives all zeros (no class stands out), which is cosine 0 to anything."""
    c = _chroma_cqt(audio, sample_rate)
    if c is None:
        return np.zeros((12, 1 + round(_mono(audio).shape[-1] * CHROMA_RATE / sample_rate) // CHROMA_HOP), np.float32)
    return (c - c.mean(axis=0, keepdims=True)).astype(np.float32)


def chroma_clarity(audio, sample_rate: int = SAMPLE_RATE) -> float:
    """How clearly some pitch classes stand out: the mean over frames of max_p C[p, t] / mean_p C[p, t]
    (C the CQT chroma). 1 when every class is equally strong (noise), up to 12 for one class alone."""
    return harmony(audio, sample_rate)["chroma_clarity"]


def harmony(audio, sample_rate: int = SAMPLE_RATE) -> dict:
    """A clip's harmony without a reference, from one constant-Q transform: {"chroma_clarity": as
    `chroma_clarity`, "chroma_movement": mean_p std_t of c[p, t] averaged over MOVEMENT_SECONDS (how much the
    pitch classes that stand out change from half-second to half-second)}. Noise is unclear (clarity near 1), a
    drone does not move, and noise with the input's rhythm moves less: its frame-to-frame jitter averages out."""
    from scipy.ndimage import uniform_filter1d  # scipy (a librosa dependency): only where harmony is measured
    c = _chroma_cqt(audio, sample_rate)
    if c is None:
        return {"chroma_clarity": 1.0, "chroma_movement": 0.0}
    centred = c - c.mean(axis=0, keepdims=True)
    smoothed = uniform_filter1d(centred, round(MOVEMENT_SECONDS * CHROMA_RATE / CHROMA_HOP), axis=1, mode="nearest")
    return {"chroma_clarity": float((c.max(axis=0) / np.maximum(c.mean(axis=0), 1e-9)).mean()),
            "chroma_movement": float(smoothed.std(axis=1).mean())}


HARMONY = ("chroma_clarity", "chroma_movement")


def corpus_harmony(records: list[dict], seconds: float = 10.0) -> dict[str, list[float]]:
    """`harmony` of the middle `seconds` of each corpus song: the range generations are read against."""
    measured = [harmony(load_middle(r, seconds)) for r in records]
    return {k: [m[k] for m in measured] for k in HARMONY}


def inside_range(values: dict[str, list[float]], reference: dict[str, list[float]], low: float = 10,
                 high: float = 90) -> dict:
    """Where clips' `harmony` lies against a reference set's (the corpus's): for each measure the reference's
    low-high percentile range and the share of `values` inside it, then the share inside both ranges.
    The reference set itself scores about (high - low) / 100 on each measure."""
    result, inside_all = {}, np.ones(len(values[HARMONY[0]]), dtype=bool)
    for k in HARMONY:
        lo, hi = np.percentile(reference[k], [low, high])
        v = np.asarray(values[k])
        inside = (v >= lo) & (v <= hi)
        inside_all &= inside
        result[k] = {"range": [float(lo), float(hi)], "inside": float(inside.mean()), "median": float(np.median(v))}
    result["inside_both"] = float(inside_all.mean())
    return result


def plot_chromas(views: dict, title: str = ""):
    """One (12, frames) chroma image per named clip, side by side: {name: (channels, samples) audio} -> figure."""
    import matplotlib.pyplot as plt  # matplotlib: only to plot
    fig, axes = plt.subplots(1, len(views), figsize=(3.8 * len(views), 2.6), sharey=True, squeeze=False)
    for ax, (name, audio) in zip(axes[0], views.items()):
        c = chroma(audio)
        ax.imshow(c, aspect="auto", origin="lower", cmap="magma", extent=(0, c.shape[1] * CHROMA_HOP / CHROMA_RATE, -0.5, 11.5))
        ax.set(title=name, xlabel="seconds", yticks=range(12), yticklabels="C C# D D# E F F# G G# A A# B".split())
    fig.suptitle(title or "pitch classes over time (each frame's mean removed)")
    fig.tight_layout()
    return fig


def chroma_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over frames of the cosine between two (12, frames) chromas (cut to the shorter one).

    A frame with no energy in either chroma counts as cosine 0: a silent output does not match."""
    frames = min(a.shape[1], b.shape[1])
    a, b = a[:, :frames], b[:, :frames]
    norms = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)  # (frames,)
    cosine = np.where(norms > 1e-9, (a * b).sum(axis=0) / np.maximum(norms, 1e-9), 0.0)
    return float(cosine.mean())


def chroma_motion(reference: np.ndarray, output: np.ndarray) -> float:
    """How much the output's harmony moves over time relative to the input's (1.0: as much).

        motion = mean_p std_t(c_out[p, t]) / mean_p std_t(c_ref[p, t])
    """
    moving = reference.std(axis=1).mean()
    return float(output.std(axis=1).mean() / moving) if moving > 1e-9 else 0.0


def note_measures(references: list, outputs: list, sample_rate: int = SAMPLE_RATE,
                  reference_chromas: list[np.ndarray] | None = None) -> dict:
    """Chroma identification and motion of N outputs against their N inputs (outputs[i] is for references[i]).

        S[i, j]        = sim(chroma(outputs[i]), chroma(references[j]))     (N, N)
        identification = share of i with S[i, i] > S[i, j] for every j != i   (a tie is a miss; chance 1/N)
        motion         = mean_i chroma_motion(references[i], outputs[i])

    `reference_chromas` may pass the references' chromas when they are already computed. Returns
    {"chroma_identification", "chroma_motion", "own_similarity" (mean of the diagonal), "other_similarity"
    (mean off it), "chance", "n_files", "similarity" (N x N list of lists), "output_chromas"}.
    """
    if len(references) != len(outputs) or len(references) < 2:
        raise ValueError(f"pass one output per reference, at least 2 pairs, in the same order; got "
                         f"{len(references)} references and {len(outputs)} outputs")
    c_ref = reference_chromas or [chroma(r, sample_rate) for r in references]
    c_out = [chroma(o, sample_rate) for o in outputs]
    n = len(references)
    similarity = np.array([[chroma_similarity(o, r) for r in c_ref] for o in c_out])  # (N, N)
    off = ~np.eye(n, dtype=bool)
    best_other = np.where(off, similarity, -np.inf).max(axis=1)
    identified = similarity.diagonal() > best_other
    return {"chroma_identification": float(identified.mean()),
            "chroma_motion": float(np.mean([chroma_motion(r, o) for r, o in zip(c_ref, c_out)])),
            "own_similarity": float(similarity.diagonal().mean()), "other_similarity": float(similarity[off].mean()),
            "chance": 1 / n, "n_files": n, "similarity": similarity.round(4).tolist(), "output_chromas": c_out}


def midi_chroma(midi_path, start: float, seconds: float) -> np.ndarray:
    """(12, frames) sounding pitch classes of a MIDI file at the chroma's frame times (drums left out),
    each frame's mean removed as in `chroma`; frames cover [start, start + seconds)."""
    import pretty_midi  # only for MIDI ground truth
    midi = pretty_midi.PrettyMIDI(str(midi_path))
    times = start + np.arange(1 + round(seconds * CHROMA_RATE) // CHROMA_HOP) * CHROMA_HOP / CHROMA_RATE
    sounding = np.zeros((12, len(times)), dtype=np.float32)
    for instrument in midi.instruments:
        if instrument.is_drum:
            continue
        for note in instrument.notes:
            on = (times >= note.start) & (times < note.end)
            sounding[note.pitch % 12, on] = 1.0
    return sounding - sounding.mean(axis=0, keepdims=True)


def midi_agreement(audio, midi_path, start: float, sample_rate: int = SAMPLE_RATE,
                   audio_chroma: np.ndarray | None = None) -> float:
    """sim between the audio's chroma (`audio_chroma` when already computed) and the MIDI's sounding pitch
    classes over the same span, counted over the frames where some pitched note sounds (1.0: the audio's
    chroma is exactly the notes)."""
    c_audio = chroma(audio, sample_rate) if audio_chroma is None else audio_chroma
    seconds = _mono(audio).shape[-1] / sample_rate
    c_midi = midi_chroma(midi_path, start, seconds)
    frames = min(c_audio.shape[1], c_midi.shape[1])
    c_audio, c_midi = c_audio[:, :frames], c_midi[:, :frames]
    sounding = np.abs(c_midi).sum(axis=0) > 0  # frames with a pitched note (not all 12 or none)
    if not sounding.any():
        return 0.0
    return chroma_similarity(c_audio[:, sounding], c_midi[:, sounding])


@lru_cache(maxsize=4)
def _band_filters(sample_rate: int) -> np.ndarray:
    import librosa  # slow to import: only where the stand-in is built
    return librosa.filters.mel(sr=sample_rate, n_fft=_FFT, n_mels=RHYTHM_BANDS, norm=None)  # (bands, freqs)


def rhythm_only(audio, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> torch.Tensor:
    """The stand-in that holds rhythm and loudness and no notes: the input's 24 mel-band envelopes on
    random-phase noise, per channel. (channels, samples) -> (channels, samples).

        E[b, t]   = sum_f M[b, f] |X[f, t]|^2                 band energies (M: 24 mel filters, peak 1)
        P[f, t]   = sum_b M[b, f] E[b, t] / sum_f' M[b, f']^2   each band's energy spread over its bins
        Y[f, t]   = sqrt(P[f, t]) * exp(i * uniform phase)   then the inverse STFT, scaled to the input's RMS
    """
    x = torch.as_tensor(np.asarray(audio), dtype=torch.float32)
    squeeze = x.ndim == 1
    x = x[None] if squeeze else x
    window = torch.hann_window(_FFT)
    spectrum = torch.stft(x, _FFT, _FFT // 4, window=window, return_complex=True)  # (A, F, N)
    filters = torch.from_numpy(_band_filters(sample_rate)).float()  # (bands, F)
    energy = torch.einsum("bf,afn->abn", filters, spectrum.abs().pow(2))  # (A, bands, N)
    # spread each band's energy over its bins: per-bin power = band energy / the band's filter mass
    per_bin = energy / filters.pow(2).sum(dim=1).clamp_min(1e-12)[None, :, None]  # (A, bands, N)
    power = torch.einsum("bf,abn->afn", filters, per_bin)  # (A, F, N)
    generator = torch.Generator().manual_seed(seed)
    phase = 2 * torch.pi * torch.rand(spectrum.shape, generator=generator)
    noise = torch.polar(power.clamp_min(0).sqrt(), phase)  # (A, F, N)
    y = torch.istft(noise, _FFT, _FFT // 4, window=window, length=x.shape[-1])  # (A, T)
    # frames of random phase overlap-add incoherently: restore each channel's level
    rms = lambda a: a.pow(2).mean(dim=-1, keepdim=True).sqrt()  # noqa: E731
    y = y * rms(x) / rms(y).clamp_min(1e-12)
    return y[0] if squeeze else y
