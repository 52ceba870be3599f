"""Songs composed in code: the offline stand-in for the paper's licensed music catalogue.

Stable Audio 2 trains on 806k files with metadata (paper 1 §3.1); nothing of the kind can be
downloaded here, so samod composes its own corpus. Every song has what the paper's metadata has
(genre, tempo, key, moods, instruments) plus what real data rarely gives: a known section plan
(intro, verse, chorus, bridge, outro) whose repeats are exact or varied. That ground truth is what
the structure analysis (paper 1 §4.4, Figure 4) is validated against in notebooks/07_structure.ipynb.

How a song is made (`compose(seed, min_seconds, max_seconds)`):
1. A genre from GENRES fixes the tempo range, modes, drum groove, bass and chord styles and the
   General-MIDI instruments each role may use; a key, a tempo and a target length are drawn.
2. The target length becomes a number of 4/4 bars, split into sections. Each section label gets
   its material once (chord progression, melody, bass line); a later section with the same label
   replays it exactly or with a variation (new melody notes, lead up an octave, a pad added).
3. Each role becomes one MIDI track with its own stereo position (MIDI controller 10).

Everything random comes from one numpy Generator seeded by the song's seed: same seed, same song.
Rendering to audio lives in data_prep/render.py; the command line in data_prep/synth.py.
Taught in notebooks/00_data.ipynb.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pretty_midi

NOTE_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
SCALES = {  # semitones above the root
    "major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10], "dorian": [0, 2, 3, 5, 7, 9, 10],
    "mixolydian": [0, 2, 4, 5, 7, 9, 10], "phrygian": [0, 1, 3, 5, 7, 8, 10], "lydian": [0, 2, 4, 6, 7, 9, 11],
}
DRUM_NOTES = {"kick": 36, "rim": 37, "snare": 38, "clap": 39, "hat": 42, "open": 46, "crash": 49,
              "ride": 51, "shaker": 70, "tom_lo": 45, "tom_hi": 50}
ACCENT = {"X": 118, "x": 96, "g": 52}  # pattern characters: accent, normal hit, ghost note; "." is a rest
STEPS = 16  # sixteenth notes in a 4/4 bar

# Drum grooves, one 16-step bar per drum; data_prep/tempo.py checks they carry the tempo.
GROOVES = {
    "rock":   {"kick": "X.......x.x.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
    "pop":    {"kick": "X.....x...x.....", "snare": "....X.......X...", "hat": "xgxgxgxgxgxgxgxg"},
    "house":  {"kick": "X...X...X...X...", "clap": "....x.......x...", "open": "..x...x...x...x.",
               "shaker": "gggggggggggggggg"},
    "funk":   {"kick": "X.x.....X.x..x..", "snare": "....X..g.g..X...", "hat": "xgxgxgxgxgxgxgxg"},
    "hiphop": {"kick": "X......xx.x.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
    "jazz":   {"ride": "X...x.x.X...x.x.", "hat": "....x.......x...", "kick": "g...g...g...g..."},
    "shuffle": {"kick": "X.......x.......", "snare": "....X.......X...", "ride": "x.x.x.x.x.x.x.x."},
    "onedrop": {"kick": "........X.......", "rim": "........X.......", "hat": "x.x.x.x.x.x.x.x."},
    "bossa":  {"kick": "X..xX..xX..xX..x", "rim": "x..x..x...x..x..", "shaker": "XgxgXgxgXgxgXgxg"},
    "metal":  {"kick": "xxxxxxxxxxxxxxxx", "snare": "....X.......X...", "crash": "x...x...x...x..."},
    "country": {"kick": "X.......X.......", "snare": "....X.......X...", "hat": "x.xxx.xxx.xxx.xx"},
}
FILL = {"snare": "........x.x.xxxx", "tom_hi": "........x...x...", "tom_lo": "..........x...x."}

# Bass and chord rhythms on the 16-step grid: which steps sound.
BASS_RHYTHMS = {"eighths": "x.x.x.x.x.x.x.x.", "root_fifth": "x.......x.......", "walking": "x...x...x...x...",
                "octave": "x.x.x.x.x.x.x.x.", "syncopated": "x..x..x.x.x..x..", "offbeat": "..x...x...x...x.",
                "reggae": "x.....x.x.......", "bossa": "x.......x.....x.", "long": "x...............",
                "hiphop": "x......x..x....."}
CHORD_RHYTHMS = {"block": "x...x...x...x...", "strum": "x.x.x.x.x.x.x.x.", "offbeat": "..x...x...x...x.",
                 "sustain": "x...............", "comp": "x.....x...x.....", "stabs": "..x...x.x.x...x.",
                 "bossa": "x.x..x.x.x..x.x.", "arpeggio": "x.x.x.x.x.x.x.x."}


@dataclass(frozen=True)
class Genre:
    name: str
    bpm: tuple[int, int]  # tempo range, beats per minute
    modes: tuple[str, ...]  # keys of SCALES
    groove: str | None  # key of GROOVES, None for no drums
    bass_style: str  # key of BASS_RHYTHMS ("walking" also picks walking notes)
    chord_style: str  # key of CHORD_RHYTHMS
    bass: tuple[int, ...]  # General-MIDI programs (0-based) the bass may use
    harmony: tuple[int, ...]  # programs for the chords
    lead: tuple[int, ...]  # programs for the melody
    pad: tuple[int, ...]  # programs for a sustained layer (may be empty)
    moods: tuple[str, ...]  # the moods a song of this genre may be tagged with
    swing: float = 0.0  # delay of off-beat eighths, as a fraction of an eighth
    progressions: tuple[tuple[int, ...], ...] = ((0, 5, 3, 4), (0, 3, 4, 3), (5, 3, 0, 4), (0, 4, 5, 3))
    sevenths: bool = False  # four-note chords


GENRES = (
    Genre("rock", bpm=(100, 140), modes=("minor", "major"), groove="rock",
          bass_style="eighths", chord_style="strum",
          bass=(34, 33), harmony=(29, 30), lead=(29, 18), pad=(),
          moods=("energetic", "driving", "rebellious", "powerful")),
    Genre("pop", bpm=(95, 125), modes=("major",), groove="pop",
          bass_style="eighths", chord_style="block",
          bass=(33, 38), harmony=(0, 4, 27), lead=(80, 73, 11), pad=(89,),
          moods=("happy", "uplifting", "catchy", "bright")),
    Genre("jazz", bpm=(110, 170), modes=("dorian", "major"), groove="jazz",
          bass_style="walking", chord_style="comp",
          bass=(32,), harmony=(0, 26, 11), lead=(66, 65, 56, 59), pad=(),
          moods=("smooth", "sophisticated", "relaxed", "warm"),
          swing=0.33, progressions=((1, 4, 0, 0), (0, 5, 1, 4), (2, 5, 1, 4)), sevenths=True),
    Genre("blues", bpm=(70, 110), modes=("mixolydian",), groove="shuffle",
          bass_style="walking", chord_style="comp",
          bass=(33,), harmony=(0, 16, 27), lead=(29, 22), pad=(),
          moods=("soulful", "melancholic", "gritty", "laid-back"),
          swing=0.33, progressions=((0, 0, 3, 0), (3, 3, 0, 0), (4, 3, 0, 4)), sevenths=True),
    Genre("funk", bpm=(95, 115), modes=("dorian",), groove="funk",
          bass_style="syncopated", chord_style="stabs",
          bass=(36,), harmony=(28, 4), lead=(61, 65, 62), pad=(),
          moods=("groovy", "funky", "energetic", "playful"),
          progressions=((0, 0, 3, 3), (0, 3, 0, 4)), sevenths=True),
    Genre("electronic", bpm=(120, 128), modes=("minor",), groove="house",
          bass_style="offbeat", chord_style="offbeat",
          bass=(38, 39), harmony=(0, 4, 81), lead=(80, 81), pad=(89, 90),
          moods=("energetic", "euphoric", "hypnotic", "uplifting")),
    Genre("hip hop", bpm=(80, 98), modes=("minor",), groove="hiphop",
          bass_style="hiphop", chord_style="sustain",
          bass=(38, 33), harmony=(4, 0, 48), lead=(73, 11, 59), pad=(),
          moods=("chill", "laid-back", "moody", "confident"),
          swing=0.15, sevenths=True),
    Genre("reggae", bpm=(70, 95), modes=("major", "minor"), groove="onedrop",
          bass_style="reggae", chord_style="offbeat",
          bass=(33,), harmony=(16, 27), lead=(22, 56), pad=(),
          moods=("relaxed", "sunny", "laid-back", "positive"),
          progressions=((0, 3, 0, 4), (0, 4, 3, 3))),
    Genre("bossa nova", bpm=(120, 145), modes=("major",), groove="bossa",
          bass_style="bossa", chord_style="bossa",
          bass=(32,), harmony=(24,), lead=(73, 66, 11), pad=(),
          moods=("relaxed", "warm", "romantic", "elegant"),
          progressions=((0, 1, 4, 0), (1, 4, 0, 5)), sevenths=True),
    Genre("classical", bpm=(60, 110), modes=("major", "minor"), groove=None,
          bass_style="long", chord_style="arpeggio",
          bass=(43, 42), harmony=(48, 46, 0), lead=(40, 68, 73, 71), pad=(49,),
          moods=("elegant", "dramatic", "peaceful", "majestic")),
    Genre("ambient", bpm=(60, 90), modes=("lydian", "major"), groove=None,
          bass_style="long", chord_style="sustain",
          bass=(35,), harmony=(88, 89, 95), lead=(11, 75, 46), pad=(99, 91),
          moods=("calm", "dreamy", "ethereal", "meditative"),
          progressions=((0, 3, 0, 3), (0, 5, 3, 0))),
    Genre("metal", bpm=(140, 180), modes=("phrygian", "minor"), groove="metal",
          bass_style="eighths", chord_style="strum",
          bass=(34,), harmony=(30,), lead=(30, 81), pad=(),
          moods=("aggressive", "dark", "intense", "heavy"),
          progressions=((0, 1, 0, 5), (0, 5, 6, 0))),
    Genre("country", bpm=(100, 130), modes=("major",), groove="country",
          bass_style="root_fifth", chord_style="strum",
          bass=(32, 33), harmony=(25,), lead=(110, 105, 22), pad=(),
          moods=("cheerful", "nostalgic", "upbeat", "warm")),
)
SECTION_ORDER = ("verse", "chorus", "verse", "chorus", "bridge", "chorus", "chorus", "verse", "chorus")
ENERGY = {"intro": 0.7, "verse": 0.85, "chorus": 1.0, "bridge": 0.8, "outro": 0.7}  # velocity scale
TAIL_SECONDS = 1.0  # silence left after the last bar for notes and reverb to ring out
VARIATIONS = ("new notes", "octave up", "pad added")


def seconds_per_bar(bpm: int) -> float:
    return 4 * 60.0 / bpm  # four beats to the bar


@dataclass
class Section:
    label: str  # intro | verse | chorus | bridge | outro
    start_bar: int
    bars: int
    variation: str | None = None  # how a repeat differs from the section's first occurrence (None: exact)


@dataclass
class Song:
    seed: int
    genre: Genre
    bpm: int
    root: int  # pitch class of the key, 0 = C
    mode: str
    sections: list[Section]
    programs: dict[str, int]  # role -> General-MIDI program
    pans: dict[str, float]  # role -> stereo position in [-1 (left), 1 (right)]
    moods: list[str]
    midi: pretty_midi.PrettyMIDI = field(repr=False, default=None)

    @property
    def bar_seconds(self) -> float:
        return seconds_per_bar(self.bpm)

    @property
    def seconds(self) -> float:
        return sum(s.bars for s in self.sections) * self.bar_seconds + TAIL_SECONDS

    @property
    def key(self) -> str:
        return f"{NOTE_NAMES[self.root]} {self.mode}"

    def instrument_names(self) -> list[str]:
        return ["Drums" if role == "drums" else pretty_midi.program_to_instrument_name(p)
                for role, p in self.programs.items()]

    def metadata(self) -> dict:
        """The song as a metadata record (data_prep/synth.py adds id, path, seconds and renderer)."""
        sections, t = [], 0.0
        for s in self.sections:
            end = t + s.bars * self.bar_seconds
            sections.append({"label": s.label, "start": round(t, 4), "end": round(end, 4),
                             "variation": s.variation})
            t = end
        sections[-1]["end"] = round(self.seconds, 4)  # the outro keeps ringing to the end of the file
        names = self.instrument_names()
        return {"genre": self.genre.name, "bpm": self.bpm, "key": self.key, "moods": self.moods,
                "instruments": names, "panning": {n: round(self.pans[r], 2) for n, r in zip(names, self.programs)},
                "sections": sections}


def plan_sections(music_bars: int, bar_seconds: float) -> list[Section]:
    """Split `music_bars` into intro, repeating verse/chorus(/bridge) units and an outro."""
    unit = 4 if bar_seconds <= 2.5 else 2  # bars per section; slow songs use shorter sections
    if music_bars >= 64:
        unit *= 2
    edge = max(1, unit // 2)  # intro and outro length
    core_bars = music_bars - 2 * edge
    if core_bars < unit:  # too short for a verse: one verse spans everything but the intro
        return [Section("intro", 0, edge), Section("verse", edge, music_bars - edge)]
    sections, bar = [Section("intro", 0, edge)], edge
    for i in range(core_bars // unit):
        sections.append(Section(SECTION_ORDER[i % len(SECTION_ORDER)], bar, unit))
        bar += unit
    sections.append(Section("outro", bar, music_bars - bar))  # absorbs the bars left over
    return sections


def chord_pitches(root: int, scale: list[int], degree: int, sevenths: bool, octave: int) -> list[int]:
    """MIDI pitches of the chord on scale `degree` (stacked thirds from the scale)."""
    steps = (0, 2, 4, 6) if sevenths else (0, 2, 4)
    return [12 * octave + root + scale[(degree + s) % 7] + 12 * ((degree + s) // 7) for s in steps]


def scale_pitches(root: int, scale: list[int], low: int, high: int) -> list[int]:
    return [p for p in range(low, high + 1) if (p - root) % 12 in scale]


def make_melody(rng: np.random.Generator, chords: list[list[int]], pool: list[int]) -> list[tuple[int, int, int]]:
    """A melody over `chords` (one per bar): (step, pitch, length in steps); a 2-bar motif repeated with changes."""
    rhythm_cells = ["x.x.x.x.", "x...x.x.", "x.xxx...", "x..x..x.", "x.......", "xxx.x.x."]
    motif = []
    for bar in range(2):
        cells = rng.choice(rhythm_cells, size=2)
        motif += [bar * STEPS + i for i, c in enumerate("".join(cells)) if c == "x"]
    notes, pitch = [], int(rng.choice(pool[len(pool) // 3: 2 * len(pool) // 3]))
    for start_bar in range(0, len(chords), 2):
        for step in motif:
            bar = start_bar + step // STEPS
            if bar >= len(chords):
                break
            if step % 8 == 0:  # strong beats land on a chord tone near the last pitch
                tones = [p for p in pool if p % 12 in {c % 12 for c in chords[bar]}]
                pitch = min(tones, key=lambda p: abs(p - pitch) + rng.random())
            else:  # weak beats move by a scale step or two
                i = pool.index(pitch) + int(rng.choice([-2, -1, 1, 2]))
                pitch = pool[min(max(i, 0), len(pool) - 1)]
            notes.append((start_bar * STEPS + step, pitch, 2))
    for i in range(len(notes) - 1):  # each note lasts until the next one (at most a half bar)
        notes[i] = (notes[i][0], notes[i][1], min(notes[i + 1][0] - notes[i][0], 8))
    return notes


class _Writer:
    """Turns step-grid events into pretty_midi notes for one song (tempo, swing, velocity)."""

    def __init__(self, song: Song, rng: np.random.Generator):
        self.song, self.rng = song, rng
        self.step = song.bar_seconds / STEPS
        self.tracks = {}
        for role, program in song.programs.items():
            inst = pretty_midi.Instrument(program=0 if role == "drums" else program, is_drum=role == "drums",
                                          name=role)
            pan = int(round(64 + 63 * song.pans[role]))
            inst.control_changes.append(pretty_midi.ControlChange(10, min(max(pan, 0), 127), 0.0))
            self.tracks[role] = inst

    def time(self, step: float) -> float:
        if step % 4 == 2:  # an off-beat eighth: swung
            step += 2 * self.song.genre.swing
        return step * self.step

    def note(self, role: str, step: float, pitch: int, steps: float, velocity: float) -> None:
        jitter = int(self.rng.integers(-6, 7))  # a human player never hits twice alike
        v = int(min(max(velocity + jitter, 1), 127))
        start = self.time(step)
        self.tracks[role].notes.append(pretty_midi.Note(v, int(pitch), start, start + max(steps, 0.5) * self.step))


def compose(seed: int, min_seconds: float, max_seconds: float, genre: Genre | None = None) -> Song:
    """Compose one song whose length lies in [min_seconds, max_seconds]; everything follows from `seed`.

    `genre`: a Genre row of one's own (a style the corpus lacks, notebooks/10_fine_tuning.ipynb) instead of
    one drawn from GENRES; the draw is made anyway, so the songs of GENRES stay the same."""
    rng = np.random.default_rng(seed)  # every draw below comes from here, in a fixed order
    drawn = GENRES[rng.integers(len(GENRES))]
    genre = genre or drawn
    bpm = int(rng.integers(genre.bpm[0], genre.bpm[1] + 1))
    mode = str(rng.choice(genre.modes))
    root = int(rng.integers(12))
    sections = _draw_sections(rng, genre, bpm, min_seconds, max_seconds)
    programs, pans = _draw_instruments(rng, genre)
    moods = _draw_moods(rng, genre, mode)
    song = Song(seed, genre, bpm, root, mode, sections, programs, pans, moods)
    lead_pool = scale_pitches(root, SCALES[mode], 62, 86)  # the pitches a melody may use
    material = _draw_material(rng, song, lead_pool)
    song.midi = _play(rng, song, material, lead_pool)
    return song


def _draw_sections(rng: np.random.Generator, genre: Genre, bpm: int, min_seconds: float,
                   max_seconds: float) -> list[Section]:
    """Draw a length in [min_seconds, max_seconds] and plan it as sections of whole bars."""
    bar_seconds = seconds_per_bar(bpm)
    if max_seconds - min_seconds < bar_seconds or min_seconds < TAIL_SECONDS + bar_seconds:
        raise ValueError(f"cannot fit a song of {genre.name} at {bpm} BPM ({bar_seconds:.2f} s per bar) between "
                         f"{min_seconds} and {max_seconds} s: widen the range (at least {2 * bar_seconds:.0f} s "
                         f"wide, minimum above {TAIL_SECONDS + bar_seconds:.0f} s)")
    target = rng.uniform(min_seconds + bar_seconds, max_seconds)
    music_bars = int((target - TAIL_SECONDS) // bar_seconds)
    return plan_sections(music_bars, bar_seconds)


def _draw_instruments(rng: np.random.Generator, genre: Genre) -> tuple[dict[str, int], dict[str, float]]:
    """The General-MIDI program and the stereo position of each role."""
    programs = {"drums": 0} if genre.groove else {}
    programs["bass"] = int(rng.choice(genre.bass))
    programs["harmony"] = int(rng.choice(genre.harmony))
    # the lead takes another instrument than the harmony when the genre has one
    programs["lead"] = int(rng.choice([p for p in genre.lead if p != programs["harmony"]] or genre.lead))
    if genre.pad:
        programs["pad"] = int(rng.choice(genre.pad))
    # drums and bass in the middle, the harmony on one side, lead and pad towards the other;
    # the pad's position is drawn even when there is no pad, so the draws after it stay the same
    side = float(rng.choice([-1.0, 1.0]))
    pans = {"drums": 0.0, "bass": 0.0, "harmony": side * rng.uniform(0.3, 0.7),
            "lead": -side * rng.uniform(0.0, 0.35), "pad": -side * rng.uniform(0.3, 0.7)}
    return programs, {role: pans[role] for role in programs}


def _draw_moods(rng: np.random.Generator, genre: Genre, mode: str) -> list[str]:
    """Two of the genre's moods, plus "bright" or "dark" from the key."""
    moods = sorted(rng.choice(genre.moods, size=2, replace=False).tolist())
    moods.append("bright" if SCALES[mode][2] == 4 else "dark")  # major third or minor third
    return moods


