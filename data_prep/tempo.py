"""Is the music audible? A beat tracker must recover each song's tempo from the rendered audio.

The corpus is only useful if what the metadata says can be heard. Tempo is the easiest claim to
check without a trained model: librosa's beat tracker (Ellis 2007) estimates the BPM of each file,
and the estimate counts as recovered when it is within `tolerance` (4 %) of the metadata BPM, or of
half or double it (beat trackers often lock to another metrical level). The rate per genre shows
which grooves carry their tempo (genres without drums are the hard cases).

    python -m data_prep.tempo DIR [--max-songs N] [--json OUT.json]

Taught in notebooks/00_data.ipynb.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import tempfile
from collections import defaultdict
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from tqdm.auto import tqdm

from samod.audio import load_audio

ANALYSIS_RATE = 22050  # Hz: librosa's default, plenty for onsets
TOLERANCE = 0.04  # relative tempo error counted as a hit


def estimate_bpm(path: str, seconds: float | None = 30.0) -> float:
    """librosa's tempo estimate of the first `seconds` of a file (mono mix at 22.05 kHz)."""
    import librosa

    audio = load_audio(path, seconds=seconds, sample_rate=ANALYSIS_RATE).mean(axis=0)  # (samples,)
    tempo, _ = librosa.beat.beat_track(y=audio, sr=ANALYSIS_RATE)
    return float(np.atleast_1d(tempo)[0])


def tempo_matches(estimate: float, bpm: float, tolerance: float = TOLERANCE) -> bool:
    """True when `estimate` is `bpm`, half of it or double it, within `tolerance` (relative)."""
    return any(abs(estimate - bpm * k) <= tolerance * bpm * k for k in (0.5, 1.0, 2.0))


def _estimate_all(paths: list[str], workers: int, progress: bool, attempts: int = 6) -> list[float]:
    """estimate_bpm of every path in worker processes. Spawned, not forked: a fork of a process that already
    runs torch / OpenMP threads (a Jupyter kernel) can kill a worker abruptly.

    librosa's beat tracker runs numba kernels that numba compiles and caches on disk, and numba's cache is
    not safe when several processes write it at once: on a fresh install two workers compiling together
    left a cache that made every later worker segfault. So the workers get a cache folder of their own
    for this call (NUMBA_CACHE_DIR), one worker fills it on the first song, and only then do `workers`
    read it in parallel. A worker that still dies leaves its unfinished songs to a fresh pool (finished
    ones are kept); a song still missing after `attempts` pools counts as not recovered (NaN), with a warning."""
    estimates: dict[int, float] = {}
    bar = tqdm(total=len(paths), desc="beat tracking", disable=not progress)
    with tempfile.TemporaryDirectory(prefix="samod-numba-") as cache, _environment(NUMBA_CACHE_DIR=cache):
        for attempt in range(attempts + 1):
            todo = [i for i in range(len(paths)) if i not in estimates]
            if not todo:
                break
            first = attempt == 0  # one worker compiles and caches the kernels on the first song
            with ProcessPoolExecutor(1 if first else workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {i: pool.submit(estimate_bpm, paths[i]) for i in (todo[:1] if first else todo)}
                for i, future in futures.items():
                    try:
                        estimates[i] = future.result()
                        bar.update(1)
                    except BrokenProcessPool:
                        continue  # a worker died with this song unfinished: retried in the next pool
    bar.close()
    missing = [paths[i] for i in range(len(paths)) if i not in estimates]
    if missing:
        warnings.warn(f"beat tracking crashed its worker {attempts} times on {len(missing)} songs "
                      f"(counted as not recovered): {missing[:3]}")
    return [estimates.get(i, float("nan")) for i in range(len(paths))]


@contextlib.contextmanager
def _environment(**variables):
    """Environment variables set while the block runs (spawned processes read them when they start)."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def tempo_recovery(records: list[dict], workers: int = 1, progress: bool = True) -> dict:
    """Estimate every song's tempo; returns the overall rate, the rate per genre and each song's estimate."""
    paths = [r["audio_path"] for r in records]
    estimates = _estimate_all(paths, workers, progress)
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
    from samod.data import read_metadata
    from samod.profiles import get_profile

    parser = argparse.ArgumentParser(prog="python -m data_prep.tempo", description=__doc__.split("\n")[0])
    parser.add_argument("dir", nargs="?", default=str(get_profile().corpus_dir))
    parser.add_argument("--max-songs", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", default=None, help="write the results here")
    a = parser.parse_args(argv)
    records = read_metadata(f"{a.dir}/metadata.jsonl")[: a.max_songs]
    result = tempo_recovery(records, a.workers)
    for genre, rate in result["per_genre"].items():
        print(f"{genre:12s} {rate:6.0%}")
    print(f"tempo recovered for {result['rate']:.0%} of {len(records)} songs; "
          f"{result['genres_recovered']} of {result['n_genres']} genres at 50 % or more")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
