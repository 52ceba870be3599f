"""Tests of the synthetic corpus: data_prep/compose.py, render.py, synth.py, common.py (Progress) and tempo.py.

Songs are short (8 to 14 s) and most renders use TinySoundFont (the default renderer, ~0.1 s a song);
FluidSynth, used only when asked for, renders in tests where the Debian program and its soundfont are installed.
"""
import collections
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from data_prep import synth
from data_prep.common import METADATA, PROGRESS, SKIPPED
from data_prep.compose import GENRES, TAIL_SECONDS, VARIATIONS, Genre, compose, genre_names, plan_sections
from data_prep.render import (PEAK, FluidSynthRenderer, TinySoundFontRenderer, get_renderer, normalise)
from data_prep.synth import build_corpus, render_style, song_id, song_seed
from data_prep.tempo import tempo_matches
from samod.profiles import SAMPLE_RATE

MIN_S, MAX_S = 8.0, 14.0  # short songs keep every render fast
LABELS = {"intro", "verse", "chorus", "bridge", "outro"}
# the record fields data_prep/synth.py's docstring promises
RECORD_KEYS = {"id", "path", "midi", "seconds", "sample_rate", "genre", "bpm", "key", "moods", "instruments",
               "panning", "sections", "renderer", "seed", "corpus_seed", "source"}
needs_fluidsynth = pytest.mark.skipif(not FluidSynthRenderer.available(),
                                      reason="FluidSynth or /usr/share/sounds/sf2/FluidR3_GM.sf2 not installed")