def _draw_material(rng: np.random.Generator, song: Song, lead_pool: list[int]) -> dict[str, dict]:
    """Chords and melody per section label, drawn once so that repeats are exact.

    All five labels get material, even those the song lacks, so the draws after this step stay the same."""
    genre, scale = song.genre, SCALES[song.mode]
    material = {}
    for label in ("intro", "verse", "chorus", "bridge", "outro"):
        prog = genre.progressions[rng.integers(len(genre.progressions))]
        if label == "bridge":
            prog = tuple((d + 3) % 7 for d in prog)  # the bridge moves to other chords
        chords = [chord_pitches(song.root, scale, d, genre.sevenths, 4) for d in prog]
        material[label] = {"chords": chords, "melody": make_melody(rng, chords * 4, lead_pool)}
    return material


def _play(rng: np.random.Generator, song: Song, material: dict[str, dict],
          lead_pool: list[int]) -> pretty_midi.PrettyMIDI:
    """Play the sections in order, one MIDI track per role, and end on a tonic chord."""
    w = _Writer(song, rng)
    seen = set()
    for s in song.sections:
        # a repeated verse or chorus is varied half of the time; decided here, as the section starts,
        # because the draws interleave with those of the notes already written
        if s.label in seen and s.label in ("verse", "chorus") and rng.random() < 0.5:
            s.variation = str(rng.choice(VARIATIONS))
        seen.add(s.label)
        _play_section(w, s, material[s.label], lead_pool)
    last = song.sections[-1]
    end_step = (last.start_bar + last.bars) * STEPS
    for p in material["outro"]["chords"][0]:  # a final tonic chord
        w.note("harmony", end_step - STEPS, p, STEPS, 80)
    midi = pretty_midi.PrettyMIDI(initial_tempo=song.bpm)
    midi.instruments = list(w.tracks.values())
    return midi


