"""Importers: real music datasets turned into samod's metadata.jsonl.

Stable Audio 2 trains on audio paired with text metadata (natural-language descriptions, BPM, genre,
moods, instruments; paper 1 §3.1) and is evaluated on the Song Describer Dataset, keeping only the 586
captions that mention no singing (paper 1 §4.1, footnote 10). The rendered corpus (data_prep.synth)
stands in for the paper's licensed data; these importers bring real datasets into the same form, so that
every later stage (encoding, prompts, training, evaluation) reads one kind of folder:

- `import_folder`: any folder of audio files plus a CSV or JSONL table of captions and metadata.
- `import_fma`: the Free Music Archive (Defferrard et al. 2017, github.com/mdeff/fma).
- `import_song_describer`: the Song Describer Dataset (Manco et al. 2023,
  github.com/mulab-mir/song-describer-dataset), optionally only its no-singing captions.

Each writes OUT/metadata.jsonl, one record per usable item with the keys of `metadata_fields` plus
id, path (relative to OUT when the file lies under OUT, else absolute), seconds and sample_rate as
measured by samod.audio.probe. Corrupt, empty, silent or missing files, and files shorter than one latent
frame (LATENT_FRAME_SAMPLES), never stop an import: they are listed with a one-line reason in
OUT/skipped.txt. An interrupted import, rerun, resumes where it stopped
(data_prep.common.Progress). Nothing here downloads anything: fetch the datasets yourself.

Command line (see --help of each):
    python -m data_prep.importers folder --audio-dir D --captions F --out OUT [--workers W]
    python -m data_prep.importers fma --metadata-dir M --audio-dir D --out OUT [--subset small]
    python -m data_prep.importers song-describer --csv F --audio-dir D --out OUT [--no-singing]

Taught in notebooks/00_data.ipynb.
"""
from __future__ import annotations

import argparse
import ast
import csv
import inspect
import json
import math
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from data_prep.common import METADATA, Progress
from samod.audio import AudioError, AudioInfo, probe
from samod.profiles import SAMPLE_RATE

# Samples of audio per latent frame: the autoencoder's downsampling (paper 1 §2.1: strides 2*4*4*8*8 = 2048 at
# every profile). Shorter audio has no latent frame, so the importers skip it.
LATENT_FRAME_SAMPLES = 2048

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".aif", ".aiff"}

# Paper 1 §4.1, footnote 10: "Prompts containing any of those words were removed".
NO_SINGING_WORDS = [
    "speech", "speech synthesizer", "hubbub", "babble", "singing", "male", "man", "female", "woman",
    "child", "kid", "synthetic singing", "choir", "chant", "mantra", "rapping", "humming", "groan",
    "grunt", "vocal", "vocalist", "singer", "voice", "acapella",
]
# Whole words only ("human" does not contain the word "man"), any case, with a regular plural
# ("vocals", "voices", "kids") counted as the word, since "soft vocals" means singing as surely as "vocal".
_SINGING = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in sorted(NO_SINGING_WORDS, key=len, reverse=True))
                      + r")(?:s|es)?\b", re.IGNORECASE)


def is_no_singing(caption: str) -> bool:
    """True when the caption uses none of NO_SINGING_WORDS (the paper's no-singing subset keeps these)."""
    return _SINGING.search(caption or "") is None


def metadata_fields(source: str, caption=None, genre=None, bpm=None, key=None, moods=(), instruments=(),
                    title=None, artist=None, album=None, year=None, tags=()) -> dict:
    """Every record key but id/path/seconds/sample_rate, with None or [] where a dataset says nothing."""
    return {"genre": genre, "bpm": bpm, "key": key, "moods": list(moods), "instruments": list(instruments),
            "sections": [],  # real recordings come without section annotations
            "renderer": None, "seed": None,  # only rendered (synthetic) songs have these
            "source": source, "caption": caption,
            "title": title, "artist": artist, "album": album, "year": year, "tags": list(tags)}


