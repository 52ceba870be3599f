"""Is the music audible? librosa's tempo estimator must recover each song's tempo from the rendered audio.

The corpus is only useful if what the metadata says can be heard. Tempo is the easiest claim to
check without a trained model: librosa's tempo estimator (the first stage of its beat tracker,
Ellis 2007: the autocorrelation of the onset strength, weighted by a log-normal prior around 120 BPM)
estimates the BPM of each file, and the estimate counts as recovered when it is within `tolerance`
(4 %) of the metadata BPM, or of half or double it (tempo estimators often lock to another metrical
level). The rate per genre shows which grooves carry their tempo (genres without drums are the hard cases).

`librosa.beat.beat_track(y, sr)` returns the same tempo (it estimates it exactly this way, then places
the beats with a dynamic programme that needs numba's compiler); the beats themselves are not needed here.

    python -m data_prep.tempo DIR [--max-songs N] [--json OUT.json]

Taught in notebooks/00_data.ipynb.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
from tqdm.auto import tqdm

from samod.audio import load_audio
from samod.data import read_metadata
from samod.profiles import get_profile

ANALYSIS_RATE = 22050  # Hz: librosa's default, plenty for onsets
TOLERANCE = 0.04  # relative tempo error counted as a hit


def estimate_bpm(path: str, seconds: float | None = 30.0) -> float:
    """librosa's tempo estimate of the first `seconds` of a file (mono mix at 22.05 kHz); 0.0 for silence.

    The onset strength is the median over mel bands of the positive spectral flux, as beat_track computes it."""
    import librosa  # librosa: heavy to import (numba), needed only for beat tracking

    audio = load_audio(path, seconds=seconds, sample_rate=ANALYSIS_RATE).mean(axis=0)  # (samples,)
    onsets = librosa.onset.onset_strength(y=audio, sr=ANALYSIS_RATE, aggregate=np.median)  # (frames,)
    if not onsets.any():
        return 0.0
    return float(librosa.feature.tempo(onset_envelope=onsets, sr=ANALYSIS_RATE)[0])


def tempo_matches(estimate: float, bpm: float, tolerance: float = TOLERANCE) -> bool:
    """True when `estimate` is `bpm`, half of it or double it, within `tolerance` (relative)."""
    return any(abs(estimate - bpm * k) <= tolerance * bpm * k for k in (0.5, 1.0, 2.0))


def tempo_recovery(records: list[dict], progress: bool = True) -> dict:
    """Estimate every song's tempo; returns the overall rate, the rate per genre and each song's estimate."""
    estimates = [estimate_bpm(r["audio_path"]) for r in tqdm(records, desc="tempo", disable=not progress)]
    per_genre = defaultdict(list)
    songs = []
    for r, est in zip(records, estimates):
        hit = tempo_matches(est, r["bpm"])
        per_genre[r["genre"]].append(hit)
        songs.append({"id": r["id"], "genre": r["genre"], "bpm": r["bpm"], "estimate": round(est, 2), "hit": hit})
    rate = {g: float(np.mean(h)) for g, h in sorted(per_genre.items())}
    return {"rate": float(np.mean([s["hit"] for s in songs])), "per_genre": rate,
            "genres_recovered": sum(v >= 0.5 for v in rate.values()), "n_genres": len(rate),
            "tolerance": TOLERANCE, "songs": songs}


def main(argv: list[str] | None = None) -> None:

    parser = argparse.ArgumentParser(prog="python -m data_prep.tempo", description=__doc__.split("\n")[0])
    parser.add_argument("dir", nargs="?", default=str(get_profile().corpus_dir))
    parser.add_argument("--max-songs", type=int, default=None)
    parser.add_argument("--json", default=None, help="write the results here")
    a = parser.parse_args(argv)
    records = read_metadata(f"{a.dir}/metadata.jsonl")[: a.max_songs]
    result = tempo_recovery(records)
    for genre, rate in result["per_genre"].items():
        print(f"{genre:12s} {rate:6.0%}")
    print(f"tempo recovered for {result['rate']:.0%} of {len(records)} songs; "
          f"{result['genres_recovered']} of {result['n_genres']} genres at 50 % or more")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
