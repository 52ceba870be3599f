"""Build the rendered song corpus: compose (compose.py), render (render.py), write files and metadata.

    python -m data_prep.synth --out DIR --n-songs N --seed S [--min-seconds A] [--max-seconds B] [--workers W]

writes DIR/audio/<id>.flac (44.1 kHz stereo, 16-bit), DIR/midi/<id>.mid (the score, for analysis)
and DIR/metadata.jsonl, one JSON object per song:

    id, path (relative to DIR), midi, seconds, sample_rate, genre, bpm, key, moods, instruments,
    panning (instrument -> stereo position), sections (list of {label, start, end, variation}),
    renderer, seed (the song's own seed: compose(seed, ...) rebuilds it), corpus_seed, source.

Song i of a corpus with seed S has the seed S * 1_000_000 + i, so the same S and renderer give
identical metadata and identical audio, whatever the number of workers. An interrupted build,
rerun with the same arguments, resumes where it stopped (data_prep/common.py); a song that fails
to render or comes out silent is skipped with its reason and listed in DIR/skipped.txt.

`render_style(genre, out_dir, n_songs)` renders songs of a Genre row of one's own (a style the corpus lacks)
with a captions table for data_prep.importers.import_folder: the data of notebooks/10_fine_tuning.ipynb.

Without arguments beyond --out, the active profile's corpus size is used (samod/profiles.py).
The renderer is TinySoundFont unless FluidSynth is asked for (--renderer fluidsynth or
SAMOD_RENDERER=fluidsynth): the default corpus is the same whatever a machine has installed.
Taught in notebooks/00_data.ipynb.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from data_prep.common import Progress
from data_prep.compose import Genre, compose
from data_prep.render import get_renderer
from samod.audio import SILENCE_PEAK, save_audio
from samod.profiles import SAMPLE_RATE, get_profile


def song_id(index: int) -> str:
    return f"song_{index:05d}"


def song_seed(corpus_seed: int, index: int) -> int:
    return corpus_seed * 1_000_000 + index


def make_song(out_dir: str, index: int, corpus_seed: int, min_seconds: float, max_seconds: float,
              renderer_name: str) -> tuple[str, dict | None, str | None]:
    """Compose, render and write song `index`; returns (id, metadata record or None, skip reason or None)."""
    sid, seed = song_id(index), song_seed(corpus_seed, index)
    try:
        song = compose(seed, min_seconds, max_seconds)
        renderer = get_renderer(renderer_name)
        audio = renderer.render(song.midi, song.seconds)  # (2, samples)
        peak = float(abs(audio).max())
        if peak < SILENCE_PEAK:
            return sid, None, f"rendered silent (peak {peak:.1e}) with {renderer.describe()}"
        out = Path(out_dir)
        (out / "midi").mkdir(parents=True, exist_ok=True)
        tmp_audio, tmp_midi = out / "audio" / f".{sid}.tmp.flac", out / "midi" / f".{sid}.tmp.mid"
        save_audio(tmp_audio, audio, SAMPLE_RATE)
        song.midi.write(str(tmp_midi))
        os.replace(tmp_audio, out / "audio" / f"{sid}.flac")  # appear whole or not at all
        os.replace(tmp_midi, out / "midi" / f"{sid}.mid")
    except Exception as err:  # any failure skips this one song, never the build
        return sid, None, f"{type(err).__name__}: {err}"
    record = {"id": sid, "path": f"audio/{sid}.flac", "midi": f"midi/{sid}.mid",
              "seconds": round(audio.shape[1] / SAMPLE_RATE, 4), "sample_rate": SAMPLE_RATE,
              **song.metadata(), "renderer": renderer.name, "seed": seed, "corpus_seed": corpus_seed,
              "source": "samod-synth", "caption": None}
    return sid, record, None


def build_corpus(out_dir: str | Path, n_songs: int, seed: int = 0, min_seconds: float = 20.0,
                 max_seconds: float = 45.0, workers: int = 1, renderer: str = "auto",
                 progress: bool = True) -> tuple[list[dict], list[tuple[str, str]]]:
    """Render `n_songs` songs into `out_dir` (resuming a previous run); returns (records, skipped)."""
    renderer_name = get_renderer(renderer).name  # resolve "auto" once, so every song uses the same one
    out_dir = Path(out_dir)
    params = {"n_songs": n_songs, "seed": seed, "min_seconds": min_seconds, "max_seconds": max_seconds,
              "renderer": renderer_name}
    state = Progress(out_dir, params)
    ids = [song_id(i) for i in range(n_songs)]
    todo = [i for i, sid in enumerate(ids) if sid not in state.done]
    if len(todo) < n_songs:
        print(f"resuming {out_dir}: {n_songs - len(todo)} of {n_songs} songs already done")
    args = [(str(out_dir), i, seed, min_seconds, max_seconds, renderer_name) for i in todo]
    bar = tqdm(total=len(todo), desc=f"rendering ({renderer_name})", unit="song", disable=not progress)
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = pool.map(make_song, *zip(*args), chunksize=1)
            for sid, record, reason in results:
                state.add(sid, record) if record else state.skip(sid, reason)
                bar.update()
    else:
        for a in args:
            sid, record, reason = make_song(*a)
            state.add(sid, record) if record else state.skip(sid, reason)
            bar.update()
    bar.close()
    return state.finish(ids)


def render_style(genre: Genre, out_dir: str | Path, n_songs: int, seed: int = 0, min_seconds: float = 20.0,
                 max_seconds: float = 30.0, renderer: str = "auto", progress: bool = True) -> list[dict]:
    """Render `n_songs` songs of one Genre row (a style of one's own) into out_dir/audio/ and write
    out_dir/captions.csv: the table that import_folder(out_dir / "audio", out_dir / "captions.csv", ...)
    (data_prep/importers.py) reads, with path (relative to out_dir/audio), genre, bpm, key, moods and
    instruments; no caption, so prompts are made from the metadata as for the corpus. Returns the records
    (id, path, seconds and the song's metadata). Song i has the seed seed * 1_000_000 + i; files already
    written are kept. Taught in notebooks/10_fine_tuning.ipynb."""
    out_dir, renderer_obj = Path(out_dir), get_renderer(renderer)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    records = []
    for i in tqdm(range(n_songs), desc=f"rendering {genre.name}", unit="song", disable=not progress):
        sid, song = song_id(i), compose(song_seed(seed, i), min_seconds, max_seconds, genre=genre)
        path = out_dir / "audio" / f"{sid}.flac"
        if not path.exists():
            tmp = path.with_name(f".{sid}.tmp.flac")
            save_audio(tmp, renderer_obj.render(song.midi, song.seconds), SAMPLE_RATE)  # (2, samples)
            os.replace(tmp, path)  # appears whole or not at all
        records.append({"id": sid, "path": f"audio/{sid}.flac", "seconds": round(song.seconds, 4),
                        **song.metadata()})
    with open(out_dir / "captions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "genre", "bpm", "key", "moods", "instruments"])
        for r in records:
            writer.writerow([f"{r['id']}.flac", r["genre"], r["bpm"], r["key"], ", ".join(r["moods"]),
                             ", ".join(r["instruments"])])
    return records


def main(argv: list[str] | None = None) -> None:
    profile = get_profile()
    parser = argparse.ArgumentParser(prog="python -m data_prep.synth", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(profile.corpus_dir), help="output folder (default: %(default)s)")
    parser.add_argument("--n-songs", type=int, default=profile.n_songs, help="default: %(default)s (profile)")
    parser.add_argument("--seed", type=int, default=profile.seed)
    parser.add_argument("--min-seconds", type=float, default=profile.min_seconds)
    parser.add_argument("--max-seconds", type=float, default=profile.max_seconds)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--renderer", default="auto", choices=["auto", "tinysoundfont", "fluidsynth"],
                        help="auto (default): $SAMOD_RENDERER when set, else tinysoundfont, on every machine; "
                             "fluidsynth only when asked for (apt-get install fluidsynth fluid-soundfont-gm)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    a = parser.parse_args(argv)
    if a.n_songs < 1 or a.min_seconds <= 0 or a.max_seconds <= a.min_seconds:
        parser.error("need --n-songs >= 1 and 0 < --min-seconds < --max-seconds")
    try:  # a renderer asked for but missing (or an unknown $SAMOD_RENDERER): one line saying how to install it
        get_renderer(a.renderer)
    except (RuntimeError, ValueError) as error:
        parser.error(str(error))
    start = time.perf_counter()
    records, skipped = build_corpus(a.out, a.n_songs, a.seed, a.min_seconds, a.max_seconds, a.workers,
                                    a.renderer, progress=not a.quiet)
    minutes = sum(r["seconds"] for r in records) / 60
    renderer = records[0]["renderer"] if records else a.renderer
    print(f"corpus: {len(records)} songs ({minutes:.1f} audio minutes, {renderer}), {len(skipped)} skipped, "
          f"in {time.perf_counter() - start:.1f} s -> {Path(a.out) / 'metadata.jsonl'}")
    if not records:
        sys.exit("no song could be rendered: see the reasons above")


if __name__ == "__main__":
    main()
