"""The tiny autoencoder's long campaign: train in segments, measure the notes after each, keep the curve.

A CPU run of the tiny recipe (samod.autoencoder_training.AutoencoderRecipe.tiny) keeps rhythm and loudness
and drops the notes; published pitched autoencoders train for tens of thousands of steps or more. The
campaign is how a 2-core machine gets there: a resumable run that continues whenever the machine is idle,
measured as it goes, so that each change of recipe ("lever") can be judged by the curve it bends.

- The run starts from the shipped reference autoencoder (samod/weights/<profile>/autoencoder.safetensors),
  with fresh optimizers and discriminator, and continues from its own checkpoint in
  <profile>/checkpoints/autoencoder_campaign/ ($SAMOD_HOME keeps it outside the work tree).
- `PHASES` lists the levers in the order they were applied, each from the step it started; a phase changes
  one thing of the recipe before it.
- After every segment the EMA weights are measured on 16 held-out songs (10 s from 5 s): chroma
  identification and motion (samod.chroma), the chroma margin (mean chroma similarity of a reconstruction
  to its own input minus that to the other inputs: near 0 for outputs without notes, and it moves before
  identification does), band-envelope identification (samod.metrics.input_dependence), STFT / MEL
  distance and SI-SDR (Table 5's metrics), the decoded silence's gap below the music, and a linear probe
  from latent frames to the input's chroma (does the encoder keep the notes at all?), and whether steady
  tones come out on their own pitch (`tone_following`). Each point records
  the steps and the CPU-hours of training so far; the curve is appended to
  figures/autoencoder_campaign.json (plotted by `plot_campaign`).

    python -m samod.campaign --segments 20 --segment-steps 250     # one thread is enough: OMP_NUM_THREADS=1

After it, `train_decoder` fine-tunes the exported weights' decoder alone (`DECODER`: the encoder frozen, so the
latents stay the same); `python -m samod.reference autoencoder --from-campaign --decoder-steps N` runs it.

Taught in notebooks/01_autoencoder.ipynb ("what longer training buys").
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from samod import chroma as notes
from samod.audio import load_audio
from samod.autoencoder import Autoencoder
from samod.autoencoder_training import (AutoencoderLossConfig, AutoencoderRecipe, AutoencoderStage, ReconstructionLoss,
                                      SemitoneLoss)
from samod.data import SongDataset, read_metadata, split_records
from samod.metrics import input_dependence, lowpass_baseline, reconstruction_metrics, silence_gap_db
from samod.profiles import REPO_ROOT, get_profile
from samod.train import CHECKPOINT_NAME, StepBatches, Trainer, TrainConfig, load_weights, read_checkpoint_metadata
from samod.weights import load_autoencoder, load_reference, provenance, reference_file, run_facts, save_reference

CURVE = REPO_ROOT / "figures" / "autoencoder_campaign.json"
EXPORT = "autoencoder_campaign"  # samod/weights/<profile>/autoencoder_campaign.safetensors: the campaign's last exported weights
EVAL_SONGS, EVAL_SECONDS, EVAL_START = 16, 10.0, 5.0  # the protocol: 16 held-out songs, 10 s from 5 s
PROBE_SONGS = 32  # training songs the latent chroma probe is fitted on


@dataclass(frozen=True)
class Phase:
    start: int  # campaign step from which this phase's recipe trains
    name: str  # the lever, in a few words
    recipe: AutoencoderRecipe
    precision: str = "fp32"  # TrainConfig.precision of its steps ("bf16": autocast on the CPU too)


def _phases() -> list[Phase]:
    shipped = AutoencoderRecipe.tiny()
    # A: the paper's adversary (EnCodec STFT discriminator, feature matching) from the first step, at the
    # learning rate where the shipped run's schedule ended (1e-3 / (1 + 1500 / 500)), decaying slowly
    adversary = replace(shipped, losses=replace(shipped.losses, discriminator_start=0),
                        generator=replace(shipped.generator, lr=2.5e-4, inv_gamma=20_000, power=0.5),
                        discriminator=replace(shipped.discriminator, lr=5e-4, inv_gamma=20_000, power=0.5))
    # B: FFT sizes 8192 and 4096 added to the reconstruction loss. The shipped decoder puts most of its energy on
    # the harmonics of the latent frame rate (44100 / 2048 Hz: a waveform that repeats every frame, see
    # `frame_comb_share`); an STFT of 2048 samples or fewer has one bin per harmonic and cannot see the comb,
    # nor tell notes a semitone apart below about 350 Hz. Larger FFTs see both.
    wide = replace(adversary, losses=replace(adversary.losses, stft_fft_sizes=(8192, 4096) + adversary.losses.stft_fft_sizes))
    # C: reconstruction only, the adversary left for later (RAVE's and SoundStream's order: spectral training
    # first; adversarial losses are published for realism, not pitch), so that every step trains the
    # autoencoder. Under bf16 autocast: a trial from step 4000 learned as much per step as float32 did
    # (the curve's trials) in fewer CPU-seconds.
    spectral = replace(wide, losses=replace(wide.losses, discriminator_start=10 ** 9))
    # D: + SemitoneLoss weighted 10 (samod.autoencoder_training): log power on a semitone axis, every note
    # weighing the same. The trial from step 4750 raised the chroma margin above the control's and lowered
    # the STFT and MEL distances (the curve's trials)
    notes_loss = replace(spectral, losses=replace(spectral.losses, semitone_weight=10.0))
    # E: the semitone loss weighted 30: the trial from step 6750 ended with chroma identification 0.25 and a chroma
    # margin of +0.086 against the control's 0.12 and +0.060 (the rhythm-only stand-in: 0.19 and +0.019)
    notes_louder = replace(notes_loss, losses=replace(notes_loss.losses, semitone_weight=30.0))
    return [Phase(0, "adversary from the start (paper's recipe), lr 2.5e-4", adversary),
            Phase(750, "FFT sizes 8192 and 4096 added to the reconstruction loss", wide),
            Phase(4500, "reconstruction only (no adversary), bf16", spectral, precision="bf16"),
            Phase(5500, "semitone loss, weight 10", notes_loss, precision="bf16"),
            Phase(7500, "semitone loss, weight 30", notes_louder, precision="bf16")]


PHASES = _phases()

# Levers a trial can branch off the campaign with (`trial`): each maps the current phase's recipe to the changed one
LEVERS = {
    "semitone": lambda r: replace(r, losses=replace(r.losses, semitone_weight=1.0)),  # + SemitoneLoss, weight 1
    "semitone_x10": lambda r: replace(r, losses=replace(r.losses, semitone_weight=10.0)),  # the same, weight 10
    "semitone_x30": lambda r: replace(r, losses=replace(r.losses, semitone_weight=30.0)),  # the same, weight 30
    "semitone_x100": lambda r: replace(r, losses=replace(r.losses, semitone_weight=100.0)),  # the same, weight 100
    "long_crops": lambda r: replace(r, crop_samples=4 * r.crop_samples, batch_size=max(1, r.batch_size // 4)),  # same samples a step
    "lr_x4": lambda r: replace(r, generator=replace(r.generator, lr=4 * r.generator.lr)),  # 1e-3: the shipped run's start
    "kl_div10": lambda r: replace(r, losses=replace(r.losses, kl_weight=r.losses.kl_weight / 10)),  # less posterior noise
    "no_adversary": lambda r: replace(r, losses=replace(r.losses, discriminator_start=10 ** 9)),  # every step the generator's
    "same": lambda r: r,  # the phase's own recipe: with another precision, a trial of that alone
}


def phase_at(step: int) -> Phase:
    return [p for p in PHASES if p.start <= step][-1]


def frame_comb_share(audio, frame_samples: int = 2048, sample_rate: int = 44100, width_hz: float = 0.5) -> float:
    """Share of a clip's energy (above 10 Hz) within `width_hz` of a harmonic of the frame rate
    sample_rate / frame_samples: near 1 for a waveform that repeats every latent frame, about
    2 * width_hz / rate (0.046 at 44.1 kHz) for audio unrelated to the frame grid."""
    mono = np.asarray(audio, dtype=np.float64).mean(axis=0)  # (channels, samples) -> (samples,)
    power = np.abs(np.fft.rfft(mono)) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1 / sample_rate)
    rate = sample_rate / frame_samples
    near = np.abs(freqs - rate * np.round(freqs / rate)) <= width_hz
    audible = freqs > 10.0
    total = power[audible].sum()
    return float(power[near & audible].sum() / total) if total > 0 else 0.0


TONE_NOTES = tuple(range(45, 69, 2))  # MIDI notes of the test tones: A2 (110 Hz) to G4 (392 Hz), 12 of them


def harmonic_tone(midi: int, seconds: float = 2.0, sample_rate: int = 44100) -> torch.Tensor:
    """(2, samples) a steady tone of 8 harmonics (amplitudes 0.6^k), peak 0.3."""
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    x = sum(0.6 ** k * torch.sin(2 * torch.pi * f0 * (k + 1) * t) for k in range(8))
    return (0.3 * x / x.abs().max()).float()[None].repeat(2, 1)


def harmonic_share(audio, f0: float, sample_rate: int = 44100, cents: float = 50.0, top_hz: float = 8000.0) -> float:
    """Share of a clip's energy between 20 Hz and `top_hz` that lies within `cents` of a harmonic of f0 (up to
    the 8th): near 1 for a tone on f0, about 0.06 at 220 Hz for sound that ignores f0."""
    mono = np.asarray(audio, dtype=np.float64).mean(axis=0)
    power = np.abs(np.fft.rfft(mono * np.hanning(len(mono)))) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1 / sample_rate)
    audible = (freqs > 20) & (freqs < top_hz)
    near = np.zeros_like(audible)
    for k in range(1, 9):
        near |= np.abs(np.log2(np.maximum(freqs, 1e-9) / (k * f0))) * 1200 <= cents
    total = power[audible].sum()
    return float(power[near & audible].sum() / total) if total > 0 else 0.0


@torch.no_grad()
def tone_following(model: Autoencoder) -> dict:
    """Does the output's pitch follow the input's? Each test tone (TONE_NOTES) is encoded and decoded; the
    output's energy share on the input's harmonics (`harmonic_share`), against its share on the harmonics of
    the tone a tritone away (what the same output scores for a pitch it was not given: the chance level).
    A decoder that plays a fixed set of frequencies whatever the input scores both alike."""
    own, other = [], []
    for midi in TONE_NOTES:
        tone = harmonic_tone(midi)
        output = model.decode(model.encode(tone[None], sample=False), tone.shape[-1])[0].numpy()
        own.append(harmonic_share(output, 440.0 * 2 ** ((midi - 69) / 12)))
        other.append(harmonic_share(output, 440.0 * 2 ** ((midi + 6 - 69) / 12)))
    return {"tone_following": float(np.mean(own)), "tone_following_chance": float(np.mean(other))}


def plot_tone_following(model: Autoencoder, notes_midi: tuple[int, ...] = (45, 52, 57), top_hz: float = 2000.0):
    """One row per steady tone: the input's spectrum and its reconstruction's, 0 to `top_hz`, with the input's
    harmonics marked; a decoder that follows pitch moves its peaks with the input's."""
    import matplotlib.pyplot as plt  # matplotlib: only to plot, never while training
    fig, axes = plt.subplots(len(notes_midi), 1, figsize=(10, 1.9 * len(notes_midi)), sharex=True)
    for ax, midi in zip(np.atleast_1d(axes), notes_midi):
        tone = harmonic_tone(midi)
        with torch.no_grad():
            output = model.decode(model.encode(tone[None], sample=False), tone.shape[-1])[0]
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        for audio, label, colour in ((tone, "input", "tab:blue"), (output, "reconstruction", "tab:red")):
            mono = audio.double().mean(dim=0).numpy()
            power = np.abs(np.fft.rfft(mono * np.hanning(len(mono)))) ** 2
            freqs = np.fft.rfftfreq(len(mono), 1 / 44100)
            keep = freqs <= top_hz
            ax.plot(freqs[keep], 10 * np.log10(power[keep] / power.max() + 1e-12), color=colour, lw=0.8, label=label)
        for k in range(1, int(top_hz // f0) + 1):
            ax.axvline(k * f0, color="grey", ls=":", lw=0.6)
        ax.set(ylim=(-80, 3), ylabel="dB")
        ax.set_title(f"MIDI {midi} ({f0:.0f} Hz): share of the output on its harmonics "
                     f"{harmonic_share(output.numpy(), f0):.2f}", fontsize=9)
    np.atleast_1d(axes)[0].legend(fontsize=8, loc="upper right")
    np.atleast_1d(axes)[-1].set_xlabel("Hz (dotted: the input's harmonics)")
    fig.tight_layout()
    return fig


def training_losses() -> dict:
    """The reconstruction losses the campaign has trained with, by name: (B, A, T) pairs -> a scalar."""
    paper = AutoencoderLossConfig()
    mrstft = ReconstructionLoss(paper)  # built once: the filter taps and windows serve every call
    wide = ReconstructionLoss(replace(paper, stft_fft_sizes=(8192, 4096) + paper.stft_fft_sizes))
    return {"MRSTFT (the paper's)": lambda x, y: mrstft(x, y)[0],
            "MRSTFT + FFT 8192, 4096 (phase B)": lambda x, y: wide(x, y)[0],
            "semitone loss (phase D)": SemitoneLoss()}


@torch.no_grad()
def loss_preferences(references: list[torch.Tensor], outputs: dict[str, list[torch.Tensor]],
                     losses: dict | None = None) -> dict:
    """Each loss's value for each kind of output against its reference: {loss: {output kind: [value per song]}}.

    A loss can only teach the notes if it prefers outputs that keep them (the low-pass) to outputs that keep
    the rhythm without them (`samod.chroma.rhythm_only`); this says which one each loss prefers, song by song."""
    losses = losses or training_losses()
    return {name: {kind: [float(loss(o[None, :, : r.shape[-1]], r[None])) for o, r in zip(outs, references)]
                   for kind, outs in outputs.items()} for name, loss in losses.items()}


def _clip(record: dict, samples_multiple: int) -> torch.Tensor:
    start = min(EVAL_START, max(record["seconds"] - EVAL_SECONDS, 0))
    audio = torch.from_numpy(load_audio(record["audio_path"], start=start, seconds=EVAL_SECONDS))  # (2, T)
    return audio[:, : audio.shape[1] // samples_multiple * samples_multiple]


def _latent_chroma(chromagram: np.ndarray, frames: int) -> np.ndarray:
    """(12, chroma frames) -> (12, latent frames): the mean of the chroma frames each latent frame covers."""
    edges = np.linspace(0, chromagram.shape[1], frames + 1).astype(int)
    return np.stack([chromagram[:, a:max(b, a + 1)].mean(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)


class Evaluation:
    """The campaign's measurements of one autoencoder; the inputs' chromas are computed once."""

    def __init__(self, multiple: int = 2048, probe: bool = True, corpus_harmony: dict | None = None):
        profile = get_profile()
        self.corpus_harmony = corpus_harmony  # with it, also where the outputs' harmony lies in that range
        training, held_out = split_records(read_metadata(profile.corpus_dir / "metadata.jsonl"))
        self.references = [_clip(r, multiple) for r in held_out[:EVAL_SONGS]]
        self.reference_chroma = [notes.chroma(a) for a in self.references]
        self.probe_clips = [_clip(r, multiple) for r in training[:PROBE_SONGS]] if probe else []
        self.probe_chroma = [notes.chroma(a) for a in self.probe_clips]

    @torch.no_grad()
    def reconstruct(self, model: Autoencoder, generator: torch.Generator | None = None):
        """The held-out songs' latents (posterior samples drawn with `generator`, by default one seeded 0) and their
        decodings: (latents, outputs), lists of (D, L) and (2, T) tensors."""
        generator = generator or torch.Generator().manual_seed(0)
        latents = [model.encode(a[None], generator=generator)[0] for a in self.references]  # (D, L) each
        return latents, [model.decode(z[None], a.shape[-1])[0] for z, a in zip(latents, self.references)]

    @torch.no_grad()
    def __call__(self, model: Autoencoder) -> dict:
        generator = torch.Generator().manual_seed(0)
        latents, outputs = self.reconstruct(model, generator)
        silence = model(torch.zeros_like(self.references[0])[None], generator=generator).reconstruction[0]
        n = notes.note_measures(self.references, outputs, reference_chromas=self.reference_chroma)
        table5 = reconstruction_metrics(self.references, outputs, progress=False)
        envelope = input_dependence(self.references, outputs)
        probe = self._probe(model, latents) if self.probe_clips else {}
        harmony = {}
        if self.corpus_harmony is not None:  # chroma clarity and movement of the outputs, read against the corpus
            clips = [notes.harmony(o) for o in outputs]
            placed = notes.inside_range({k: [c[k] for c in clips] for k in notes.HARMONY}, self.corpus_harmony)
            harmony = {f"{k}_{part}": placed[k][part] for k in notes.HARMONY for part in ("median", "inside")}
        return {"chroma_identification": n["chroma_identification"], "chroma_motion": n["chroma_motion"],
                "chroma_margin": n["own_similarity"] - n["other_similarity"],
                "envelope_identification": envelope["identification"],
                "stft_distance": table5["stft_distance"], "mel_distance": table5["mel_distance"],
                "si_sdr": table5["si_sdr"], "silence_gap_db": silence_gap_db(silence, outputs),
                "frame_comb_share": float(np.mean([frame_comb_share(o) for o in outputs])), **probe,
                **tone_following(model), **harmony}

    def stand_ins(self) -> dict:
        """The note measures of the two stand-ins on the same songs: the same-size low-pass (keeps the notes) and
        the rhythm-only noise (keeps the band envelopes, no notes). A reconstruction holds notes only where it
        scores above the rhythm-only stand-in; its band envelopes alone carry a little of the chroma."""
        model = PHASES[0].recipe.model
        numbers_per_second = model.latent_dim * model.latent_rate  # what a latent holds, as Table 5's low-pass
        outputs = {"low-pass": [lowpass_baseline(a, numbers_per_second).float() for a in self.references],
                   "rhythm only": [torch.as_tensor(notes.rhythm_only(a), dtype=torch.float32) for a in self.references]}
        measured = {}
        for name, outs in outputs.items():
            n = notes.note_measures(self.references, outs, reference_chromas=self.reference_chroma)
            measured[name] = {"chroma_identification": n["chroma_identification"],
                              "chroma_margin": n["own_similarity"] - n["other_similarity"]}
        return measured

    def _probe(self, model: Autoencoder, held_out_latents: list[torch.Tensor]) -> dict:
        """A ridge regression from latent frames (posterior means) to the chroma they cover, fitted on
        training songs; its predictions for the held-out songs identified as `note_measures` does."""
        train = [model.encode(a[None], sample=False)[0].numpy() for a in self.probe_clips]  # (D, L) each
        x = np.concatenate(train, axis=1).T  # (frames, D)
        y = np.concatenate([_latent_chroma(c, z.shape[1]) for c, z in zip(self.probe_chroma, train)], axis=1).T
        mean, std = x.mean(0), x.std(0) + 1e-6
        xs = (x - mean) / std
        ridge = 1e-2 * len(xs)  # the penalty grows with the frames, so it is the same per frame
        weights = np.linalg.solve(xs.T @ xs + ridge * np.eye(xs.shape[1]), xs.T @ y)  # (D, 12)
        predicted = [(((z.numpy().T - mean) / std) @ weights).T for z in held_out_latents]  # (12, L) each
        truth = [_latent_chroma(c, p.shape[1]) for c, p in zip(self.reference_chroma, predicted)]
        similarity = np.array([[notes.chroma_similarity(p, t) for t in truth] for p in predicted])
        off = ~np.eye(len(truth), dtype=bool)
        identified = similarity.diagonal() > np.where(off, similarity, -np.inf).max(axis=1)
        return {"probe_identification": float(identified.mean()), "probe_similarity": float(similarity.diagonal().mean())}


def run(segments: int, segment_steps: int, folder: Path | None = None, curve: Path = CURVE) -> list[dict]:
    """Train `segments` segments of `segment_steps` steps each, measuring after each; returns the curve."""
    profile = get_profile()
    folder = Path(folder) if folder else profile.checkpoint_dir / "autoencoder_campaign"
    folder.mkdir(parents=True, exist_ok=True)
    points = json.loads(curve.read_text())["points"] if curve.exists() else []
    if points and points[-1]["step"] > 0 and not (folder / CHECKPOINT_NAME).exists():
        exported = reference_file(EXPORT, profile)
        if exported.exists() and provenance(EXPORT, profile)["steps"] == points[-1]["step"]:
            print(f"no checkpoint in {folder}: continuing from the exported weights {exported.name} "
                  f"(step {points[-1]['step']}) with fresh optimizers", flush=True)
            _seed_from_export(folder, points[-1]["step"])
    if points and points[-1]["step"] > 0 and not (folder / CHECKPOINT_NAME).exists():
        raise FileNotFoundError(
            f"{curve} records {points[-1]['step']} campaign steps, but their checkpoint {folder / CHECKPOINT_NAME} "
            f"is not there (a new machine, or another SAMOD_HOME): the run cannot continue where the curve ends. "
            f"Point SAMOD_HOME (or --folder) at the checkpoint, or start a new curve from the shipped weights with "
            f"--curve NEW.json (adjust PHASES so that its first phase is the recipe to continue with)")
    evaluation = Evaluation()
    inputs_comb = float(np.mean([frame_comb_share(a) for a in evaluation.references]))
    stand_ins = evaluation.stand_ins()
    if not points or "frame_comb_share" not in points[0]:  # the starting point: the shipped weights
        start = {"step": 0, "cpu_hours": 0.0, "phase": "shipped reference weights",
                 **evaluation(load_autoencoder(source="reference"))}
        points = [start] + points[1:]
        _write(curve, points, inputs_comb, stand_ins)
    for _ in range(segments):
        step = points[-1]["step"]
        phase = phase_at(step)
        # the CPU-hours of the checkpoint's steps, kept beside it: a run stopped after training a segment but
        # before measuring it resumes at a later step than the curve's last point, with those hours counted
        # (and the phase that trained them: PHASES may have changed since)
        ledger = folder / "cpu_hours.json"
        kept = json.loads(ledger.read_text()) if ledger.exists() else {"step": step, "cpu_hours": points[-1]["cpu_hours"]}
        cpu_hours = kept["cpu_hours"]
        if kept["step"] >= step + segment_steps:  # the segment was trained before the run stopped
            phase = next((p for p in PHASES if p.name == kept.get("phase")), phase)
        started = time.process_time()
        model, trainer, history = _train(phase.recipe, folder, step + segment_steps, segment_steps, phase.precision)
        cpu_hours += (time.process_time() - started) / 3600
        ledger.write_text(json.dumps({"step": trainer.step, "cpu_hours": cpu_hours, "phase": phase.name}) + "\n")
        losses = {k: v for k, v in history[-1].items() if isinstance(v, float)} if history else {}
        points.append({"step": trainer.step, "cpu_hours": round(cpu_hours, 4), "phase": phase.name,
                       **evaluation(model.eval()), "losses": losses})
        _write(curve, points, inputs_comb, stand_ins)
        print(json.dumps({k: v for k, v in points[-1].items() if k != "losses"}), flush=True)
    return points


def trial(lever: str, steps: int, folder: Path | None = None, curve: Path = CURVE, precision: str = "fp32") -> dict:
    """Branch off the campaign's checkpoint and train `steps` steps with one lever changed (LEVERS[lever]) or at
    another `precision`; the branch's measures go into the curve's "trials", to be read against the campaign's
    own point `steps` later (the control: same start, same data, the phase's recipe unchanged).

    The branch lives in <checkpoint folder>/trials/<lever>_<precision>_from_<step>/; the campaign's checkpoint
    is not touched. Its CPU-hours count towards the campaign's total in `total_cpu_hours`."""
    profile = get_profile()
    folder = Path(folder) if folder else profile.checkpoint_dir / "autoencoder_campaign"
    if lever not in LEVERS:
        raise ValueError(f"unknown lever {lever!r}; choose one of {', '.join(LEVERS)}")
    if not (folder / CHECKPOINT_NAME).exists():
        raise FileNotFoundError(f"no campaign checkpoint in {folder}: run `python -m samod.campaign` first")
    start = _checkpoint_step(folder / CHECKPOINT_NAME)
    branch = folder / "trials" / f"{lever}_{precision}_from_{start}"
    branch.mkdir(parents=True, exist_ok=True)
    if not (branch / CHECKPOINT_NAME).exists():
        shutil.copy(folder / CHECKPOINT_NAME, branch / CHECKPOINT_NAME)
    recipe = LEVERS[lever](phase_at(start).recipe)
    started = time.process_time()
    model, trainer, history = _train(recipe, branch, start + steps, steps, precision)
    cpu_hours = (time.process_time() - started) / 3600
    record = {"lever": lever, "precision": precision, "phase": phase_at(start).name, "from_step": start,
              "step": trainer.step, "cpu_hours": round(cpu_hours, 4), **Evaluation()(model.eval()),
              "losses": {k: v for k, v in history[-1].items() if isinstance(v, float)} if history else {}}
    text = json.loads(curve.read_text()) if curve.exists() else {"points": []}
    text["trials"] = text.get("trials", []) + [record]
    curve.write_text(json.dumps(text, indent=1) + "\n")
    return record


def total_cpu_hours(curve: dict) -> float:
    """CPU-hours of the campaign and of every trial branched off it."""
    return curve["points"][-1]["cpu_hours"] + sum(t["cpu_hours"] for t in curve.get("trials", []))


def _checkpoint_step(path: Path) -> int:
    """The step of a Trainer checkpoint, from the file's metadata."""
    return read_checkpoint_metadata(path)["step"]


def _train(recipe: AutoencoderRecipe, folder: Path, until: int, checkpoint_every: int, precision: str = "fp32",
           start: Autoencoder | None = None):
    """Train (or resume in `folder`) the shipped autoencoder (or `start`) with `recipe` until step `until`;
    returns (the model holding the EMA weights, the trainer, its history)."""
    profile = get_profile()
    training, _ = split_records(read_metadata(profile.corpus_dir / "metadata.jsonl"))
    model = (start or load_autoencoder(source="reference")).train()
    stage = AutoencoderStage(model, recipe.losses, recipe.generator, recipe.discriminator, recipe.gain_db,
                             recipe.train_biases, recipe.train_encoder)
    dataset = SongDataset(training, window_seconds=recipe.crop_samples / recipe.model.sample_rate, seed=profile.seed)
    batches = StepBatches(dataset, recipe.batch_size, seed=profile.seed)
    config = TrainConfig(steps=until, ema_decay=recipe.ema_decay, checkpoint_every=checkpoint_every, log_every=10,
                         seed=profile.seed, progress=False, desc="campaign", precision=precision)
    trainer = Trainer(stage, config, folder)
    history = trainer.fit(lambda s: batches(s)["audio"])
    model.load_state_dict(load_weights(folder / CHECKPOINT_NAME, "autoencoder", ema=True))
    return model, trainer, history


# After the campaign: its exported weights' decoder fine-tuned alone, with the last phase's losses. The promoted
# decoder plays the notes less clearly than the songs hold them (the chroma clarity of its reconstructions lies at
# the bottom of the corpus's range), and every generation is decoded by it; the encoder stays as it is, so the
# latents, and CLAP and the DiT trained on them, stay valid (samod.weights.encoder_sha256).
DECODER = replace(PHASES[-1].recipe, train_encoder=False)


def train_decoder(until: int, folder: Path, checkpoint_every: int) -> Autoencoder:
    """Fine-tune (or resume in `folder`) the decoder of the exported weights (`load_exported`) until step `until`
    with `DECODER` under bf16; returns the model holding the EMA weights, in eval mode."""
    start = load_exported()
    if start is None:
        raise FileNotFoundError(f"no exported campaign weights ({reference_file(EXPORT)}): the decoder is fine-tuned "
                                f"from them (`python -m samod.campaign --export`)")
    model, _, _ = _train(DECODER, folder, until, checkpoint_every, precision=PHASES[-1].precision, start=start)
    return model.eval()


def export(folder: Path | None = None, curve: Path = CURVE) -> Path:
    """Write the campaign checkpoint's EMA weights (float16) with their provenance and measures to
    samod/weights/<profile>/autoencoder_campaign.*: what a fresh machine continues from, and what notebook 01
    plays. The curve's last point must be this checkpoint's step (measure before exporting). The shipped
    reference autoencoder is not replaced: CLAP and the DiT were trained on its latents."""
    profile = get_profile()
    folder = Path(folder) if folder else profile.checkpoint_dir / "autoencoder_campaign"
    step = _checkpoint_step(folder / CHECKPOINT_NAME)
    text = json.loads(curve.read_text())
    point = text["points"][-1]
    if point["step"] != step:
        raise ValueError(f"the checkpoint is at step {step} but the curve's last point at {point['step']}: "
                         f"run a segment (`python -m samod.campaign`) so that the weights are measured first")
    return save_reference(EXPORT, load_weights(folder / CHECKPOINT_NAME, "autoencoder", ema=True),
                          export_provenance(text), profile)


def export_provenance(curve: dict) -> dict:
    """The provenance of weights exported at the curve's last point, in the shipped weights' schema (commit,
    command, seed, steps, audio_hours, wall_minutes, hardware, final, curve) plus the campaign's own numbers.
    Steps count the campaign's, on top of the shipped autoencoder's; the campaign keeps CPU-hours, not wall time."""
    profile = get_profile()
    point = curve["points"][-1]
    step = point["step"]
    recipe = phase_at(step - 1).recipe
    measured = lambda p: {k: v for k, v in p.items() if k != "losses"}
    return {"stage": EXPORT, "profile": profile.name, **run_facts(),
            "command": "python -m samod.campaign --segments N (the phases of samod/campaign.py), then --export",
            "seed": profile.seed, "steps": step,
            "audio_hours": step * recipe.batch_size * recipe.crop_samples / recipe.model.sample_rate / 3600,
            "wall_minutes": None, "cpu_hours": point["cpu_hours"], "cpu_hours_with_trials": total_cpu_hours(curve),
            "phase": point["phase"], "recipe": json.loads(json.dumps(asdict(recipe))), "weights": "EMA, float16",
            "started_from": "the reference recipe's autoencoder (`python -m samod.reference autoencoder`)",
            "final": measured(point), "curve": [measured(p) for p in curve["points"]]}


def load_exported(profile=None) -> Autoencoder | None:
    """The campaign's exported autoencoder (EMA weights, eval mode), or None when none was exported."""
    path = reference_file(EXPORT, profile)
    if not path.exists():
        return None
    model = load_autoencoder(profile, source="reference")
    model.load_state_dict(load_reference(EXPORT, profile))
    return model.eval()


def _seed_from_export(folder: Path, step: int) -> None:
    """A checkpoint at `step` holding the exported weights (and fresh optimizers): how a machine without the
    campaign's checkpoint continues the curve."""
    recipe = phase_at(step).recipe
    stage = AutoencoderStage(load_exported().train(), recipe.losses, recipe.generator, recipe.discriminator, recipe.gain_db,
                             recipe.train_biases, recipe.train_encoder)
    trainer = Trainer(stage, TrainConfig(steps=step, ema_decay=recipe.ema_decay, progress=False), folder)
    trainer.step = step
    folder.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(folder / CHECKPOINT_NAME)


def projection(points: list[dict], target: float = notes.KEEPS_NOTES) -> dict:
    """CPU-hours at which chroma identification would reach `target`, extrapolating a straight line fitted
    to identification against log CPU-hours over the points above chance; {"cpu_hours": None, "why": ...}
    when there is no rising trend to extrapolate."""
    chance = 1 / EVAL_SONGS
    rising = [p for p in points if p["cpu_hours"] > 0 and p["chroma_identification"] > chance + 1e-9]
    if len(rising) < 2:
        return {"cpu_hours": None, "why": f"{len(rising)} point(s) above chance: no trend to extrapolate yet"}
    x = np.log([p["cpu_hours"] for p in rising])
    slope, intercept = np.polyfit(x, [p["chroma_identification"] for p in rising], 1)
    if slope <= 0:
        return {"cpu_hours": None, "why": "chroma identification is not rising with CPU time"}
    hours = float(np.exp((target - intercept) / slope))
    if hours > 100 * points[-1]["cpu_hours"]:
        return {"cpu_hours": None, "why": f"the trend is too weak to extrapolate: the log-linear fit of the points above "
                                          f"chance reaches {target} only after {hours:.1e} CPU-hours"}
    return {"cpu_hours": hours, "why": "log-linear fit of the points above chance"}


def plot_campaign(curve: dict):
    """The campaign's curve against CPU-hours: the identification measures (left), the chroma margin beside the
    rhythm-only stand-in's (middle), the level measures (right); a dotted line where a phase begins."""
    import matplotlib.pyplot as plt  # matplotlib: only to plot, never while training
    points = curve["points"]
    hours = [p["cpu_hours"] for p in points]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 3.9))
    for key, label in (("chroma_identification", "chroma identification (notes)"),
                       ("probe_identification", "latent chroma probe (encoder keeps notes?)"),
                       ("envelope_identification", "band-envelope identification (rhythm)")):
        left.plot(hours, [p[key] for p in points], "o-", ms=3, label=label)
    left.axhline(curve["chance"], color="grey", ls=":", label="chance")
    stand_ins = curve.get("stand_ins", {})
    rhythm, lowpass = stand_ins.get("rhythm only"), stand_ins.get("low-pass")
    if rhythm:  # what band envelopes alone score: above it, a reconstruction holds notes
        left.axhline(rhythm["chroma_identification"], color="tab:brown", ls="-.", lw=0.8,
                     label="rhythm-only stand-in's chroma identification")
    left.axhline(notes.KEEPS_NOTES, color="green", ls="--", lw=0.8, label="target for notes")
    left.set(ylabel="share of 16 held-out songs", ylim=(-0.03, 1.03))
    left.legend(fontsize=7, loc="center left")
    measured = [(h, p["chroma_margin"]) for h, p in zip(hours, points) if "chroma_margin" in p]  # added later
    if measured:
        middle.plot(*zip(*measured), "d-", ms=3, color="tab:purple", label="reconstructions")
    if rhythm:
        middle.axhline(rhythm["chroma_margin"], color="tab:brown", ls="-.", lw=0.8, label="rhythm-only stand-in (no notes)")
    middle.axhline(0, color="grey", ls=":", lw=0.8)
    title = "chroma margin: own input minus the others"
    middle.set(title=title + (f"\n(the same-size low-pass: {lowpass['chroma_margin']:+.2f})" if lowpass else ""),
               ylabel="chroma similarity")
    middle.title.set_fontsize(9)
    if middle.get_legend_handles_labels()[0]:
        middle.legend(fontsize=7, loc="upper left")
    right.plot(hours, [p["chroma_motion"] for p in points], "o-", ms=3, label="chroma motion (1 = as in the input)")
    combed = [(h, p["frame_comb_share"]) for h, p in zip(hours, points) if "frame_comb_share" in p]
    if combed:
        right.plot(*zip(*combed), "^-", ms=3, label="energy on the frame rate's harmonics")
    right.set(ylabel="share", ylim=(-0.03, 1.03))
    twin = right.twinx()
    twin.plot(hours, [p["silence_gap_db"] for p in points], "s--", ms=3, color="tab:red", label="decoded silence below music")
    twin.set_ylabel("dB")
    right.legend(fontsize=7, loc="upper left"), twin.legend(fontsize=7, loc="lower right")
    starts = {p.get("phase"): h for h, p in reversed(list(zip(hours, points)))}  # each phase's first point
    for ax in (left, middle, right):
        ax.set_xlabel("CPU-hours of training (one thread)")
        for phase in curve.get("phases", [])[1:]:
            if phase["name"] in starts:
                ax.axvline(starts[phase["name"]], color="grey", lw=0.5, ls=":")
    fig.suptitle(f"The tiny autoencoder's campaign: {points[-1]['step']} steps, {hours[-1]:.1f} CPU-hours so far "
                 f"(dotted verticals: a new phase)")
    fig.tight_layout()
    return fig


def _write(curve: Path, points: list[dict], inputs_comb: float, stand_ins: dict) -> None:
    text = {"profile": get_profile().name, "protocol": f"{EVAL_SONGS} held-out songs, {EVAL_SECONDS:.0f} s from {EVAL_START:.0f} s, EMA weights; "
                        f"latent chroma probe fitted on {PROBE_SONGS} training songs",
            "chance": 1 / EVAL_SONGS, "inputs_frame_comb_share": inputs_comb, "stand_ins": stand_ins,
            "phases": [{"start": p.start, "name": p.name} for p in PHASES], "points": points,
            "trials": json.loads(curve.read_text()).get("trials", []) if curve.exists() else []}
    curve.write_text(json.dumps(text, indent=1) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=1)
    parser.add_argument("--segment-steps", type=int, default=250)
    parser.add_argument("--until", type=int, default=None,
                        help="instead of --segments: as many segments as take the curve to this step")
    parser.add_argument("--folder", type=Path, default=None, help="checkpoint folder (default: the profile's)")
    parser.add_argument("--curve", type=Path, default=CURVE)
    parser.add_argument("--trial", choices=sorted(LEVERS), default=None,
                        help="instead of continuing: branch off the checkpoint with this lever (see LEVERS)")
    parser.add_argument("--steps", type=int, default=500, help="a trial's steps")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="a trial's precision")
    parser.add_argument("--export", action="store_true",
                        help="instead of training: write the checkpoint's weights to samod/weights/<profile>/")
    args = parser.parse_args()
    if args.export:
        print(export(args.folder, args.curve))
    elif args.trial:
        print(json.dumps(trial(args.trial, args.steps, args.folder, args.curve, args.precision)))
    else:
        segments = args.segments
        if args.until is not None:
            done = json.loads(args.curve.read_text())["points"][-1]["step"] if args.curve.exists() else 0
            segments = max(0, -(-(args.until - done) // args.segment_steps))
        run(segments, args.segment_steps, args.folder, args.curve)
