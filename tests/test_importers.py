"""Tests of data_prep/importers.py on tiny datasets written at test time (nothing is downloaded).

The FMA and Song Describer fixtures follow the published file formats:
- FMA tracks.csv: checked against github.com/mdeff/fma (utils.load reads it with header=[0, 1];
  creation.ipynb writes it with pandas' to_csv after sorting the columns; usage.ipynb's outputs list the
  52 columns). All 52 columns are written here, in the published order; audio is real .mp3 (soundfile).
- Song Describer song_describer.csv: columns of scripts/create_dataset.py in
  github.com/mulab-mir/song-describer-dataset; audio as audio.zip ships it (audio/26/226.2min.mp3).
"""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from data_prep import importers
from data_prep.importers import (NO_SINGING_WORDS, import_fma, import_folder, import_song_describer,
                                 is_no_singing, main)


def tone(path, seconds=0.5, sample_rate=22050, channels=1, amplitude=0.5, fmt=None):
    """Write a 440 Hz sine (or silence with amplitude 0) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    audio = amplitude * np.sin(2 * np.pi * 440 * t)[:, None].repeat(channels, axis=1)  # (samples, channels)
    sf.write(str(path), audio.astype(np.float32), sample_rate, format=fmt)
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def count_probes(monkeypatch):
    """Replace importers.probe by a wrapper that records the file names it is asked to read."""
    calls = []
    real = importers.probe

    def counting(path):
        calls.append(path.name)
        return real(path)

    monkeypatch.setattr(importers, "probe", counting)
    return calls


RECORD_KEYS = ["id", "path", "seconds", "sample_rate", "genre", "bpm", "key", "moods", "instruments",
               "sections", "renderer", "seed", "source", "caption", "title", "artist", "album", "year", "tags"]


# ---------------------------------------------------------------- folder importer

def test_folder_csv_maps_every_field(tmp_path):
    audio = tmp_path / "audio"
    tone(audio / "a.wav", seconds=1.0, sample_rate=22050)
    tone(audio / "sub" / "b.flac", seconds=0.5, sample_rate=44100, channels=2)
    tone(audio / "unlisted.wav", seconds=0.25)
    table = tmp_path / "captions.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "caption", "genre", "bpm", "key", "moods", "instruments", "tags", "title",
                    "artist", "album", "year"])
        w.writerow(["a.wav", "A calm piano piece", "classical", "72", "C major", "calm, sad", "piano",
                    "solo,slow", "Nocturne", "Ann", "Nights", "1999"])
        w.writerow(["sub/b.flac", "", "rock", "", "", "", "guitar, drums", "[live], bootleg", "", "", "", ""])
        w.writerow(["gone.wav", "never recorded", "", "", "", "", "", "", "", "", "", ""])
    out = tmp_path / "out"
    records, skipped = import_folder(audio, table, out, progress=False)

    assert [r["id"] for r in records] == ["a.wav", "sub/b.flac", "unlisted.wav"]
    assert records == read_jsonl(out / "metadata.jsonl")
    a, b, unlisted = records
    assert list(a) == RECORD_KEYS
    assert a["path"] == str((audio / "a.wav").resolve())  # OUT is outside the audio folder: absolute
    assert a["seconds"] == pytest.approx(1.0) and a["sample_rate"] == 22050
    assert (a["caption"], a["genre"], a["bpm"], a["key"]) == ("A calm piano piece", "classical", 72.0, "C major")
    assert (a["moods"], a["instruments"], a["tags"]) == (["calm", "sad"], ["piano"], ["solo", "slow"])
    assert (a["title"], a["artist"], a["album"], a["year"]) == ("Nocturne", "Ann", "Nights", 1999)
    assert (a["sections"], a["renderer"], a["seed"], a["source"]) == ([], None, None, "folder")
    assert b["seconds"] == pytest.approx(0.5) and b["sample_rate"] == 44100
    assert (b["caption"], b["genre"], b["bpm"], b["instruments"], b["moods"]) == (None, "rock", None,
                                                                                   ["guitar", "drums"], [])
    assert b["tags"] == ["[live]", "bootleg"]
    assert unlisted["caption"] is None and unlisted["seconds"] == pytest.approx(0.25)
    assert [i for i, _ in skipped] == ["gone.wav"] and "missing file" in skipped[0][1]
    assert (out / "skipped.txt").read_text().startswith("gone.wav\tmissing file")


def test_folder_jsonl_lists_and_paths_under_out(tmp_path):
    out = tmp_path / "out"
    audio = out / "audio"  # audio inside OUT: paths are stored relative to OUT
    tone(audio / "x.wav")
    tone(audio / "y.wav")
    table = tmp_path / "captions.jsonl"
    rows = [{"path": "x.wav", "description": "Upbeat synth pop", "bpm": 128, "moods": ["happy", "bright"],
             "instruments": "synth, drum machine", "year": "2021-05-01"},
            {"filename": "y.wav", "caption": "take one", "tags": ["demo"]},
            {"filename": "y.wav", "caption": "take two", "bpm": "fast"}]  # bad bpm: kept, bpm unknown
    table.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.warns(UserWarning, match="row 3 of .*bpm 'fast' is not a number; the song is kept with bpm unknown"):
        records, skipped = import_folder(audio, table, out, progress=False)

    assert [r["id"] for r in records] == ["x.wav", "y.wav", "y.wav#2"]
    x, y, y2 = records
    assert x["path"] == "audio/x.wav" and y["path"] == "audio/y.wav"
    assert (x["caption"], x["bpm"], x["year"]) == ("Upbeat synth pop", 128.0, 2021)
    assert (x["moods"], x["instruments"]) == (["happy", "bright"], ["synth", "drum machine"])
    assert (y["caption"], y["tags"]) == ("take one", ["demo"])
    assert (y2["caption"], y2["bpm"], y2["path"]) == ("take two", None, "audio/y.wav")
    assert skipped == []


def test_folder_refuses_paths_that_leave_the_audio_folder(tmp_path):
    audio = tmp_path / "audio"
    tone(audio / "ok.wav")
    outside = tone(tmp_path / "secret" / "outside.wav")  # a real audio file, but not in the audio folder
    (audio / "link.wav").symlink_to(outside)  # a link inside the folder that points out of it
    (audio / "unlisted_link.wav").symlink_to(outside)  # named by no row: found by the folder scan
    table = tmp_path / "c.csv"
    table.write_text(f"file,caption\nok.wav,fine\n../secret/outside.wav,up\n../../etc/passwd,up twice\n"
                     f"{outside},absolute\nlink.wav,a link\n")
    records, skipped = import_folder(audio, table, tmp_path / "out", progress=False)

    assert [r["id"] for r in records] == ["ok.wav"]
    reasons = dict(skipped)
    # the same file named twice gets the ids "<name>" and "<name>#2"
    assert list(reasons) == ["../secret/outside.wav", "../../etc/passwd", f"{outside.as_posix()}#2", "link.wav",
                             "unlisted_link.wav"]
    assert reasons["../../etc/passwd"] == (f"row 3: path '../../etc/passwd' leaves the audio folder {audio}; "
                                           f"name files relative to it, inside it")
    assert reasons.pop("unlisted_link.wav") == "unlisted_link.wav links to a file outside the audio folder"
    assert all("leaves the audio folder" in reason for reason in reasons.values())


def test_folder_table_without_file_column_is_refused(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("name,caption\na.wav,hello\n")
    with pytest.raises(ValueError, match="path or file or filename"):
        import_folder(tmp_path, table, tmp_path / "out", progress=False)


def test_bad_files_are_skipped_with_reasons(tmp_path, capsys):
    audio = tmp_path / "audio"
    tone(audio / "good.wav")
    (audio / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    (audio / "empty.wav").write_bytes(b"")
    tone(audio / "silent.flac", amplitude=0.0)
    table = tmp_path / "c.csv"
    table.write_text("file,caption\ngood.wav,ok\ncorrupt.wav,x\nempty.wav,x\nsilent.flac,x\nmissing.wav,x\n")
    out = tmp_path / "out"
    records, skipped = import_folder(audio, table, out, progress=False)

    assert [r["id"] for r in records] == ["good.wav"]
    reasons = dict(skipped)
    assert list(reasons) == ["corrupt.wav", "empty.wav", "silent.flac", "missing.wav"]
    assert reasons["corrupt.wav"].startswith("cannot read corrupt.wav")
    assert reasons["empty.wav"] == "empty file empty.wav (0 bytes)"
    assert reasons["silent.flac"].startswith("silent file silent.flac")
    assert reasons["missing.wav"].startswith("missing file")
    lines = (out / "skipped.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == list(reasons)
    printed = capsys.readouterr().out
    assert "4 item(s) skipped" in printed and "imported 1 item(s), skipped 4" in printed


def test_audio_shorter_than_one_latent_frame_is_skipped_with_its_reason(tmp_path):
    from samod.autoencoder import AutoencoderConfig
    from samod.profiles import SAMPLE_RATE
    for preset in (AutoencoderConfig.tiny(), AutoencoderConfig.small(), AutoencoderConfig.paper()):
        assert importers.LATENT_FRAME_SAMPLES == preset.downsampling
    audio = tmp_path / "audio"
    tone(audio / "ten_samples.wav", seconds=10 / SAMPLE_RATE, sample_rate=SAMPLE_RATE)
    tone(audio / "one_frame.wav", seconds=2048 / SAMPLE_RATE, sample_rate=SAMPLE_RATE)
    tone(audio / "just_short.wav", seconds=2000 / 22050, sample_rate=22050)  # 4000 samples at 44.1 kHz: kept
    tone(audio / "short_at_22k.wav", seconds=1000 / 22050, sample_rate=22050)  # 2000 samples at 44.1 kHz
    table = tmp_path / "c.csv"
    table.write_text("file,caption\nten_samples.wav,x\none_frame.wav,ok\njust_short.wav,ok\nshort_at_22k.wav,x\n")
    records, skipped = import_folder(audio, table, tmp_path / "out", progress=False)
    assert [r["id"] for r in records] == ["one_frame.wav", "just_short.wav"]
    reasons = dict(skipped)
    assert list(reasons) == ["ten_samples.wav", "short_at_22k.wav"]
    assert reasons["ten_samples.wav"].startswith("too short: ten_samples.wav holds 10 samples at 44100 Hz")
    assert "less than one latent frame (2048 samples)" in reasons["short_at_22k.wav"]


def test_interrupted_import_resumes_without_redoing_files(tmp_path, monkeypatch):
    audio = tmp_path / "audio"
    for name in ("a.wav", "c.wav", "d.flac"):
        tone(audio / name)
    (audio / "b.wav").write_bytes(b"not audio at all" * 50)
    table = tmp_path / "c.csv"
    table.write_text("file,caption\na.wav,A\nb.wav,B\nc.wav,C\nd.flac,D\n")
    out = tmp_path / "out"
    first, first_skipped = import_folder(audio, table, out, progress=False)
    assert [r["id"] for r in first] == ["a.wav", "c.wav", "d.flac"] and first_skipped[0][0] == "b.wav"

    # Simulate a kill while c.wav was being written: params, a, b kept, c's line cut short.
    lines = (out / "progress.jsonl").read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[3])["id"] == "c.wav"
    (out / "progress.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:25])
    (out / "metadata.jsonl").unlink()
    (out / "skipped.txt").unlink()

    calls = count_probes(monkeypatch)
    second, second_skipped = import_folder(audio, table, out, progress=False)
    assert calls == ["c.wav", "d.flac"]  # a (done) and b (skipped) are not read again
    assert second == first and second_skipped == first_skipped
    assert read_jsonl(out / "metadata.jsonl") == first
    assert (out / "skipped.txt").read_text().startswith("b.wav\tcannot read b.wav")


def test_workers_give_the_same_records(tmp_path):
    audio = tmp_path / "audio"
    for i in range(6):
        tone(audio / f"{i}.wav", seconds=0.1 * (i + 1))
    table = tmp_path / "c.csv"
    table.write_text("file\n" + "".join(f"{i}.wav\n" for i in range(6)))
    serial, _ = import_folder(audio, table, tmp_path / "one", workers=1, progress=False)
    parallel, _ = import_folder(audio, table, tmp_path / "four", workers=4, progress=False)
    assert parallel == serial
    assert [r["seconds"] for r in serial] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], abs=1e-3)


# ---------------------------------------------------------------- FMA

FMA_COLUMNS = {  # group -> column names, in the order of the published tracks.csv (sorted by pandas)
    "album": ["comments", "date_created", "date_released", "engineer", "favorites", "id", "information",
              "listens", "producer", "tags", "title", "tracks", "type"],
    "artist": ["active_year_begin", "active_year_end", "associated_labels", "bio", "comments", "date_created",
               "favorites", "id", "latitude", "location", "longitude", "members", "name", "related_projects",
               "tags", "website", "wikipedia_page"],
    "set": ["split", "subset"],
    "track": ["bit_rate", "comments", "composer", "date_created", "date_recorded", "duration", "favorites",
              "genre_top", "genres", "genres_all", "information", "interest", "language_code", "license",
              "listens", "lyricist", "number", "publisher", "tags", "title"],
}
FMA_TRACKS = {  # track_id -> {(group, column): value}; values modelled on the first rows of the real file
    2: {("album", "comments"): 0, ("album", "date_created"): "2008-11-26 01:44:45",
        ("album", "date_released"): "2009-01-05 00:00:00", ("album", "favorites"): 4, ("album", "id"): 1,
        ("album", "information"): "<p></p>", ("album", "listens"): 6073, ("album", "tags"): "[]",
        ("album", "title"): "AWOL - A Way Of Life", ("album", "tracks"): 7, ("album", "type"): "Album",
        ("artist", "active_year_begin"): "2006-01-01 00:00:00", ("artist", "bio"): "<p>A Way Of Life, A "
        "Collective of Hip-Hop from New Jersey</p>", ("artist", "comments"): 0,
        ("artist", "date_created"): "2008-11-26 01:42:32", ("artist", "favorites"): 9, ("artist", "id"): 1,
        ("artist", "latitude"): 40.058324, ("artist", "location"): "New Jersey",
        ("artist", "longitude"): -74.405661, ("artist", "members"): "Sajje Morocco,Brownbum,ZawidaGod",
        ("artist", "name"): "AWOL", ("artist", "tags"): "['awol']", ("set", "split"): "training",
        ("set", "subset"): "small", ("track", "bit_rate"): 256000, ("track", "comments"): 0,
        ("track", "date_created"): "2008-11-26 01:48:12", ("track", "date_recorded"): "2008-11-26 00:00:00",
        ("track", "duration"): 168, ("track", "favorites"): 2, ("track", "genre_top"): "Hip-Hop",
        ("track", "genres"): "[21]", ("track", "genres_all"): "[21]", ("track", "interest"): 4656,
        ("track", "language_code"): "en",
        ("track", "license"): "Attribution-NonCommercial-ShareAlike 3.0 International",
        ("track", "listens"): 1293, ("track", "number"): 3, ("track", "tags"): "[]",
        ("track", "title"): "Food"},
    5: {("album", "title"): "AWOL - A Way Of Life", ("artist", "name"): "AWOL", ("set", "split"): "training",
        ("set", "subset"): "small", ("track", "genre_top"): "Hip-Hop", ("track", "genres"): "[21]",
        ("track", "genres_all"): "[21]", ("track", "tags"): "[]", ("track", "title"): "This World"},
    10: {("album", "date_released"): "2008-02-06 00:00:00", ("album", "tags"): "[]",
         ("album", "title"): "Constant Hitmaker", ("artist", "name"): "Kurt Vile",
         ("artist", "members"): "Kurt Vile, the Violators", ("set", "split"): "training",
         ("set", "subset"): "small", ("track", "composer"): "Kurt Vile",
         ("track", "date_created"): "2008-11-25 17:49:06", ("track", "genre_top"): "Pop",
         ("track", "genres"): "[10]", ("track", "genres_all"): "[10]",
         ("track", "tags"): "['lo-fi', 'indie rock']", ("track", "title"): "Freeway"},
    20: {("album", "title"): "Niris", ("artist", "name"): "Nicky Cook", ("set", "split"): "training",
         ("set", "subset"): "medium", ("track", "date_created"): "2008-11-26 01:48:56",
         ("track", "genres"): "[76, 103]", ("track", "genres_all"): "[17, 10, 76, 103]",
         ("track", "tags"): "[]", ("track", "title"): "Spiritual Level"},  # no genre_top, no album date
    134: {("album", "title"): "AWOL - A Way Of Life", ("artist", "name"): "AWOL", ("set", "split"): "test",
          ("set", "subset"): "large", ("track", "genre_top"): "Hip-Hop", ("track", "genres"): "[21]",
          ("track", "tags"): "[]", ("track", "title"): "Street Music"},
}
FMA_GENRES = "genre_id,#tracks,parent,title,top_level\n10,13845,0,Pop,10\n17,12706,0,Folk,17\n" \
             "21,8389,0,Hip-Hop,21\n76,1106,10,Experimental Pop,10\n103,4327,17,Singer-Songwriter,17\n"


def write_fma(root):
    """fma_metadata/{tracks,genres}.csv as published, and fma_small-style mp3s for tracks 2, 10 and 20."""
    meta = root / "fma_metadata"
    meta.mkdir(parents=True)
    columns = [(group, name) for group, names in FMA_COLUMNS.items() for name in names]
    with open(meta / "tracks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([""] + [group for group, _ in columns])  # header row 1: group
        w.writerow([""] + [name for _, name in columns])  # header row 2: column
        w.writerow(["track_id"] + [""] * len(columns))  # the index name, as pandas' to_csv writes it
        for tid, values in FMA_TRACKS.items():
            w.writerow([tid] + [values.get(c, "") for c in columns])
    (meta / "genres.csv").write_text(FMA_GENRES)
    audio = root / "fma_small"
    for tid in (2, 10, 20):  # track 5's mp3 is missing; 134 is not in fma_small
        tone(audio / f"{tid:06d}"[:3] / f"{tid:06d}.mp3", sample_rate=44100, channels=2, fmt="MP3")
    return meta, audio


def test_fma_fixture_has_the_published_layout(tmp_path):
    meta, _ = write_fma(tmp_path)
    head = (meta / "tracks.csv").read_text().splitlines()[:3]
    assert head[0].startswith(",album,album,") and head[0].endswith(",track,track")
    assert head[1].startswith(",comments,date_created,date_released,engineer,") and head[1].endswith(",tags,title")
    assert head[2] == "track_id" + "," * 52
    tracks = pd.read_csv(meta / "tracks.csv", index_col=0, header=[0, 1])  # how mdeff/fma's utils.load reads it
    assert tracks.shape == (5, 52) and tracks.index.name == "track_id"
    assert tracks.loc[2, ("track", "title")] == "Food" and tracks.loc[10, ("set", "subset")] == "small"


def test_fma_maps_fields_and_subsets(tmp_path):
    meta, audio = write_fma(tmp_path)
    records, skipped = import_fma(meta, audio, tmp_path / "medium", subset="medium", progress=False)

    assert [r["id"] for r in records] == ["fma-000002", "fma-000010", "fma-000020"]  # 134 is "large"
    assert [i for i, _ in skipped] == ["fma-000005"] and skipped[0][1].startswith("missing file")
    food, freeway, spiritual = records
    assert list(food) == RECORD_KEYS
    assert food["path"] == str((audio / "000" / "000002.mp3").resolve())
    assert food["seconds"] == pytest.approx(0.5, abs=0.01) and food["sample_rate"] == 44100
    assert (food["genre"], food["title"], food["artist"], food["album"], food["year"]) == \
           ("Hip-Hop", "Food", "AWOL", "AWOL - A Way Of Life", 2009)  # year of album date_released
    assert (food["tags"], food["caption"], food["source"]) == ([], None, "fma")
    assert (food["bpm"], food["key"], food["moods"], food["instruments"]) == (None, None, [], [])
    assert (freeway["genre"], freeway["tags"], freeway["year"]) == ("Pop", ["lo-fi", "indie rock"], 2008)
    assert spiritual["genre"] == "Experimental Pop"  # no genre_top: title of genre 76 in genres.csv
    assert spiritual["year"] == 2008  # no album date_released: year of track date_created

    small, _ = import_fma(meta, audio, tmp_path / "small", subset="small", progress=False)
    assert [r["id"] for r in small] == ["fma-000002", "fma-000010"]
    everything, skipped_all = import_fma(meta, audio, tmp_path / "all", progress=False)
    assert len(everything) == 3 and [i for i, _ in skipped_all] == ["fma-000005", "fma-000134"]


def test_fma_refuses_a_flat_csv_and_an_unknown_subset(tmp_path):
    meta, audio = write_fma(tmp_path)
    with pytest.raises(ValueError, match="one of"):
        import_fma(meta, audio, tmp_path / "out", subset="tiny", progress=False)
    (meta / "tracks.csv").write_text("track_id,title,genre_top\n2,Food,Hip-Hop\n")
    with pytest.raises(ValueError, match="two header rows"):
        import_fma(meta, audio, tmp_path / "out2", progress=False)


# ---------------------------------------------------------------- Song Describer

SDD_ROWS = [  # caption_id, track_id, caption, is_valid_subset, familiarity, artist_id, album_id, path, duration
    [1, 226, "A heavy metal song with distorted guitars and a male vocalist screaming.", True, 3, 14, 31,
     "26/226.mp3", 222.8],
    [2, 226, "Fast metal with double kick drums; you can hear the human feel of the drummer.", False, 2, 14, 31,
     "26/226.mp3", 222.8],
    [3, 3112, "Minimal electronic track with a hypnotic synth arpeggio.", "", 4, 286, 485, "12/3112.mp3", 341.0],
    [4, 3453, "Soft Vocals over an acoustic guitar.", True, 1, 14, 545, "53/3453.mp3", 242.4],
]


def write_song_describer(root):
    csv_path = root / "song_describer.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["caption_id", "track_id", "caption", "is_valid_subset", "familiarity", "artist_id",
                    "album_id", "path", "duration"])
        w.writerows(SDD_ROWS)
    audio = root / "data" / "audio"
    # unzip audio.zip -d data/audio gives data/audio/audio/26/226.2min.mp3; also accept the csv's own name
    tone(audio / "audio" / "26" / "226.2min.mp3", seconds=1.0, sample_rate=44100, channels=2, fmt="MP3")
    tone(audio / "12" / "3112.mp3", seconds=0.5, sample_rate=44100, channels=2, fmt="MP3")
    return csv_path, audio  # 53/3453 is missing


def test_song_describer_one_record_per_caption(tmp_path, monkeypatch):
    csv_path, audio = write_song_describer(tmp_path)
    calls = count_probes(monkeypatch)
    records, skipped = import_song_describer(csv_path, audio, tmp_path / "out", progress=False)

    assert [r["id"] for r in records] == ["sdd-1", "sdd-2", "sdd-3"]
    assert sorted(calls) == ["226.2min.mp3", "3112.mp3", "3453.mp3"]  # one read per file, not per caption
    one, two, three = records
    assert one["path"] == two["path"] == str((audio / "audio" / "26" / "226.2min.mp3").resolve())
    assert three["path"] == str((audio / "12" / "3112.mp3").resolve())
    assert one["caption"] == SDD_ROWS[0][2] and two["caption"] == SDD_ROWS[1][2]
    assert one["seconds"] == pytest.approx(1.0, abs=0.01) and three["seconds"] == pytest.approx(0.5, abs=0.01)
    assert (one["source"], one["genre"], one["sections"], one["renderer"]) == ("song-describer", None, [], None)
    assert [i for i, _ in skipped] == ["sdd-4"] and skipped[0][1].startswith("missing file")


def test_song_describer_no_singing_subset(tmp_path):
    csv_path, audio = write_song_describer(tmp_path)
    records, skipped = import_song_describer(csv_path, audio, tmp_path / "out", no_singing=True, progress=False)
    assert [r["id"] for r in records] == ["sdd-2", "sdd-3"]  # 1: "male vocalist", 4: "Vocals"
    assert skipped == []
    with pytest.raises(RuntimeError, match="was built with"):  # same folder, other filter: refused
        import_song_describer(csv_path, audio, tmp_path / "out", no_singing=False, progress=False)


def test_no_singing_words_are_the_papers():
    assert len(NO_SINGING_WORDS) == 24
    assert NO_SINGING_WORDS[:5] == ["speech", "speech synthesizer", "hubbub", "babble", "singing"]
    assert NO_SINGING_WORDS[-1] == "acapella"


@pytest.mark.parametrize("caption, keep", [
    ("Upbeat electronic music with a human touch", True),  # "human" is not the word "man"
    ("A man whistles over a ukulele", False),
    ("Instrumental hip hop beat, no rapping", False),
    ("FEMALE singer with piano", False),
    ("Soft vocals and strings", False),  # regular plural of "vocal"
    ("Children's choir", False),
    ("An acapella arrangement", False),
    ("Robotic speech synthesizer over drums", False),
    ("Romantic jazz with emanating warmth and manly swagger", True),  # "manly", "emanating" are other words
    ("Mantra-like drone", False),  # hyphen ends a word
    ("Kidding aside, a cheerful marimba tune", True),
])
def test_is_no_singing(caption, keep):
    assert is_no_singing(caption) is keep


# ---------------------------------------------------------------- command line

def test_cli_folder_prints_a_summary(tmp_path, capsys):
    audio = tmp_path / "audio"
    tone(audio / "a.wav")
    (audio / "bad.wav").write_bytes(b"\x00\x01" * 100)
    table = tmp_path / "c.csv"
    table.write_text("file,caption\na.wav,hello\nbad.wav,oops\n")
    main(["folder", "--audio-dir", str(audio), "--captions", str(table), "--out", str(tmp_path / "out"),
          "--workers", "2", "--no-progress"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"imported 1 item(s), skipped 1: wrote {tmp_path / 'out' / 'metadata.jsonl'}"
    assert [r["caption"] for r in read_jsonl(tmp_path / "out" / "metadata.jsonl")] == ["hello"]


def test_cli_help_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "data_prep.importers", "fma", "--help"],
                          capture_output=True, text=True, cwd=Path(importers.__file__).parents[1])
    assert done.returncode == 0 and "--subset" in done.stdout and "--metadata-dir" in done.stdout
