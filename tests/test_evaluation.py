"""Evaluation helpers: Song Describer loading and the no-singing filter, render sets, scoring, tables, memorization."""
import csv
import json

import numpy as np
import pytest

from samod import evaluation as ev
from samod.memorization import (FrameStatistics, centred, cosine_matrix, duplicate_pairs, nearest_neighbours,
                                replica_check, replica_threshold, replica_variant, top_candidates)
from samod.tables import write_table
from samod.profiles import SAMPLE_RATE

SDD_COLUMNS = ["caption_id", "track_id", "caption", "is_valid_subset", "familiarity", "artist_id", "album_id", "path",
               "duration"]


def write_sdd(path, captions):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(SDD_COLUMNS)
        for i, caption in enumerate(captions):
            writer.writerow([i, 1000 + i, caption, "True", "2", 7, 8, f"{i % 100:02d}/{1000 + i}.2min.mp3", "120.0"])


def test_no_singing_filter_uses_whole_words():
    assert ev.is_no_singing("A calm piano piece with soft strings.")
    assert not ev.is_no_singing("Upbeat pop with a female singer.")
    assert not ev.is_no_singing("Gregorian CHANT in a church")
    assert not ev.is_no_singing("A man whistling over guitar")
    assert ev.is_no_singing("Romantic mandolin and a humane tempo")  # 'man' inside words does not count
    assert not ev.is_no_singing("a cappella? no: acapella vocals")


def test_read_song_describer_in_its_published_format(tmp_path):
    path = tmp_path / "song_describer.csv"
    write_sdd(path, ["Calm piano and strings.", "Rock song with a male vocalist.", "Ambient pads, no drums."])
    records = ev.read_song_describer(path, audio_dir=tmp_path / "audio")
    assert [r["prompt"] for r in records] == ["Calm piano and strings.", "Ambient pads, no drums."]
    assert records[1]["id"] == "sdd_2" and records[1]["audio_path"].endswith("02/1002.2min.mp3")
    assert len(ev.read_song_describer(path, no_singing=False)) == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\n1,hello\n")
    with pytest.raises(ValueError, match="song_describer.csv"):
        ev.read_song_describer(bad)


def test_shuffled_prompts_never_keep_their_own():
    prompts = ["a", "b", "c", "d"]
    s = ev.shuffled(prompts)
    assert sorted(s) == prompts and all(x != y for x, y in zip(prompts, s))
    with pytest.raises(ValueError):
        ev.shuffled(["only"])


class FakePipeline:
    """Generates a tone whose pitch depends on the prompt and seed; counts its calls."""
    def __init__(self):
        self.calls = 0

    def generate(self, prompt, seconds, steps, cfg_scale, seed, sampler, progress):
        self.calls += 1
        t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        tone = 0.3 * np.sin(2 * np.pi * (200 + 10 * len(prompt) + seed) * t)
        return np.stack([tone, tone]).astype(np.float32)


def test_genre_reading_tells_no_genres_from_memorised_from_generalising():
    chance = 1 / 13
    result = lambda accuracy: {"genre_accuracy": accuracy, "genre_chance": chance}
    assert ev.genre_reading(result(0.2), result(0.2)) == "no genres"  # below 3x chance even on training songs
    assert ev.genre_reading(result(0.42), result(0.08)) == "memorised"
    assert ev.genre_reading(result(0.35), result(0.28)) == "generalises"
    assert ev.genre_reading(result(0.35), result(0.25), gap=0.05) == "memorised"
    assert set(ev.GENRE_READINGS) == {"no genres", "memorised", "generalises"}