@dataclass
class Item:
    id: str  # unique within the import; the record's id
    audio: Path  # where the audio file should be
    fields: dict  # metadata_fields(...) for this item
    problem: str | None = None  # a reason to skip found before reading the audio (bad metadata)


# ---------------------------------------------------------------- the shared loop

def _stored_path(audio: Path, out_dir: Path) -> str:
    audio, out_dir = audio.resolve(), out_dir.resolve()
    return audio.relative_to(out_dir).as_posix() if audio.is_relative_to(out_dir) else str(audio)


def _measure(path: Path) -> AudioInfo | str:
    """The file's AudioInfo, or the reason it cannot be trained on."""
    try:
        info = probe(path)
    except AudioError as err:
        return str(err)
    samples = round(info.seconds * SAMPLE_RATE)  # as samod reads it: resampled to 44.1 kHz
    if samples < LATENT_FRAME_SAMPLES:
        return (f"too short: {path.name} holds {samples} samples at {SAMPLE_RATE} Hz, less than one latent frame "
                f"({LATENT_FRAME_SAMPLES} samples): the autoencoder has nothing to encode")
    return info


def _import(items: list[Item], out_dir, params: dict, workers: int = 1, progress: bool = True):
    """Probe each item's file (once per file), record or skip it, then write metadata.jsonl and skipped.txt."""
    out_dir = Path(out_dir)
    seen = set()
    for item in items:
        if item.id in seen:
            raise ValueError(f"two items share the id {item.id!r}; every record needs its own id")
        seen.add(item.id)
    log = Progress(out_dir, params)
    todo = [item for item in items if item.id not in log.done]  # a rerun skips finished items
    for item in todo:
        if item.problem:
            log.skip(item.id, item.problem)
    by_file: dict[Path, list[Item]] = {}  # one file may carry several captions (Song Describer)
    for item in todo:
        if not item.problem:
            by_file.setdefault(item.audio, []).append(item)
    files = list(by_file)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = pool.map(_measure, files) if workers > 1 else map(_measure, files)
        for path, info in tqdm(zip(files, results), total=len(files), desc=f"import {params['importer']}",
                               unit="file", disable=not progress):
            for item in by_file[path]:
                if isinstance(info, str):
                    log.skip(item.id, info)
                else:
                    log.add(item.id, {"id": item.id, "path": _stored_path(path, out_dir),
                                      "seconds": round(info.seconds, 3), "sample_rate": info.sample_rate,
                                      **item.fields})
    records, skipped = log.finish([item.id for item in items])
    print(f"imported {len(records)} item(s), skipped {len(skipped)}: wrote {out_dir / METADATA}")
    return records, skipped


# ---------------------------------------------------------------- value cleaning

def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _text(value) -> str | None:
    return None if _missing(value) else str(value).strip()


def _number(value, name: str) -> float | None:
    if _missing(value):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not a number") from None


def _year(value) -> int | None:
    """2009, "2009", "2009-01-05 00:00:00" -> 2009."""
    match = None if _missing(value) else re.match(r"\s*(\d{4})", str(value))
    return int(match.group(1)) if match else None


def _list(value) -> list[str]:
    """A JSON list, a Python-list string "['rock', 'indie']" (FMA) or "rock, indie" (CSV) -> ["rock", "indie"]."""
    if _missing(value):
        return []
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):  # "[live], bootleg" is a comma-separated string after all
            pass
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip()]


# ---------------------------------------------------------------- (a) any folder + a captions table

FILE_COLUMNS = ("path", "file", "filename")


