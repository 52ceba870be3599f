"""Audio files in and out: every waveform in samod is float32 stereo at 44.1 kHz.

Stable Audio 2 works on 44.1 kHz stereo (paper 1 §2.1). Whatever a dataset holds is brought to that
form here, once: mono is duplicated to both channels, more than two channels are cut to the first
two, other sample rates are resampled (librosa's soxr resampler).

Files that cannot be used never stop an import or a training run: `probe` returns a one-line reason
(unreadable, empty, silent) that callers print and write to a skipped-files list.

Shapes: audio arrays are (channels, samples), the layout torch and auraloss use.
Taught in notebooks/00_data.ipynb.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from samod.profiles import SAMPLE_RATE

SILENCE_PEAK = 1e-4  # a file whose peak absolute value is below this (-80 dBFS) counts as silent


class AudioError(Exception):
    """An audio file that samod cannot use; the message is a one-line reason."""


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """(samples,) or (channels, samples) -> (2, samples): mono duplicated, extra channels dropped."""
    if audio.ndim == 1:
        audio = audio[None]  # (1, samples)
    if audio.ndim != 2:
        raise AudioError(f"expected (channels, samples) audio, got shape {tuple(audio.shape)}")
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)  # (2, samples)
    return audio[:2]  # (2, samples)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """(channels, samples at orig_sr) -> (channels, samples at target_sr)."""
    if orig_sr == target_sr:
        return audio
    import librosa  # librosa: heavy to import (numba), needed only to resample

    return librosa.resample(audio, orig_sr=orig_sr, target_sr=target_sr, axis=-1).astype(np.float32)


def read_audio(path: str | Path, start: float = 0.0, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Read `seconds` of a file from `start` as it is stored: ((channels, samples) float32, sample rate)."""
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            f.seek(min(int(round(start * sr)), f.frames))
            frames = -1 if seconds is None else int(round(seconds * sr))
            data = f.read(frames, dtype="float32", always_2d=True)  # (samples, channels)
    except Exception as err:  # soundfile raises several types; all mean "cannot use this file"
        raise AudioError(f"cannot read {Path(path).name}: {str(err).strip().splitlines()[0]}") from None
    return data.T.copy(), sr  # (channels, samples)


def load_audio(path: str | Path, start: float = 0.0, seconds: float | None = None,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a file as samod uses audio: (2, samples) float32 at `sample_rate`.

    `start` and `seconds` select a window (in seconds of the file) without reading the rest.
    """
    audio, sr = read_audio(path, start, seconds)
    return resample(to_stereo(audio), sr, sample_rate)


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write (channels, samples) float audio; the format follows the suffix (.flac, .wav: 16-bit PCM)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    sf.write(str(path), np.clip(audio, -1.0, 1.0).T, sample_rate, subtype="PCM_16")
    return path


@dataclass
class AudioInfo:
    seconds: float  # duration
    sample_rate: int  # as stored in the file
    channels: int  # as stored in the file
    peak: float  # largest absolute sample value


def probe(path: str | Path) -> AudioInfo:
    """Read a whole file and check it can be trained on; raise AudioError with the reason if not."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"missing file {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"empty file {path.name} (0 bytes)")
    audio, sr = read_audio(path)
    if audio.shape[1] == 0:
        raise AudioError(f"no samples in {path.name}")
    if not np.isfinite(audio).all():
        raise AudioError(f"non-finite samples (NaN or inf) in {path.name}")
    peak = float(np.abs(audio).max())
    if peak < SILENCE_PEAK:
        raise AudioError(f"silent file {path.name} (peak {peak:.1e} < {SILENCE_PEAK:.0e})")
    return AudioInfo(seconds=audio.shape[1] / sr, sample_rate=sr, channels=audio.shape[0], peak=peak)
