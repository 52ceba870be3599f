"""Evaluating the trained snake VAE: paper 1 Table 5 against its baselines, and decode memory.

Paper 1 §4.3 scores the autoencoder on its own, since it sets a quality ceiling for the whole system:
`table5` encodes and decodes held-out songs and scores the reconstructions, a same-size low-pass and
silence with the metrics of samod/metrics.py (STFT and MEL distance, SI-SDR, input dependence, the
silence gap). `table5_row` makes one row, `table5_columns` lays the rows out as Table 5's columns (with
our input-dependence and note columns when rows carry them) for samod/tables.py's writer, and
`PUBLISHED_TABLE5` holds the paper's numbers, shown beside a measured table. `decode_peak_memory`
measures the extra peak memory of full and chunked decoding (Autoencoder.decode vs decode_chunked)
against the audio length, one fresh process per measurement.

Sections: 1. Table 5 (published rows, a measured row, its columns), 2. scoring a model, 3. decode
memory. Training the VAE is in samod/autoencoder_training.py. Shapes (glossary): A audio channels (2),
T samples. Taught in notebooks/01_autoencoder.ipynb.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict

import torch

from samod import chroma as notes
from samod.audio import load_audio
from samod.autoencoder import Autoencoder, AutoencoderConfig
from samod.metrics import (METRIC_NAMES, input_dependence, lowpass_baseline, reconstruction_metrics,
                           silence_baseline, silence_gap_db)
from samod.profiles import get_profile
from samod.tables import cell, table_format

# ---------------------------------------------------------------------------------------------------
# 1. Table 5: the published rows, a measured row, its columns
# ---------------------------------------------------------------------------------------------------

# Paper 1 Table 5 as published (Song Describer no-singing, all evaluated at 44.1 kHz). For reference
# only: show it beside a measured table with a label, never write it into one (write_table refuses).
_PUBLISHED = "published (paper 1 Table 5)"
PUBLISHED_TABLE5 = [
    dict(model="DAC", sample_rate=44100, stft_distance=0.96, mel_distance=0.52, si_sdr=10.83,
         latent_rate=86, latent_channels="discrete", source=_PUBLISHED),
    dict(model="AudioGen", sample_rate=48000, stft_distance=1.17, mel_distance=0.64, si_sdr=9.27,
         latent_rate=50, latent_channels="discrete", source=_PUBLISHED),
    dict(model="Encodec", sample_rate=32000, stft_distance=1.82, mel_distance=1.12, si_sdr=5.33,
         latent_rate=50, latent_channels="discrete", source=_PUBLISHED),
    dict(model="AudioGen", sample_rate=48000, stft_distance=1.10, mel_distance=0.64, si_sdr=8.82,
         latent_rate=100, latent_channels=32, source=_PUBLISHED),
    dict(model="Stable Audio", sample_rate=44100, stft_distance=1.19, mel_distance=0.67, si_sdr=8.62,
         latent_rate=43, latent_channels=64, source=_PUBLISHED),
    dict(model="Ours (Stable Audio 2)", sample_rate=44100, stft_distance=1.19, mel_distance=0.71,
         si_sdr=7.14, latent_rate=21.5, latent_channels=64, source=_PUBLISHED),
]

TABLE5_HEADER = ("model", "sampling rate", "STFT distance ↓", "MEL distance ↓", "SI-SDR ↑",
                 "latent rate", "latent channels")
INPUT_DEPENDENCE_HEADER = ("identification ↑", "specificity ratio ↓")  # our columns, not the paper's
INPUT_DEPENDENCE_NAMES = ("identification", "specificity_ratio", "own_similarity")  # kept in a row
NOTES_HEADER = ("chroma identification ↑", "chroma motion", "MIDI agreement ↑")  # samod.chroma: our columns


def table5_row(name: str, metrics: dict, sample_rate: int, latent_rate: float | None,
               latent_channels: int | str | None, input_dependence: dict | None = None) -> dict:
    """One measured row of Table 5 from `reconstruction_metrics`' output.

    latent_rate is in frames per second (Hz); latent_channels is a count, "discrete" for a codec,
    or None (with latent_rate None) for a baseline that has no latent, such as silence.
    input_dependence, `input_dependence`'s output for the same files, adds its identification,
    specificity ratio and own similarity to the row (and two columns to `markdown_table`).
    """
    row = dict(model=name, sample_rate=sample_rate, **{k: metrics[k] for k in METRIC_NAMES},
               latent_rate=latent_rate, latent_channels=latent_channels, n_files=metrics["n_files"],
               source="measured")
    if input_dependence is not None:
        row.update({k: input_dependence[k] for k in INPUT_DEPENDENCE_NAMES})
    return row


def _table5_cells(row: dict, dependence: bool, with_notes: bool = False) -> list[str]:
    cells = [row["model"], f"{row['sample_rate'] / 1000:g}kHz",
             cell(row["stft_distance"], "{:.2f}"), cell(row["mel_distance"], "{:.2f}"),
             cell(row["si_sdr"], "{:.2f}"),
             cell(None if row["latent_rate"] is None else round(row["latent_rate"], 1), "{:g} Hz"),
             cell(row["latent_channels"], "{}")]
    if dependence:
        cells += [cell(row.get("identification"), "{:.2f}"), cell(row.get("specificity_ratio"), "{:.2f}")]
    if with_notes:
        cells += [cell(row.get(k), "{:.2f}") for k in ("chroma_identification", "chroma_motion", "midi_agreement")]
    return cells


@table_format("stft_distance")
def table5_columns(rows: list[dict]) -> tuple[tuple[str, ...], list[list[str]]]:
    """Table 5's header and cells for samod.tables.markdown_table (rows of table5_row, or PUBLISHED_TABLE5).

    The seven columns of Table 5; when any row carries input-dependence numbers (table5_row(...,
    input_dependence=...)), identification and specificity ratio follow, "—" where a row has none; then,
    when any row carries samod.chroma's note measures, chroma identification, chroma motion and MIDI agreement.
    """
    dependence = any("identification" in row for row in rows)
    with_notes = any("chroma_identification" in row for row in rows)
    header = TABLE5_HEADER + (INPUT_DEPENDENCE_HEADER if dependence else ()) + (NOTES_HEADER if with_notes else ())
    return header, [_table5_cells(row, dependence, with_notes) for row in rows]


# ---------------------------------------------------------------------------------------------------
# 2. Scoring a model: Table 5's rows for a VAE and its baselines
# ---------------------------------------------------------------------------------------------------


def table5(model: Autoencoder, records: list[dict], seconds: float = 10.0, start: float = 5.0,
           seed: int = 0, progress: bool = True) -> tuple[list[dict], dict]:
    """Paper 1 Table 5 rows for `model` and three baselines on `seconds` of each song from `start`.

    Rows: the VAE (a posterior sample decoded, as the reference does at inference), the same-size
    low-pass (as many numbers per second as the latent holds), "rhythm only" (the song's band envelopes
    on random-phase noise: samod.chroma.rhythm_only, which holds no notes) and silence. Returns (rows,
    details). Each row also carries `input_dependence` (does each output follow its own song's envelopes
    more than the others'?) and the note measures of samod.chroma (chroma identification and motion, and
    the agreement of its chroma with the MIDI's sounding notes where the records name a MIDI file), in
    details[name]; the VAE's details add "silence_gap_db": how much quieter its output for a silent clip
    of the same length is than its output for the songs. details["midi_agreement_ceiling"] is the
    originals' own agreement with their MIDI (what a perfect reconstruction scores).
    """
    cfg = model.config
    references, starts = [], [min(start, max(r["seconds"] - seconds, 0)) for r in records]
    for r, offset in zip(records, starts):
        audio = torch.from_numpy(load_audio(r["audio_path"], start=offset, seconds=seconds))  # (2, T)
        references.append(audio[:, : audio.shape[1] // cfg.downsampling * cfg.downsampling])
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        reconstructions = [model(a[None], generator=generator).reconstruction[0] for a in references]
        decoded_silence = model(torch.zeros_like(references[0])[None], generator=generator).reconstruction[0]
    numbers_per_second = cfg.latent_dim * cfg.latent_rate
    lowpass = [torch.as_tensor(lowpass_baseline(a, numbers_per_second)) for a in references]
    rhythm = [notes.rhythm_only(a, cfg.sample_rate, seed=i) for i, a in enumerate(references)]
    silence = [torch.as_tensor(silence_baseline(a)) for a in references]
    midi = [r.get("midi_path") for r in records]
    reference_chromas = [notes.chroma(a, cfg.sample_rate) for a in references]  # computed once for every row
    rows, details = [], {}
    for name, outputs, rate, channels in ((f"samod VAE ({get_profile().name})", reconstructions, cfg.latent_rate, cfg.latent_dim),
                                          (f"low-pass, {numbers_per_second:.0f} numbers/s", lowpass, None, None),
                                          ("rhythm only (band envelopes on noise)", rhythm, None, None),
                                          ("silence", silence, None, None)):
        metrics = reconstruction_metrics(references, outputs, cfg.sample_rate, progress=progress)
        dependence = input_dependence(references, outputs, cfg.sample_rate)
        row = table5_row(name, metrics, cfg.sample_rate, rate, channels, input_dependence=dependence)
        note = notes.note_measures(references, outputs, cfg.sample_rate, reference_chromas)
        output_chromas = note.pop("output_chromas")
        row |= {k: note[k] for k in ("chroma_identification", "chroma_motion")}
        if all(midi):
            row["midi_agreement"] = _midi_agreement(outputs, output_chromas, midi, starts, cfg.sample_rate)
        rows.append(row)
        details[name] = {**metrics, "input_dependence": dependence, "notes": note}
    details[rows[0]["model"]]["silence_gap_db"] = silence_gap_db(decoded_silence, reconstructions)
    if all(midi):
        details["midi_agreement_ceiling"] = _midi_agreement(references, reference_chromas, midi, starts, cfg.sample_rate)
    return rows, details


def _midi_agreement(outputs: list, chromas: list, midi_paths: list, starts: list[float], sample_rate: int) -> float:
    """Mean over files of samod.chroma.midi_agreement (each output, whose chroma is given, against its song's MIDI)."""
    return sum(notes.midi_agreement(o, m, s, sample_rate, audio_chroma=c)
               for o, c, m, s in zip(outputs, chromas, midi_paths, starts)) / len(outputs)


# ---------------------------------------------------------------------------------------------------
# 3. Decode memory: full vs chunked decoding
# ---------------------------------------------------------------------------------------------------

def _decode_peak_rss(config: dict, frames: int, chunked: bool) -> None:
    """Child process: print the extra peak resident memory (MB) of decoding `frames` latents."""
    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(**config)).eval()
    latents = torch.randn(1, model.config.latent_dim, frames)

    def status(field: str) -> float:  # MB, from the kernel's account of this process
        line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
        return int(line.split()[1]) / 1024

    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current size, so imports do not count
    with torch.no_grad():
        (model.decode_chunked if chunked else model.decode)(latents)
    print(status("VmHWM") - before)


def decode_peak_memory(config: AutoencoderConfig, seconds: list[float]) -> dict[str, list[float]]:
    """Extra peak memory (MB) of full and chunked decoding of `seconds` of audio, one fresh process each.

    On a CPU the honest measure is the operating system's peak resident size (Linux: VmHWM, reset
    just before decoding) of a process that does nothing else; on a GPU torch.cuda.max_memory_allocated
    does the same job.
    """
    out = {"seconds": list(seconds), "full": [], "chunked": []}
    for s in seconds:
        for mode in ("full", "chunked"):
            call = (f"from samod.autoencoder_evaluation import _decode_peak_rss; "
                    f"_decode_peak_rss({asdict(config)!r}, {int(s * config.latent_rate)}, {mode == 'chunked'})")
            run = subprocess.run([sys.executable, "-c", call], capture_output=True, text=True, timeout=600)
            if run.returncode != 0:
                raise RuntimeError(f"memory measurement failed: {run.stderr.strip()[-500:]}")
            out[mode].append(float(run.stdout.split()[-1]))
    return out