def read_table(path) -> list[dict]:
    """Rows of a .csv (header row) or .jsonl (one object per line) table, keys lower-cased."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    elif path.suffix.lower() in (".jsonl", ".json"):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        raise ValueError(f"captions table {path} must be .csv or .jsonl (one JSON object per line)")
    return [{str(k).strip().lower(): v for k, v in row.items()} for row in rows]


def _row_fields(row: dict, where: str = "a row") -> dict:
    caption = row.get("caption") if not _missing(row.get("caption")) else row.get("description")
    try:
        bpm = _number(row.get("bpm"), "bpm")
    except ValueError as err:  # e.g. bpm "fast": the song is still good audio with a caption; tempo unknown
        warnings.warn(f"{where}: {err}; the song is kept with bpm unknown (None)", stacklevel=3)
        bpm = None
    return metadata_fields(
        "folder", caption=_text(caption), genre=_text(row.get("genre")), bpm=bpm,
        key=_text(row.get("key")), moods=_list(row.get("moods")), instruments=_list(row.get("instruments")),
        title=_text(row.get("title")), artist=_text(row.get("artist")), album=_text(row.get("album")),
        year=_year(row.get("year")), tags=_list(row.get("tags")))


def import_folder(audio_dir, captions_file, out_dir, workers: int = 1, progress: bool = True):
    """Import a folder of audio files described by a CSV or JSONL table; returns (records, skipped).

    The table names each file in a `path`, `file` or `filename` column (relative to audio_dir) and may
    hold caption (or description), genre, bpm, key, moods, instruments, tags, title, artist, album, year.
    List fields are comma-separated in CSV, JSON lists (or comma-separated strings) in JSONL.
    Each row is one record; a file named by several rows gives ids "<file>", "<file>#2", ...
    Rows naming a missing file, or a path outside audio_dir (e.g. "../x.wav", an absolute path; symbolic
    links are resolved first), are skipped with the reason. A bpm that is not a number is a warning: the
    song is kept with bpm None. Audio files that no row names are imported
    too, with caption and metadata unknown: unlabelled audio still trains the autoencoder.
    """
    audio_dir = Path(audio_dir)
    rows = read_table(captions_file)
    if rows and not any(c in rows[0] for c in FILE_COLUMNS):
        raise ValueError(f"{captions_file} has columns {sorted(rows[0])} but none naming the audio file: "
                         f"add one called {' or '.join(FILE_COLUMNS)} (path relative to {audio_dir})")
    items, rows_per_file = [], {}  # audio path -> rows naming it so far
    for number, row in enumerate(rows, start=1):
        name = next((str(row[c]).strip() for c in FILE_COLUMNS if not _missing(row.get(c))), None)
        if name is None:
            print(f"row {number} of {captions_file} names no file; ignored")
            continue
        audio = Path(os.path.normpath(audio_dir / name))
        rows_per_file[audio] = count = rows_per_file.get(audio, 0) + 1
        item_id = Path(name).as_posix() if count == 1 else f"{Path(name).as_posix()}#{count}"
        if not audio.resolve().is_relative_to(audio_dir.resolve()):  # "../../etc/passwd", "/elsewhere/x.wav"
            items.append(Item(item_id, audio, {}, problem=f"row {number}: path {name!r} leaves the audio folder "
                                                          f"{audio_dir}; name files relative to it, inside it"))
            continue
        try:
            items.append(Item(item_id, audio, _row_fields(row, f"row {number} of {captions_file}")))
        except ValueError as err:  # a value no field can hold: skip the row, say why
            items.append(Item(item_id, audio, {}, problem=f"row {number}: {err}"))
    for audio in sorted(p for p in audio_dir.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        audio = Path(os.path.normpath(audio))
        if audio not in rows_per_file:
            item_id = audio.relative_to(os.path.normpath(audio_dir)).as_posix()
            outside = not audio.resolve().is_relative_to(audio_dir.resolve())  # a link pointing out of the folder
            items.append(Item(item_id, audio, metadata_fields("folder"),
                              problem=f"{item_id} links to a file outside the audio folder" if outside else None))
    params = {"importer": "folder", "audio_dir": str(audio_dir.resolve()),
              "captions": str(Path(captions_file).resolve())}
    return _import(items, out_dir, params, workers, progress)


# ---------------------------------------------------------------- (b) Free Music Archive

FMA_SUBSETS = ("small", "medium", "large")  # each contains the previous; fma_full holds the large tracks


def fma_audio_path(audio_dir, track_id: int) -> Path:
    """FMA's layout (utils.get_audio_path): track 2 -> audio_dir/000/000002.mp3."""
    tid = f"{int(track_id):06d}"
    return Path(audio_dir) / tid[:3] / f"{tid}.mp3"