def _play_section(w: _Writer, s: Section, material: dict, lead_pool: list[int]) -> None:
    """Write one section bar by bar: drums, bass, chords, pad and lead."""
    genre = w.song.genre
    melody = material["melody"]
    if s.variation == "new notes":  # about a third of the notes are drawn anew
        melody = [(st, int(w.rng.choice(lead_pool)) if w.rng.random() < 0.3 else p, ln) for st, p, ln in melody]
    shift = 12 if s.variation == "octave up" else 0
    energy = 100 * ENERGY[s.label]
    pad = "pad" in w.song.programs and (s.label in ("chorus", "bridge", "intro") or s.variation == "pad added")
    for b in range(s.bars):
        bar_step = (s.start_bar + b) * STEPS
        chord = material["chords"][b % len(material["chords"])]
        _write_drums(w, genre, s, b, bar_step, energy, last_bar=b == s.bars - 1)
        if s.label != "intro" or b >= s.bars // 2:  # the bass enters halfway through the intro
            _write_bass(w, genre, chord, bar_step, energy)
        _write_chords(w, genre, chord, bar_step, energy)
        if pad:
            for p in chord:
                w.note("pad", bar_step, p - 12, STEPS, 0.6 * energy)
        if s.label in ("verse", "chorus") or (s.label == "bridge" and b % 2 == 0):
            for st, p, ln in melody:
                if b * STEPS <= st < (b + 1) * STEPS:
                    w.note("lead", bar_step + st - b * STEPS, p + shift, ln, energy)