def notes_of(midi):
    """Every instrument's identity, control changes and notes, as plain tuples."""
    return [(inst.program, inst.is_drum, inst.name,
             [(c.number, c.value, c.time) for c in inst.control_changes],
             [(n.pitch, n.velocity, n.start, n.end) for n in inst.notes]) for inst in midi.instruments]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def build(out, n_songs=4, seed=7, workers=1):
    return build_corpus(out, n_songs, seed, MIN_S, MAX_S, workers=workers, renderer="tinysoundfont",
                        progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A 4-song corpus (seed 7, TinySoundFont, one worker), built once; tests that change files copy it."""
    out = tmp_path_factory.mktemp("corpus")
    records, skipped = build(out)
    return out, records, skipped


# ---------------------------------------------------------------- compose

def test_compose_same_seed_same_song_other_seed_other_song():
    a, b, c = compose(11, MIN_S, MAX_S), compose(11, MIN_S, MAX_S), compose(12, MIN_S, MAX_S)
    assert a.metadata() == b.metadata()
    assert notes_of(a.midi) == notes_of(b.midi)
    assert sum(len(i.notes) for i in a.midi.instruments) > 50  # a real song, not an empty score
    assert a.metadata() != c.metadata()
    assert notes_of(a.midi) != notes_of(c.midi)


def test_compose_sections_tile_the_song():
    for seed in range(40):
        song = compose(seed, MIN_S, MAX_S)
        bar = 0
        for s in song.sections:  # in bars: contiguous from bar 0
            assert s.start_bar == bar and s.bars >= 1
            bar += s.bars
        assert song.seconds == pytest.approx(bar * song.bar_seconds + TAIL_SECONDS)
        sections = song.metadata()["sections"]  # in seconds, as metadata.jsonl has them
        assert sections[0]["label"] == "intro" and sections[0]["start"] == 0.0
        assert sections[-1]["end"] == round(song.seconds, 4)
        for prev, cur in zip(sections, sections[1:]):
            assert cur["start"] == prev["end"]
        for s in sections:
            assert s["label"] in LABELS and s["end"] > s["start"]


def test_compose_lengths_in_range_and_spread_all_genres_appear():
    songs = [compose(seed, MIN_S, MAX_S) for seed in range(200)]
    seconds = np.array([s.seconds for s in songs])
    assert seconds.min() >= MIN_S and seconds.max() <= MAX_S
    quarter = 0.25 * (MAX_S - MIN_S)
    assert seconds.min() < MIN_S + quarter and seconds.max() > MAX_S - quarter  # the range is used
    counts = collections.Counter(s.genre.name for s in songs)
    assert set(counts) == set(genre_names()) and len(counts) == len(GENRES) == 13
    assert min(counts.values()) >= 3  # no genre is a rarity
    for s in songs:  # the last metadata word is the mode's colour
        assert s.metadata()["moods"][-1] == ("bright" if s.mode in ("major", "lydian", "mixolydian") else "dark")


def test_compose_long_songs_repeat_sections():
    for seed in range(8):
        song = compose(seed, 60, 120)
        assert 60 <= song.seconds <= 120
        labels = [s.label for s in song.sections]
        counts = collections.Counter(labels)
        assert counts["verse"] >= 2 and counts["chorus"] >= 2, labels
        assert labels[0] == "intro" and labels[-1] == "outro"
        seen = set()
        for s in song.sections:  # only repeats of a verse or chorus may vary
            if s.label in seen and s.label in ("verse", "chorus"):
                assert s.variation in (None, *VARIATIONS)
            else:
                assert s.variation is None
            seen.add(s.label)


def _section_notes(song, section):
    """(role, pitch, start relative to the section, length) of every pitched note in `section`."""
    t0 = section.start_bar * song.bar_seconds
    t1 = t0 + section.bars * song.bar_seconds
    return sorted((inst.name, n.pitch, round(n.start - t0, 6), round(n.end - n.start, 6))
                  for inst in song.midi.instruments for n in inst.notes if t0 - 1e-9 <= n.start < t1 - 1e-9)


def test_compose_exact_repeat_replays_the_same_notes():
    """A repeated verse or chorus without a variation has the first one's notes (only velocities differ)."""
    checked = 0
    for seed in range(10):
        song = compose(seed, 60, 120)
        first = {}
        for s in song.sections:
            if s.label not in first:
                first[s.label] = s
            elif s.variation is None and s.bars == first[s.label].bars:
                assert _section_notes(song, s) == _section_notes(song, first[s.label])
                checked += 1
            elif s.variation == "octave up":
                lead = [n for n in _section_notes(song, s) if n[0] == "lead"]
                lead0 = [n for n in _section_notes(song, first[s.label]) if n[0] == "lead"]
                assert [(r, p - 12, t, d) for r, p, t, d in lead] == lead0
                checked += 1
    assert checked >= 20  # 45 exact repeats and 14 octave-up repeats in these 10 songs


def test_compose_rejects_a_range_too_narrow_for_a_bar():
    with pytest.raises(ValueError, match="widen the range"):
        compose(0, 3.0, 3.5)


def test_plan_sections_short_and_long():
    assert [(s.label, s.start_bar, s.bars) for s in plan_sections(3, 2.0)] == [("intro", 0, 2), ("verse", 2, 1)]
    plan = plan_sections(21, 2.0)  # unit 4, edge 2: intro, 4 units of 4 bars, outro of 3 bars
    assert [(s.label, s.bars) for s in plan] == [("intro", 2), ("verse", 4), ("chorus", 4), ("verse", 4),
                                                 ("chorus", 4), ("outro", 3)]


# ---------------------------------------------------------------- renderers

def one_guitar(pan_value, seconds=3.0):
    """One nylon guitar (a mono sample in both soundfonts) playing four notes at MIDI pan `pan_value`."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=24, name="guitar")
    inst.control_changes.append(pretty_midi.ControlChange(10, pan_value, 0.0))
    for i, p in enumerate([60, 64, 67, 72]):
        inst.notes.append(pretty_midi.Note(100, p, 0.5 * i, 0.5 * i + 0.45))
    midi.instruments.append(inst)
    return midi


RENDERERS = [TinySoundFontRenderer, pytest.param(FluidSynthRenderer, marks=needs_fluidsynth)]


def test_normalise_cuts_pads_and_scales():
    audio = np.full((2, 10), 0.5, dtype=np.float32)
    out = normalise(audio, 20 / SAMPLE_RATE)
    assert out.shape == (2, 20) and out.dtype == np.float32
    assert np.allclose(out[:, :10], PEAK) and np.all(out[:, 10:] == 0)
    assert normalise(audio, 4 / SAMPLE_RATE).shape == (2, 4)
    assert np.all(normalise(np.zeros((2, 5), np.float32), 5 / SAMPLE_RATE) == 0)  # silence stays silence


@pytest.mark.parametrize("renderer", RENDERERS)
def test_render_shape_peak_deterministic(renderer):
    song = compose(5, MIN_S, MAX_S)
    r = renderer()
    a = r.render(song.midi, song.seconds)
    assert a.shape == (2, round(song.seconds * SAMPLE_RATE)) and a.dtype == np.float32
    assert float(np.abs(a).max()) == pytest.approx(10 ** (-1 / 20), rel=1e-5)  # -1 dBFS
    assert np.sqrt(np.mean(a ** 2)) > 0.02  # music, not one click
    assert np.array_equal(a, r.render(song.midi, song.seconds))


@pytest.mark.parametrize("renderer", RENDERERS)
def test_render_honours_pan(renderer):
    rms = {}
    for pan in (0, 127):
        audio = renderer().render(one_guitar(pan), 3.0)
        rms[pan] = np.sqrt(np.mean(audio.astype(np.float64) ** 2, axis=1))  # (left, right)
    assert rms[0][0] > 4 * rms[0][1]  # hard left
    assert rms[127][1] > 4 * rms[127][0]  # hard right


@needs_fluidsynth
def test_fluidsynth_chorus_off_keeps_channels_in_phase():
    # with FluidSynth's chorus on (-C 1), these two songs (metal, ambient) come out at correlation -0.69 and -0.59
    for seed in (0, 3):
        song = compose(seed, MIN_S, MAX_S)
        audio = FluidSynthRenderer().render(song.midi, song.seconds)
        assert np.corrcoef(audio)[0, 1] > 0.3


def test_get_renderer_names(monkeypatch):
    monkeypatch.delenv("SAMOD_RENDERER", raising=False)
    assert get_renderer("tinysoundfont").name == "tinysoundfont"
    # the default is TinySoundFont on every machine, FluidSynth installed or not: one corpus everywhere
    assert get_renderer("auto").name == get_renderer().name == "tinysoundfont"
    monkeypatch.setattr(FluidSynthRenderer, "available", classmethod(lambda cls: True))
    assert get_renderer("auto").name == "tinysoundfont"
    with pytest.raises(ValueError, match="unknown renderer"):
        get_renderer("timidity")


def test_fluidsynth_only_when_asked_for(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SAMOD_RENDERER", "fluidsynth")
    monkeypatch.setattr(FluidSynthRenderer, "available", classmethod(lambda cls: False))
    with pytest.raises(RuntimeError, match="apt-get install --no-install-recommends fluidsynth fluid-soundfont-gm"):
        get_renderer("auto")
    with pytest.raises(RuntimeError, match="apt-get install"):
        get_renderer("fluidsynth")
    with pytest.raises(SystemExit) as exit_info:  # the command line says it in one line, before writing anything
        synth.main(["--out", str(tmp_path / "x"), "--quiet"])
    assert exit_info.value.code == 2 and "apt-get install" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    monkeypatch.setattr(FluidSynthRenderer, "available", classmethod(lambda cls: True))
    assert get_renderer("auto").name == get_renderer("fluidsynth").name == "fluidsynth"
    monkeypatch.setenv("SAMOD_RENDERER", "tinysoundfont")
    assert get_renderer("auto").name == "tinysoundfont"


# ---------------------------------------------------------------- build_corpus

def test_build_corpus_files_and_records(corpus):
    out, records, skipped = corpus
    assert skipped == []
    assert [r["id"] for r in records] == [song_id(i) for i in range(4)] == ["song_00000", "song_00001",
                                                                            "song_00002", "song_00003"]
    assert read_jsonl(out / METADATA) == records
    assert (out / SKIPPED).read_text() == ""
    assert sorted(p.name for p in (out / "audio").iterdir()) == [f"song_0000{i}.flac" for i in range(4)]
    assert sorted(p.name for p in (out / "midi").iterdir()) == [f"song_0000{i}.mid" for i in range(4)]
    for i, r in enumerate(records):
        assert RECORD_KEYS <= set(r)
        assert r["path"] == f"audio/{r['id']}.flac" and r["midi"] == f"midi/{r['id']}.mid"  # relative to out
        assert r["seed"] == song_seed(7, i) == 7_000_000 + i and r["corpus_seed"] == 7
        assert r["renderer"] == "tinysoundfont" and r["sample_rate"] == SAMPLE_RATE == 44100
        song = compose(r["seed"], MIN_S, MAX_S)  # the record's seed rebuilds its song
        assert {k: r[k] for k in song.metadata()} == json.loads(json.dumps(song.metadata()))
        assert MIN_S <= r["seconds"] <= MAX_S and abs(r["seconds"] - song.seconds) < 1e-4
        info = sf.info(str(out / r["path"]))
        assert (info.samplerate, info.channels, info.frames) == (SAMPLE_RATE, 2, round(song.seconds * SAMPLE_RATE))
        assert info.subtype == "PCM_16"
        midi = pretty_midi.PrettyMIDI(str(out / r["midi"]))
        # the written score is the composed one (pretty_midi reads notes back in time order, on a tick grid)
        assert [(i.program, i.is_drum, sorted(n.pitch for n in i.notes)) for i in midi.instruments] == \
               [(i.program, i.is_drum, sorted(n.pitch for n in i.notes)) for i in song.midi.instruments]
        assert midi.get_end_time() == pytest.approx(song.midi.get_end_time(), abs=0.01)
    assert not list(out.rglob(".*.tmp.*"))  # no temporary file left behind


def assert_same_corpus(a, b):
    assert (a / METADATA).read_text() == (b / METADATA).read_text()
    for r in read_jsonl(a / METADATA):
        x, sr_x = sf.read(str(a / r["path"]))
        y, sr_y = sf.read(str(b / r["path"]))
        assert sr_x == sr_y and np.array_equal(x, y)


def test_build_corpus_same_seed_same_corpus_any_workers(corpus, tmp_path):
    ref = corpus[0]
    build(tmp_path / "again", workers=1)
    assert_same_corpus(ref, tmp_path / "again")
    build(tmp_path / "two_workers", workers=2)
    assert_same_corpus(ref, tmp_path / "two_workers")
    other, _ = build(tmp_path / "other_seed", n_songs=2, seed=8)
    assert [r["seed"] for r in other] == [8_000_000, 8_000_001]
    assert not np.array_equal(sf.read(str(tmp_path / "other_seed" / other[0]["path"]))[0][:44100],
                              sf.read(str(ref / other[0]["path"]))[0][:44100])


def count_make_song(monkeypatch):
    calls = []
    real = synth.make_song

    def counting(*args):
        calls.append(args[1])  # the song index
        return real(*args)

    monkeypatch.setattr(synth, "make_song", counting)
    return calls


def test_build_corpus_resumes_after_interruption(corpus, tmp_path, monkeypatch, capsys):
    out = tmp_path / "corpus"
    shutil.copytree(corpus[0], out)
    expected = (out / METADATA).read_text()
    lines = (out / PROGRESS).read_text().splitlines(keepends=True)
    assert len(lines) == 5 and json.loads(lines[-1])["id"] == "song_00003"  # params + 4 songs
    (out / PROGRESS).write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # killed mid-write
    (out / METADATA).unlink()
    calls = count_make_song(monkeypatch)
    records, skipped = build(out)
    assert calls == [3]  # only the song whose line was cut short
    assert "resuming" in capsys.readouterr().out
    assert (out / METADATA).read_text() == expected and len(records) == 4 and skipped == []
    assert [json.loads(line)["id"] for line in (out / PROGRESS).read_text().splitlines()[1:]] == \
           ["song_00000", "song_00001", "song_00002", "song_00003"]  # the broken tail is gone
    build(out)
    assert calls == [3]  # a finished corpus renders nothing more
    assert (out / METADATA).read_text() == expected


@pytest.mark.parametrize("cut, redone", [
    ("after_brace", [2, 3]),  # killed inside song_00002's line, just after a "}" of a nested object
    ("before_newline", [3]),  # killed after song_00002's JSON but before its newline
])
def test_build_corpus_resume_never_glues_lines(corpus, tmp_path, monkeypatch, cut, redone):
    """Appends after a broken tail start on a line of their own, so a third run has nothing to redo."""
    out = tmp_path / "corpus"
    shutil.copytree(corpus[0], out)
    expected = (out / METADATA).read_text()
    lines = (out / PROGRESS).read_text().splitlines(keepends=True)  # params, song 0, 1, 2, 3
    tail = lines[3][: lines[3].index("}") + 1] if cut == "after_brace" else lines[3].rstrip("\n")
    (out / PROGRESS).write_text("".join(lines[:3]) + tail)  # song_00003 was never started
    calls = count_make_song(monkeypatch)
    build(out)
    assert calls == redone
    build(out)
    assert calls == redone  # before the fix, "after_brace" redid song_00002 here (its line was glued on)
    assert (out / METADATA).read_text() == expected
    assert len((out / PROGRESS).read_text().splitlines()) == 5


def test_build_corpus_refuses_another_seed_in_the_same_folder(corpus, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(corpus[0], out)
    before = (out / PROGRESS).read_text()
    with pytest.raises(RuntimeError, match="use another output folder"):
        build(out, seed=8)
    assert (out / PROGRESS).read_text() == before  # nothing mixed in


def test_build_corpus_skips_bad_renders(tmp_path, monkeypatch, capsys):
    calls = []
    real = TinySoundFontRenderer.render

    def flaky(self, midi, seconds):
        calls.append(seconds)
        if len(calls) == 2:
            raise RuntimeError("synth crashed\nwith a second line")
        audio = real(self, midi, seconds)
        return np.zeros_like(audio) if len(calls) == 3 else audio

    monkeypatch.setattr(TinySoundFontRenderer, "render", flaky)
    out = tmp_path / "corpus"
    records, skipped = build(out)
    assert len(calls) == 4
    reasons = [("song_00001", "RuntimeError: synth crashed with a second line"),
               ("song_00002", "rendered silent (peak 0.0e+00) with TinySoundFont with TimGM6mb.sf2")]
    assert skipped == reasons
    assert [r["id"] for r in records] == ["song_00000", "song_00003"]
    assert [r["id"] for r in read_jsonl(out / METADATA)] == ["song_00000", "song_00003"]
    assert (out / SKIPPED).read_text() == "".join(f"{i}\t{reason}\n" for i, reason in reasons)
    printed = capsys.readouterr().out
    for i, reason in reasons:
        assert f"skipped {i}: {reason}" in printed
    assert not (out / "audio" / "song_00001.flac").exists() and not (out / "audio" / "song_00002.flac").exists()
    assert not list(out.rglob(".*.tmp.*"))


# ---------------------------------------------------------------- command line

def test_cli_builds_a_corpus(tmp_path):
    out = tmp_path / "cli"
    run = subprocess.run([sys.executable, "-m", "data_prep.synth", "--out", str(out), "--n-songs", "2",
                          "--seed", "3", "--min-seconds", "8", "--max-seconds", "14", "--workers", "1",
                          "--renderer", "tinysoundfont", "--quiet"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert re.search(r"corpus: 2 songs \(0\.\d audio minutes, tinysoundfont\), 0 skipped, in [\d.]+ s -> .*"
                     r"metadata\.jsonl", run.stdout), run.stdout
    assert [r["id"] for r in read_jsonl(out / METADATA)] == ["song_00000", "song_00001"]
    assert run.stderr == ""  # --quiet: no progress bar


@pytest.mark.parametrize("args, message", [
    (["--min-seconds", "20", "--max-seconds", "10"], "--min-seconds < --max-seconds"),
    (["--n-songs", "0"], "--n-songs >= 1"),
])
def test_cli_rejects_bad_arguments(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        synth.main(["--out", str(tmp_path / "x"), "--renderer", "tinysoundfont", "--quiet", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_fails_when_no_song_fits(tmp_path, capsys):
    # 2 to 3.5 s cannot hold a bar plus the tail: every song is skipped and the command fails
    with pytest.raises(SystemExit) as exit_info:
        synth.main(["--out", str(tmp_path / "x"), "--n-songs", "2", "--min-seconds", "2", "--max-seconds", "3.5",
                    "--renderer", "tinysoundfont", "--workers", "1", "--quiet"])
    assert "no song could be rendered" in str(exit_info.value.code)
    assert "ValueError: cannot fit a song" in capsys.readouterr().out
    assert (tmp_path / "x" / SKIPPED).read_text().count("\n") == 2


# ---------------------------------------------------------------- tempo

def test_tempo_matches():
    assert tempo_matches(120.0, 120)
    assert tempo_matches(60.0, 120) and tempo_matches(240.0, 120)  # half and double
    assert tempo_matches(124.5, 120) and tempo_matches(115.5, 120)  # within 4 %
    assert not tempo_matches(125.5, 120) and not tempo_matches(114.0, 120)  # outside 4 %
    assert tempo_matches(62.0, 120) and not tempo_matches(63.0, 120)  # 4 % of the half tempo: 2.4 BPM
    assert not tempo_matches(180.0, 120) and not tempo_matches(80.0, 120)  # 3:2 and 2:3 are not accepted
    assert tempo_matches(125.5, 120, tolerance=0.05)


# ---------------------------------------------------------------- a style of one's own

CALYPSO = Genre("calypso", bpm=(185, 200), modes=("major",), groove="bossa", bass_style="bossa",
                chord_style="stabs", bass=(58,), harmony=(12,), lead=(114,), pad=(),
                moods=("sunny", "festive", "carefree", "bouncy"))


def test_compose_with_a_genre_of_ones_own_keeps_the_corpus_songs():
    song = compose(5, MIN_S, MAX_S, genre=CALYPSO)
    assert song.genre is CALYPSO and 185 <= song.bpm <= 200
    assert {"Tuba", "Marimba", "Steel Drums"} <= set(song.instrument_names())
    assert compose(5, MIN_S, MAX_S).genre in GENRES  # without a genre: the corpus's draw, as before
    assert compose(5, MIN_S, MAX_S).metadata() == compose(5, MIN_S, MAX_S, genre=None).metadata()


def test_render_style_writes_audio_and_a_captions_table_the_folder_importer_reads(tmp_path):
    from data_prep.importers import import_folder
    records = render_style(CALYPSO, tmp_path / "style", 2, seed=3, min_seconds=MIN_S, max_seconds=MAX_S,
                           renderer="tinysoundfont", progress=False)
    assert [r["genre"] for r in records] == ["calypso", "calypso"]
    imported, skipped = import_folder(tmp_path / "style" / "audio", tmp_path / "style" / "captions.csv",
                                      tmp_path / "corpus", progress=False)
    assert len(imported) == 2 and not skipped
    by_id = {r["id"]: r for r in imported}
    for r in records:
        got = by_id[f"{r['id']}.flac"]
        assert got["genre"] == "calypso" and got["bpm"] == r["bpm"] and got["instruments"] == r["instruments"]
        assert abs(got["seconds"] - r["seconds"]) < 0.05
    again = render_style(CALYPSO, tmp_path / "style", 2, seed=3, min_seconds=MIN_S, max_seconds=MAX_S,
                         renderer="tinysoundfont", progress=False)
    assert again == records  # the same seed, the same songs; files already written are kept


def test_tempo_estimate_of_a_click_track_and_of_silence(tmp_path):
    from data_prep.tempo import estimate_bpm
    from samod.audio import save_audio
    clicks = np.zeros((2, 8 * 22050), dtype=np.float32)
    clicks[:, ::11025] = 0.9  # a click every half second: 120 BPM
    save_audio(tmp_path / "clicks.wav", clicks, sample_rate=22050)
    save_audio(tmp_path / "silence.wav", np.zeros_like(clicks), sample_rate=22050)
    slower = np.zeros_like(clicks)
    slower[:, ::14700] = 0.9  # every 2/3 s: 90 BPM
    save_audio(tmp_path / "clicks_90.wav", slower, sample_rate=22050)
    fast, slow = estimate_bpm(str(tmp_path / "clicks.wav")), estimate_bpm(str(tmp_path / "clicks_90.wav"))
    assert tempo_matches(fast, 120)
    assert tempo_matches(slow, 90) and not tempo_matches(slow, 120), (fast, slow)
    assert estimate_bpm(str(tmp_path / "silence.wav")) == 0.0  # no onsets: no tempo