def read_fma_tracks(path):
    """tracks.csv: two header rows (group album/artist/set/track, then column), then a `track_id` row."""
    import pandas as pd  # pandas: heavy to import, needed only for FMA's tables

    tracks = pd.read_csv(path, index_col=0, header=[0, 1])
    if tracks.columns.nlevels != 2 or "track" not in tracks.columns.get_level_values(0):
        raise ValueError(f"{path} is not FMA's tracks.csv: expected two header rows whose first names the "
                         f"groups album, artist, set, track (fma_metadata.zip from github.com/mdeff/fma)")
    return tracks


def import_fma(fma_metadata_dir, audio_dir, out_dir, subset: str | None = None, workers: int = 1,
               progress: bool = True):
    """Import FMA tracks: genre, tags, title, artist, album, year from fma_metadata; returns (records, skipped).

    subset "small" / "medium" / "large" ("full" = "large") keeps the tracks of that subset, which include
    those of the smaller subsets; None keeps every track of tracks.csv. Pick the subset of the audio you
    have, else the tracks whose mp3 is absent are listed as skipped. FMA has no captions (caption None);
    the genre is track.genre_top, or, where FMA leaves it empty, the title of the first of track.genres.
    """
    import pandas as pd  # pandas: heavy to import, needed only for FMA's tables

    metadata_dir = Path(fma_metadata_dir)
    tracks = read_fma_tracks(metadata_dir / "tracks.csv")
    genre_titles = {}
    if (metadata_dir / "genres.csv").exists():
        genres = pd.read_csv(metadata_dir / "genres.csv", index_col=0)  # genre_id, #tracks, parent, title, ...
        genre_titles = {int(i): str(t) for i, t in genres["title"].items()}
    if subset is not None:
        subset = "large" if subset == "full" else subset
        if subset not in FMA_SUBSETS:
            raise ValueError(f"subset {subset!r} is not one of {FMA_SUBSETS + ('full',)}")
        rank = tracks["set", "subset"].map({s: i for i, s in enumerate(FMA_SUBSETS)})
        tracks = tracks[rank <= FMA_SUBSETS.index(subset)]

    def column(group: str, name: str) -> list:
        return list(tracks[group, name]) if (group, name) in tracks.columns else [None] * len(tracks)

    items = []
    for tid, title, genre_top, genre_ids, tags, created, artist, album, released in zip(
            tracks.index, column("track", "title"), column("track", "genre_top"), column("track", "genres"),
            column("track", "tags"), column("track", "date_created"), column("artist", "name"),
            column("album", "title"), column("album", "date_released")):
        genre = _text(genre_top)
        if genre is None:
            genre = next((genre_titles[int(g)] for g in _list(genre_ids) if int(g) in genre_titles), None)
        year = _year(released) or _year(created)
        items.append(Item(f"fma-{int(tid):06d}", fma_audio_path(audio_dir, tid),
                          metadata_fields("fma", genre=genre, title=_text(title), artist=_text(artist),
                                          album=_text(album), year=year, tags=_list(tags))))
    params = {"importer": "fma", "metadata_dir": str(metadata_dir.resolve()),
              "audio_dir": str(Path(audio_dir).resolve()), "subset": subset}
    return _import(items, out_dir, params, workers, progress)


# ---------------------------------------------------------------- (c) Song Describer Dataset

SONG_DESCRIBER_COLUMNS = ("caption_id", "track_id", "caption", "path")  # also is_valid_subset, familiarity,
# artist_id, album_id, duration (of the full Jamendo track, not of the 2-minute excerpt shipped)