def test_render_set_writes_and_reuses_only_matching_settings(tmp_path):
    pipe, config = FakePipeline(), ev.EvalConfig(n_prompts=2, reference_seconds=0.5, steps=3)
    first = ev.render_set(pipe, "fake", ["x", "yy"], 0.5, config, tmp_path, model="m1", progress=False)
    assert pipe.calls == 2 and len(first.audio) == 2 and first.audio[0].shape == (2, SAMPLE_RATE // 2)
    again = ev.render_set(pipe, "fake", ["x", "yy"], 0.5, config, tmp_path, model="m1", progress=False)
    assert pipe.calls == 2 and np.array_equal(again.audio[1], first.audio[1])  # reused from disk
    ev.render_set(pipe, "fake", ["x", "yy"], 0.5, config, tmp_path, model="m2", progress=False)
    assert pipe.calls == 4  # another model: rendered again
    shuffled = ev.render_set(pipe, "fake", ["x", "yy"], 0.5, config, tmp_path / "s", model="m2",
                             conditioning_prompts=ev.shuffled(["x", "yy"]), progress=False)
    assert shuffled.prompts == ["x", "yy"] and json.loads((tmp_path / "s" / "renders.json").read_text())[
        "settings"]["conditioning_prompts"] == ["yy", "x"]


class ToyEmbedders:
    """FD rows: per-frame band energies; logits: two 'classes' (low/high pitch); CLAP: a 3-d toy space."""
    name = "toy"

    def embed(self, audio):  # FD rows and CLAP rows share this toy: spectrum energies in 4 bands
        rows = []
        for file in audio:
            frames = file.mean(axis=0)[: (file.shape[1] // 2048) * 2048].reshape(-1, 2048)
            spectrum = np.abs(np.fft.rfft(frames, axis=1))
            rows.append(np.stack([spectrum[:, a:b].sum(axis=1) for a, b in ((0, 8), (8, 12), (12, 20), (20, 40))], 1))
        return np.concatenate(rows) + 1e-3

    def logits(self, audio):
        return [np.log(self.embed(a[None])[:, :2]) for a in audio]

    def embed_text(self, prompts):
        return np.array([[1.0, 1.0, 0.1, 0.1] if "low" in p else [0.1, 0.1, 1.0, 1.0] for p in prompts])


def tone(freq, seconds=1.0):
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    return np.stack([x, x]).astype(np.float32)


def test_scorer_rows_rank_a_copy_above_a_wrong_answer():
    toys = ToyEmbedders()

    class Clap(ToyEmbedders):
        def embed(self, audio):
            return np.array([[1.0, 1.0, 0.1, 0.1]]) if ToyEmbedders.embed(self, audio)[:, 0].mean() > \
                ToyEmbedders.embed(self, audio)[:, 2].mean() else np.array([[0.1, 0.1, 1.0, 1.0]])

    references = [tone(150), tone(160), tone(300), tone(320)]
    prompts = ["low", "low", "high", "high"]
    scorer = ev.Scorer(toys, toys, Clap(), references)
    copy = scorer.score(ev.RenderSet("copy", [r.copy() for r in references], prompts, 0.1))
    wrong = scorer.score(ev.RenderSet("wrong", references[2:] + references[:2], prompts, 0.1))
    assert copy["FD"] == pytest.approx(0.0, abs=1e-6) and copy["KL"] == pytest.approx(0.0, abs=1e-9)
    assert wrong["KL"] > 0.1 and wrong["CLAP score"] < copy["CLAP score"]
    assert wrong["FD"] == pytest.approx(0.0, abs=1e-6)  # the same set, paired wrongly: FD does not pair
    assert copy["KL interval"][0] <= copy["KL"] <= copy["KL interval"][1] and len(copy["per prompt"]["KL"]) == 4
    margin = ev.paired_margin(copy, wrong, "CLAP score")
    assert margin["difference"] > 0 and margin["low"] > 0  # every prompt: the copy matches better
    assert ev.paired_margin(copy, copy, "KL") == {"difference": 0.0, "low": 0.0, "high": 0.0}
    md, js = write_table([copy, wrong], "/tmp/samod_test_table", "toy", {"embedders": scorer.names})
    assert "| copy | 1 s |" in md.read_text() and json.loads(js.read_text())["notes"]["embedders"]["FD"] == "toy"
    with pytest.raises(ValueError, match="measured"):
        write_table([{**copy, "source": "published"}], "/tmp/samod_test_table", "toy", {})
    with pytest.raises(ValueError, match="references"):
        scorer.score(ev.RenderSet("short", references[:2], prompts[:2], 0.1))


def test_replica_threshold_and_duplicates():
    rng = np.random.default_rng(0)
    songs = rng.standard_normal((6, 16))
    copies = songs[:2] + 1e-3 * rng.standard_normal((2, 16))  # replicas of songs 0 and 1
    everything = np.concatenate([songs, copies])  # (8, 16)
    sim = cosine_matrix(everything, everything)
    replica = [sim[0, 6], sim[1, 7]]
    distinct = [sim[i, j] for i in range(6) for j in range(i + 1, 6)]
    threshold = replica_threshold(replica, distinct)
    assert max(distinct) < threshold < min(replica)
    pairs = duplicate_pairs(everything, threshold)
    assert {(i, j) for i, j, _ in pairs} == {(0, 6), (1, 7)}
    with pytest.raises(ValueError, match="does not separate"):
        replica_threshold([0.5], [0.6])


def test_nearest_neighbours_and_candidates():
    train = np.eye(4)
    queries = np.array([[1.0, 0.1, 0, 0], [0, 0, 1.0, 1.0], [0.2, 0.2, 0.2, 0.2]])
    index, cosine = nearest_neighbours(queries, train, k=2)
    assert index[0, 0] == 0 and set(index[1]) == {2, 3} and cosine.shape == (3, 2)
    assert np.all(np.diff(cosine, axis=1) <= 0)
    assert top_candidates(cosine, 2) == [0, 1]
    with pytest.raises(ValueError, match="all-zero"):
        cosine_matrix(np.zeros((1, 4)), train)


def test_replica_variant_is_a_shifted_louder_copy():
    x = np.random.default_rng(0).standard_normal((2, 100)).astype(np.float32)
    y = replica_variant(x, gain_db=6.0, shift_samples=3)
    assert y.shape == x.shape and np.allclose(y[:, 3:], x[:, :-3] * 10 ** (6 / 20)) and np.all(y[:, :3] == 0)


def test_replica_check_says_when_an_embedding_cannot_separate():
    rng = np.random.default_rng(0)
    songs = rng.standard_normal((6, 16))
    good = replica_check(songs, songs[[1, 4]] + 1e-3 * rng.standard_normal((2, 16)), [1, 4])
    assert good["separates"] and max(good["distinct"]) < good["threshold"] < min(good["replica"])
    collapsed = np.ones((6, 16)) + 1e-4 * rng.standard_normal((6, 16))  # every song in the same place
    bad = replica_check(collapsed, collapsed[[1, 4]] + 1e-2 * rng.standard_normal((2, 16)), [1, 4])
    assert not bad["separates"] and bad["threshold"] is None
    assert np.allclose(centred(songs, songs.mean(axis=0)).mean(axis=0), 0)


def test_frame_statistics_are_mean_and_std_of_frames():
    class Frames:
        name = "toy frames: a stand-in"

        def embed(self, audio):
            return audio[0].T  # (T, A): every sample a frame of A features

    stats = FrameStatistics(Frames())
    x = np.random.default_rng(0).standard_normal((2, 50))
    v = stats.embed_files([x, 2 * x])
    assert v.shape == (2, 4) and np.allclose(v[0], np.r_[x.mean(1), x.std(1)]) and np.allclose(v[1], 2 * v[0])
    assert stats.name == "mean and std over frames of toy frames"


class BandEnergies:
    """A stand-in embedder: the share of a file's energy in each of 32 frequency bands (gain does not change it)."""
    name = "band energy shares: a stand-in"

    def embed_files(self, files):
        spectra = [np.abs(np.fft.rfft(f.mean(axis=0), n=8192)) ** 2 for f in files]
        bands = np.stack([np.add.reduceat(s, np.linspace(0, len(s) - 1, 33).astype(int)[:-1]) for s in spectra])
        return bands / bands.sum(axis=1, keepdims=True)  # (N, 32)


def tone(frequency, seconds=1.0):
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return np.stack([0.3 * np.sin(2 * np.pi * frequency * t)] * 2).astype(np.float32)  # (2, T)


def test_training_set_search_finds_the_closest_song_and_a_replica_threshold(tmp_path):
    from samod.audio import save_audio
    from samod.memorization import TrainingSetSearch
    frequencies = [200, 700, 1500, 3000, 5000, 8000]
    paths = []
    for i, f in enumerate(frequencies):
        paths.append(tmp_path / f"song_{i}.wav")
        save_audio(paths[-1], tone(f))
    search = TrainingSetSearch(BandEnergies(), paths, [f"song_{i}" for i in range(6)], planted=3)
    assert search.threshold is not None and len(search.replicas["replica"]) == 3
    rows = search.nearest([tone(3000) + 0.5 * tone(5000), tone(220)], k=3)
    assert [r[0]["name"] for r in rows] == ["song_3", "song_0"] and all(len(r) == 3 for r in rows)
    assert rows[0][0]["path"] == paths[3] and rows[0][0]["similarity"] > rows[0][1]["similarity"]
    assert search.nearest([tone(12000)], k=1)[0][0]["similarity"] < search.threshold  # a new sound: no replica
    assert search.nearest([0.5 * tone(1500)], k=1)[0][0]["similarity"] >= search.threshold  # a louder copy is
    with pytest.raises(ValueError, match="at least two training songs"):
        TrainingSetSearch(BandEnergies(), paths[:1], ["song_0"])


class CountingBandEnergies(BandEnergies):
    """BandEnergies that counts the files it embeds."""
    def __init__(self, name=BandEnergies.name):
        self.name, self.files = name, 0

    def embed_files(self, files):
        self.files += len(files)
        return super().embed_files(files)


def test_training_set_search_reuses_cached_embeddings_of_unchanged_files_only(tmp_path):
    from samod.audio import save_audio
    from samod.memorization import TrainingSetSearch
    paths = [tmp_path / f"song_{i}.wav" for i in range(4)]
    for path, f in zip(paths, [200, 700, 1500, 3000]):
        save_audio(path, tone(f))
    names = [p.stem for p in paths]
    first = TrainingSetSearch(CountingBandEnergies(), paths, names, planted=2)
    assert first.reused == 0 and first.embedder.files == 4 + 2  # every song, and two replicas
    cache = first.save(tmp_path / "search.npz", {"made by": "this test"})

    again = TrainingSetSearch(CountingBandEnergies(), paths, names, planted=2, caches=[cache])
    assert again.reused == 4 and again.embedder.files == 0 and again.caches == [cache]
    assert np.array_equal(again.train, first.train) and again.threshold == first.threshold

    save_audio(paths[1], tone(900))  # a changed file is embedded again, and nothing else
    changed = TrainingSetSearch(CountingBandEnergies(), paths, names, planted=2, caches=[cache])
    assert changed.reused == 3 and changed.embedder.files == 1
    fresh = TrainingSetSearch(CountingBandEnergies(), paths, names, planted=2)
    assert np.allclose(changed.train, fresh.train) and not np.allclose(changed.train, first.train)

    other = TrainingSetSearch(CountingBandEnergies("another embedder"), paths, names, planted=2, caches=[cache])
    assert other.reused == 0 and other.caches == []  # rows of another embedder's space are not used
