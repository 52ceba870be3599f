"""The note measures (samod/chroma.py): calibrated so that what holds notes passes and the cheap fakes
(a constant, random noise, noise shaped like the input's rhythm) stay at chance."""
import numpy as np
import pretty_midi
import pytest
import torch

from samod import chroma as notes
from samod.metrics import lowpass_baseline

SR = 44100
N_SONGS, SECONDS, CHORD_SECONDS = 8, 4.0, 0.5


def chord_song(seed: int) -> tuple[torch.Tensor, list[tuple[float, float, int]]]:
    """(2, samples) stereo: a random triad (MIDI 48-71) every half second, each with an attack-decay envelope,
    and its notes as (start, end, pitch)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * SR)) / SR
    audio, played = np.zeros_like(t), []
    for k in range(int(SECONDS / CHORD_SECONDS)):
        root = int(rng.integers(48, 60))
        start = k * CHORD_SECONDS
        on = (t >= start) & (t < start + CHORD_SECONDS)
        envelope = np.exp(-4 * (t - start)) * on
        for pitch in (root, root + int(rng.choice([3, 4])), root + 7):
            audio += envelope * np.sin(2 * np.pi * pretty_midi.note_number_to_hz(pitch) * t)
            played.append((start, start + CHORD_SECONDS, pitch))
    audio = 0.2 * audio / np.abs(audio).max()
    return torch.from_numpy(np.stack([audio, audio])).float(), played


@pytest.fixture(scope="module")
def songs():
    return [chord_song(seed)[0] for seed in range(N_SONGS)]


def test_own_chroma_is_perfect(songs):
    out = notes.note_measures(songs, songs)
    assert out["chroma_identification"] == 1.0 and out["chroma_motion"] == pytest.approx(1.0)
    assert out["own_similarity"] == pytest.approx(1.0, abs=1e-5) and out["chance"] == 1 / N_SONGS


def test_same_size_lowpass_keeps_the_notes(songs):
    lowpass = [torch.as_tensor(lowpass_baseline(s, 64 * 44100 / 2048)) for s in songs]  # the latent's numbers/s
    out = notes.note_measures(songs, lowpass)
    assert out["chroma_identification"] >= 0.875 and out["chroma_motion"] > 0.7


@pytest.mark.parametrize("fake", ["constant", "noise", "rhythm only"])
def test_fakes_stay_at_chance(songs, fake):
    if fake == "constant":
        outputs = [songs[0]] * N_SONGS  # one clip for every input: it matches one input at most
    elif fake == "noise":
        outputs = [0.1 * torch.randn(s.shape, generator=torch.Generator().manual_seed(i)) for i, s in enumerate(songs)]
    else:
        outputs = [notes.rhythm_only(s, seed=i) for i, s in enumerate(songs)]
    out = notes.note_measures(songs, outputs)
    assert out["chroma_identification"] <= 2 / N_SONGS, out


def test_rhythm_only_keeps_the_envelope_and_not_the_notes(songs):
    song = songs[1]
    fake = notes.rhythm_only(song)
    assert fake.shape == song.shape
    level = lambda x: 20 * np.log10(float(x.pow(2).mean().sqrt()))  # noqa: E731
    assert abs(level(fake) - level(song)) < 3.0  # about as loud
    frames = lambda x: x[0].unfold(0, 4410, 4410).pow(2).mean(-1).sqrt()  # noqa: E731  RMS every 0.1 s
    assert np.corrcoef(frames(song), frames(fake))[0, 1] > 0.8  # the same rhythm
    assert notes.chroma_similarity(notes.chroma(fake), notes.chroma(song)) < 0.3


def test_silence_matches_nothing(songs):
    silent = notes.chroma(torch.zeros(2, SR))
    assert not silent.any()
    assert notes.chroma_similarity(silent, notes.chroma(songs[0])) == 0.0


def test_midi_agreement_reads_the_notes(tmp_path):
    audio, played = chord_song(3)
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes = [pretty_midi.Note(100, pitch, start, end) for start, end, pitch in played]
    drums = pretty_midi.Instrument(0, is_drum=True)  # drums are no pitch class: left out
    drums.notes = [pretty_midi.Note(100, 36, k * 0.25, k * 0.25 + 0.1) for k in range(16)]
    midi.instruments = [piano, drums]
    path = tmp_path / "song.mid"
    midi.write(str(path))
    own = notes.midi_agreement(audio, path, start=0.0)
    shifted = notes.midi_agreement(audio[:, SR // 2:], path, start=0.0)  # the audio half a second (a chord) late
    fake = notes.midi_agreement(notes.rhythm_only(audio), path, start=0.0)
    assert own > 0.6 and own > shifted + 0.3 and fake < 0.2, (own, shifted, fake)


def test_bad_pairs_are_refused(songs):
    with pytest.raises(ValueError, match="one output per reference"):
        notes.note_measures(songs, songs[:3])


def test_chroma_clarity_is_high_for_chords_and_low_for_noise(songs):
    noise = 0.1 * torch.randn(2, int(SECONDS * SR), generator=torch.Generator().manual_seed(0))
    tone = torch.sin(2 * torch.pi * 440 * torch.arange(int(SECONDS * SR)) / SR)[None].repeat(2, 1) * 0.2
    clear, chords, hiss = notes.chroma_clarity(tone), notes.chroma_clarity(songs[0]), notes.chroma_clarity(noise)
    assert clear > chords > hiss and hiss < 2.0 and clear > 5.0, (clear, chords, hiss)
    assert notes.chroma_clarity(torch.zeros(2, SR)) == 1.0


def test_harmony_range_admits_the_songs_and_none_of_the_fakes(songs):
    """Clips read against the range of a set of songs: more songs of the same kind fall inside, while a drone
    (clear, does not move), noise and noise with the songs' rhythm (unclear, moving only by jitter) fall out."""
    reference = {k: [notes.harmony(s)[k] for s in songs] for k in notes.HARMONY}
    others = [chord_song(seed)[0] for seed in range(N_SONGS, N_SONGS + 4)]
    tone = torch.sin(2 * torch.pi * 440 * torch.arange(int(SECONDS * SR)) / SR)[None].repeat(2, 1) * 0.2
    fakes = {"drone": [tone] * 4,
             "noise": [0.1 * torch.randn(2, int(SECONDS * SR), generator=torch.Generator().manual_seed(i)) for i in range(4)],
             "rhythm only": [notes.rhythm_only(s, seed=i) for i, s in enumerate(others)]}
    measure = lambda clips: {k: [notes.harmony(c)[k] for c in clips] for k in notes.HARMONY}
    songs_inside = notes.inside_range(measure(others), reference, low=0, high=100)
    assert songs_inside["inside_both"] >= 0.5, songs_inside
    for name, clips in fakes.items():
        assert notes.inside_range(measure(clips), reference, low=0, high=100)["inside_both"] == 0.0, name
    itself = notes.inside_range(reference, reference)  # the 10-90 % range holds about 80 % of its own set
    assert 0.5 <= itself["chroma_clarity"]["inside"] <= 1.0 and set(itself) == {*notes.HARMONY, "inside_both"}
    assert notes.harmony(torch.zeros(2, SR)) == {"chroma_clarity": 1.0, "chroma_movement": 0.0}