def song_describer_audio_path(audio_dir, relative: str) -> Path:
    """The csv says "26/226.mp3"; audio.zip holds audio/26/226.2min.mp3. Try both names, in both roots."""
    audio_dir, relative = Path(audio_dir), Path(relative)
    excerpt = relative.with_name(relative.stem + ".2min" + relative.suffix)
    candidates = [root / name for root in (audio_dir, audio_dir / "audio") for name in (relative, excerpt)]
    return next((p for p in candidates if p.exists()), candidates[0])


def import_song_describer(csv_path, audio_dir, out_dir, no_singing: bool = False, workers: int = 1,
                          progress: bool = True):
    """One record per Song Describer caption (id "sdd-<caption_id>"); returns (records, skipped).

    no_singing=True keeps only the captions that `is_no_singing` accepts (paper 1 §4.1's benchmark).
    """
    rows = read_table(csv_path)
    missing = [c for c in SONG_DESCRIBER_COLUMNS if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{csv_path} lacks the Song Describer columns {missing}; expected song_describer.csv "
                         f"from zenodo.org/record/10072001 with {', '.join(SONG_DESCRIBER_COLUMNS)}, ...")
    kept = [row for row in rows if not no_singing or is_no_singing(row["caption"])]
    if no_singing:
        print(f"no-singing filter: kept {len(kept)} of {len(rows)} captions")
    items = [Item(f"sdd-{row['caption_id']}", song_describer_audio_path(audio_dir, row["path"]),
                  metadata_fields("song-describer", caption=_text(row["caption"]))) for row in kept]
    params = {"importer": "song-describer", "csv": str(Path(csv_path).resolve()),
              "audio_dir": str(Path(audio_dir).resolve()), "no_singing": no_singing}
    return _import(items, out_dir, params, workers, progress)


# ---------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data_prep.importers",
                                     description="Turn a real music dataset into OUT/metadata.jsonl "
                                                 "(unusable files listed in OUT/skipped.txt; reruns resume).")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, help="output folder for metadata.jsonl, skipped.txt")
    common.add_argument("--workers", type=int, default=1, help="files read in parallel (default 1)")
    common.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    commands = parser.add_subparsers(dest="command", required=True)
    raw = argparse.RawDescriptionHelpFormatter  # keep the docstrings' line breaks
    folder = commands.add_parser("folder", parents=[common], help="a folder of audio + a CSV/JSONL table",
                                 description=inspect.cleandoc(import_folder.__doc__), formatter_class=raw)
    folder.add_argument("--audio-dir", required=True, help="folder holding the audio files")
    folder.add_argument("--captions", required=True, help="CSV or JSONL table with a path/file/filename column")
    fma = commands.add_parser("fma", parents=[common], help="the Free Music Archive (mdeff/fma)",
                              description=inspect.cleandoc(import_fma.__doc__), formatter_class=raw)
    fma.add_argument("--metadata-dir", required=True, help="unzipped fma_metadata (tracks.csv, genres.csv)")
    fma.add_argument("--audio-dir", required=True, help="unzipped fma_small/ fma_medium/ ... (000/000002.mp3)")
    fma.add_argument("--subset", choices=FMA_SUBSETS + ("full",), help="keep the tracks of this subset")
    sdd = commands.add_parser("song-describer", parents=[common], help="the Song Describer Dataset",
                              description=inspect.cleandoc(import_song_describer.__doc__), formatter_class=raw)
    sdd.add_argument("--csv", required=True, help="song_describer.csv")
    sdd.add_argument("--audio-dir", required=True, help="unzipped audio.zip (26/226.2min.mp3 ...)")
    sdd.add_argument("--no-singing", action="store_true", help="keep only captions that mention no singing")
    args = parser.parse_args(argv)
    options = dict(workers=args.workers, progress=not args.no_progress)
    if args.command == "folder":
        import_folder(args.audio_dir, args.captions, args.out, **options)
    elif args.command == "fma":
        import_fma(args.metadata_dir, args.audio_dir, args.out, subset=args.subset, **options)
    else:
        import_song_describer(args.csv, args.audio_dir, args.out, no_singing=args.no_singing, **options)


if __name__ == "__main__":
    main()
