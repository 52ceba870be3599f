"""MIDI to 44.1 kHz stereo audio with a General-MIDI soundfont.

Two renderers, the same interface (`render(midi, seconds) -> (2, samples) float32`):

- `TinySoundFontRenderer` (the default, needs only PyPI): TinySoundFont (the `tinysoundfont` wheel)
  playing the small TimGM6mb soundfont that ships inside pretty_midi's wheel. Every machine renders
  the same corpus with it, and the models (the reference weights included) are trained on that corpus.
- `FluidSynthRenderer` (only when asked for: `SAMOD_RENDERER=fluidsynth` or `--renderer fluidsynth`):
  the FluidSynth program with the FluidR3 GM soundfont, both from Debian
  (`apt-get install --no-install-recommends fluidsynth fluid-soundfont-gm`). Its chorus effect is
  turned off: with it on, many patches come out with left and right in opposite phase, which a stereo
  model would learn as a property of music. Reverb stays on.

Both honour each track's pan (MIDI controller 10) and are deterministic: the same MIDI gives the
same samples. Every song is then peak-normalised to -1 dBFS so that levels are comparable.
Each record in metadata.jsonl names the renderer that made it.
Taught in notebooks/00_data.ipynb.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf

from samod.profiles import SAMPLE_RATE

RENDERER_ENV = "SAMOD_RENDERER"  # fluidsynth | tinysoundfont; unset: the default
DEFAULT_RENDERER = "tinysoundfont"  # the same corpus on every machine, whatever is installed
FLUIDR3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
TIMGM6MB = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
PEAK = 10 ** (-1 / 20)  # -1 dBFS


def normalise(audio: np.ndarray, seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Cut or zero-pad (2, samples) to exactly `seconds` and scale its peak to -1 dBFS."""
    n = int(round(seconds * sample_rate))
    out = np.zeros((2, n), dtype=np.float32)
    out[:, : min(n, audio.shape[1])] = audio[:, :n]
    peak = float(np.abs(out).max())
    return out * (PEAK / peak) if peak > 0 else out


class FluidSynthRenderer:
    name = "fluidsynth"

    def __init__(self, soundfont: str | Path = FLUIDR3, program: str = "fluidsynth"):
        self.soundfont, self.program = Path(soundfont), program

    @classmethod
    def available(cls) -> bool:
        return shutil.which("fluidsynth") is not None and FLUIDR3.exists()

    def describe(self) -> str:
        return f"FluidSynth with {self.soundfont.name}, chorus off"

    def render(self, midi: pretty_midi.PrettyMIDI, seconds: float) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            mid, wav = os.path.join(tmp, "song.mid"), os.path.join(tmp, "song.wav")
            midi.write(mid)
            cmd = [self.program, "-n", "-i", "-q", "-C", "0", "-R", "1", "-g", "0.5",
                   "-r", str(SAMPLE_RATE), "-O", "float", "-T", "wav", "-F", wav, str(self.soundfont), mid]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0 or not os.path.exists(wav):
                raise RuntimeError(f"fluidsynth failed ({run.returncode}): {run.stderr.strip()[-300:]}")
            audio, sr = sf.read(wav, dtype="float32", always_2d=True)  # (samples, 2)
        assert sr == SAMPLE_RATE, f"fluidsynth wrote {sr} Hz, expected {SAMPLE_RATE}"
        return normalise(audio.T, seconds)


class TinySoundFontRenderer:
    name = "tinysoundfont"

    def __init__(self, soundfont: str | Path = TIMGM6MB):
        self.soundfont = Path(soundfont)

    @classmethod
    def available(cls) -> bool:
        try:
            import tinysoundfont  # noqa: F401  tinysoundfont: optional renderer, checked for here
        except ImportError:
            return False
        return TIMGM6MB.exists()

    def describe(self) -> str:
        return f"TinySoundFont with {self.soundfont.name}"

    def render(self, midi: pretty_midi.PrettyMIDI, seconds: float) -> np.ndarray:
        import tinysoundfont  # tinysoundfont: optional renderer (installed without its dependencies)

        synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE, gain=-6.0)
        sfid = synth.sfload(str(self.soundfont))
        events = []  # (sample, order, callable): note-offs before note-ons at the same sample
        for channel, inst in _channels(midi):
            synth.program_select(channel, sfid, 128 if inst.is_drum else 0, 0 if inst.is_drum else inst.program,
                                 is_drums=inst.is_drum)
            for cc in inst.control_changes:
                events.append((int(cc.time * SAMPLE_RATE), 0, synth.control_change, (channel, cc.number, cc.value)))
            for note in inst.notes:
                events.append((int(note.start * SAMPLE_RATE), 2, synth.noteon, (channel, note.pitch, note.velocity)))
                events.append((int(note.end * SAMPLE_RATE), 1, synth.noteoff, (channel, note.pitch)))
        events.sort(key=lambda e: (e[0], e[1]))
        n = int(round(seconds * SAMPLE_RATE))
        out, t = np.zeros((n, 2), dtype=np.float32), 0
        for sample, _, fn, args in events + [(n, 3, None, ())]:
            sample = min(sample, n)
            if sample > t:  # synthesise up to the next event
                out[t:sample] = np.frombuffer(synth.generate(sample - t), dtype=np.float32).reshape(-1, 2)
                t = sample
            if fn is not None:
                fn(*args)
        return normalise(out.T, seconds)  # (2, samples)


def _channels(midi: pretty_midi.PrettyMIDI):
    """MIDI channel of each instrument as FluidSynth sees a pretty_midi file: drums on 9, others in order."""
    channel = 0
    for inst in midi.instruments:
        if inst.is_drum:
            yield 9, inst
        else:
            yield channel, inst
            channel += 1 + (channel == 8)


RENDERERS = {"tinysoundfont": TinySoundFontRenderer, "fluidsynth": FluidSynthRenderer}
INSTALL = {"tinysoundfont": "pip install --no-deps tinysoundfont (the Makefile does)",
           "fluidsynth": "apt-get install --no-install-recommends fluidsynth fluid-soundfont-gm (as root)"}


def get_renderer(name: str = "auto"):
    """A renderer by name: tinysoundfont | fluidsynth | auto.

    "auto" is $SAMOD_RENDERER when set, else TinySoundFont, even where FluidSynth is installed: the
    default corpus must not depend on what a machine happens to have. FluidSynth renders only when
    asked for by name, and a clear error says how to install whichever renderer is missing.
    """
    if name == "auto":
        name = os.environ.get(RENDERER_ENV) or DEFAULT_RENDERER
    name = name.strip().lower()
    if name not in RENDERERS:
        raise ValueError(f"unknown renderer {name!r} (from --renderer or ${RENDERER_ENV}): "
                         f"choose {' or '.join(RENDERERS)}")
    if not RENDERERS[name].available():
        instead = "" if name == DEFAULT_RENDERER else f"; or leave it out to render with {DEFAULT_RENDERER}"
        raise RuntimeError(f"renderer {name!r} is not installed here: {INSTALL[name]}{instead}")
    return RENDERERS[name]()