def _write_drums(w: _Writer, genre: Genre, s: Section, b: int, bar_step: int, energy: float, last_bar: bool) -> None:
    if not genre.groove:
        return
    groove = dict(GROOVES[genre.groove])
    fill = last_bar and s.label in ("verse", "bridge") and s.bars >= 2
    if s.label == "intro":  # the intro keeps only the time-keepers
        groove = {k: v for k, v in groove.items() if k in ("kick", "hat", "ride", "shaker")}
    for drum, pattern in groove.items():
        for i, c in enumerate(pattern):
            if c != "." and not (fill and i >= 8 and drum != "kick"):
                w.note("drums", bar_step + i, DRUM_NOTES[drum], 1, ACCENT[c] * energy / 100)
    if fill:
        for drum, pattern in FILL.items():
            for i, c in enumerate(pattern):
                if c != ".":
                    w.note("drums", bar_step + i, DRUM_NOTES[drum], 1, ACCENT[c] * energy / 100)
    if b == 0 and s.label in ("chorus", "bridge", "outro"):
        w.note("drums", bar_step, DRUM_NOTES["crash"], 4, 110 * energy / 100)


def _write_bass(w: _Writer, genre: Genre, chord: list[int], bar_step: int, energy: float) -> None:
    bass_root = chord[0] - 24  # two octaves below the chord
    hits = [i for i, c in enumerate(BASS_RHYTHMS[genre.bass_style]) if c == "x"]
    walk = [bass_root, chord[1] - 24, chord[2] - 24, bass_root + 7 - 1]  # root, third, fifth, approach
    for n, i in enumerate(hits):
        length = (hits[n + 1] if n + 1 < len(hits) else STEPS) - i
        if genre.bass_style == "walking":
            pitch = walk[n % 4]
        elif genre.bass_style == "octave":
            pitch = bass_root + 12 * (n % 2)
        elif genre.bass_style in ("root_fifth", "bossa", "reggae"):
            pitch = bass_root + 7 * (n % 2)
        else:
            pitch = bass_root
        w.note("bass", bar_step + i, pitch, max(length - 0.5, 1), 0.95 * energy)


def _write_chords(w: _Writer, genre: Genre, chord: list[int], bar_step: int, energy: float) -> None:
    hits = [i for i, c in enumerate(CHORD_RHYTHMS[genre.chord_style]) if c == "x"]
    for n, i in enumerate(hits):
        length = (hits[n + 1] if n + 1 < len(hits) else STEPS) - i
        if genre.chord_style == "arpeggio":
            cycle = [chord[0], chord[2], chord[0] + 12, chord[1] + 12]  # four notes: one cycle per half bar
            w.note("harmony", bar_step + i, cycle[n % 4], 2, (0.8 if i % 4 == 0 else 0.6) * energy)
        elif genre.chord_style in ("offbeat", "stabs", "strum"):
            for p in chord:
                w.note("harmony", bar_step + i, p, min(length, 2) * 0.8, 0.75 * energy)
        else:
            for p in chord:
                w.note("harmony", bar_step + i, p, length, 0.7 * energy)


def genre_names() -> list[str]:
    return [g.name for g in GENRES]

