"""Seeing and hearing audio in notebooks, and the figures of every component.

Readers look before they listen: `show_audio` puts a spectrogram beside every player (both embedded
as HTML, so they survive in any notebook viewer). Figure functions return the figure and the numbers
behind it; `save_figure` writes both to the profile's figures folder (PNG plus JSON, the JSON naming the
profile): `get_profile().figures_dir`, i.e. artifacts/<profile>/figures/ unless $SAMOD_FIGURES says otherwise.
Every figure of the package is drawn here; the component modules compute the numbers and draw nothing.

- The corpus: `figure1_song_lengths` (paper 1 Figure 1, the cumulative histogram of song lengths with
  the 90 s / 190 s / 285 s windows marked, vertical axis warped by a power law as in the paper),
  `plot_spectrogram` (a log-frequency spectrogram with the section plan drawn on it), `plot_piano_roll`
  (the score of a composed song, one colour per track), `plot_tempo_recovery` (data_prep.tempo).
- Training: `plot_history` (training curves), `plot_training_curve` and `plot_curve_panels` (a reference
  run's measurements against its steps), `plot_peak_memory` (chunked decoding).
- CLAP: `plot_similarity` (text-audio similarity), `plot_projection` (embeddings, PCA).
- The DiT: `plot_table1` (paper 1 Table 1 counted from the code), `plot_dit_architecture` (paper 1 Figure 2,
  drawn from the module calls and shapes of a traced forward pass, samod.dit.trace_shapes).
- Evaluation (samod.evaluation, Tables 2-3): `plot_rows`.
- Structure (samod.structure, paper 1 Figure 4): `plot_ssm`, `plot_lag_profile`, `figure4_ssms`,
  `plot_validation`.
- Memorization (samod.memorization): `plot_nearest_similarity`.

Taught in notebooks/00_data.ipynb; each component's figures in its own notebook.
"""
from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import soundfile as sf
from matplotlib.scale import FuncScale

from samod.profiles import SAMPLE_RATE, get_profile
from samod.structure import StructureConfig, expected_lags, structure_summary

SECTION_COLOURS = {"intro": "#8da0cb", "verse": "#66c2a5", "chorus": "#fc8d62", "bridge": "#e78ac3",
                   "outro": "#a6d854"}
WINDOWS = (90.0, 190.0, 285.0)  # seconds: previous models' 90 s, SA2 pre-training 190 s, SA2 285 s


def spectrogram_db(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, n_fft: int = 2048,
                   hop: int = 512) -> np.ndarray:
    """(channels, samples) or (samples,) -> (n_fft // 2 + 1, frames) dB magnitude of the mono mix."""
    import librosa  # librosa: heavy to import (numba), needed only for spectrograms

    mono = np.asarray(audio, dtype=np.float32)
    mono = mono.mean(axis=0) if mono.ndim == 2 else mono  # (samples,)
    magnitude = np.abs(librosa.stft(mono, n_fft=n_fft, hop_length=hop))  # (freqs, frames)
    return librosa.amplitude_to_db(magnitude, ref=np.max, top_db=80.0)


def plot_spectrogram(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, sections: list[dict] | None = None,
                     title: str = "", ax=None, hop: int | None = None, max_frames: int = 1000):
    """Log-frequency spectrogram; `sections` ({label, start, end} in seconds) drawn as a labelled band.

    hop: samples between frames; by default 512, or the multiple of 512 that draws at most `max_frames`
    frames (about the figure's width in pixels: more cells look the same and take seconds to draw)."""
    import librosa.display  # librosa: heavy to import (numba), needed only for spectrograms

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3))
    hop = hop or 512 * max(1, math.ceil(np.shape(audio)[-1] / 512 / max_frames))
    db = spectrogram_db(audio, sample_rate, hop=hop)
    librosa.display.specshow(db, sr=sample_rate, hop_length=hop, x_axis="time", y_axis="log", ax=ax,
                             cmap="magma")
    for s in sections or []:
        ax.axvline(s["start"], color="white", lw=1.2, ls="--")
        ax.axvspan(s["start"], s["end"], ymin=0.93, ymax=1.0, color=SECTION_COLOURS.get(s["label"], "grey"))
        ax.text((s["start"] + s["end"]) / 2, 0.965, s["label"] + ("*" if s.get("variation") else ""),
                transform=ax.get_xaxis_transform(), ha="center", va="center", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylim(30, sample_rate / 2)
    return ax


def plot_piano_roll(midi, sections: list[dict] | None = None, title: str = "", ax=None):
    """The notes of a pretty_midi score, one colour per track (drums as dots at the bottom)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3))
    for k, inst in enumerate(midi.instruments):
        colour = plt.cm.tab10(k % 10)
        for n in inst.notes:
            y = 20 + (n.pitch - 35) * 0.5 if inst.is_drum else n.pitch
            ax.plot([n.start, n.end], [y, y], color=colour, lw=2.5 if not inst.is_drum else 1.5, solid_capstyle="butt")
        ax.plot([], [], color=colour, lw=3, label=inst.name)
    for s in sections or []:
        ax.axvline(s["start"], color="k", lw=0.8, ls="--")
        ax.text(s["start"], 1.01, s["label"], transform=ax.get_xaxis_transform(), fontsize=8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch (drums below 30)")
    ax.legend(loc="upper right", fontsize=7, ncol=5)
    ax.set_title(title, fontsize=10, pad=14)
    return ax


def _flac_base64(audio: np.ndarray, sample_rate: int) -> str:
    """FLAC (lossless, about half the size of WAV) as base64, for an embedded <audio> player."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(audio, dtype=np.float32), -1, 1).T, sample_rate, format="FLAC",
             subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode()


def audio_html(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, sections: list[dict] | None = None,
               title: str = "", seconds: float | None = 10.0) -> str:
    """HTML with a spectrogram beside a player of the first `seconds` (None: all) of (2, samples) audio."""
    audio = np.asarray(audio)
    audio = audio[None] if audio.ndim == 1 else audio
    clip = audio if seconds is None else audio[:, : int(seconds * sample_rate)]
    fig, ax = plt.subplots(figsize=(6, 2.2))
    plot_spectrogram(audio, sample_rate, sections, title, ax=ax)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=80)
    plt.close(fig)
    shown = f"first {clip.shape[1] / sample_rate:.0f} s" if clip.shape[1] < audio.shape[1] else "whole song"
    return (f'<div style="display:flex;align-items:center;gap:12px">'
            f'<img src="data:image/png;base64,{base64.b64encode(png.getvalue()).decode()}"/>'
            f'<div><audio controls src="data:audio/flac;base64,{_flac_base64(clip, sample_rate)}"></audio>'
            f'<div style="font-size:11px">{shown}</div></div></div>')


def show_audio(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, sections: list[dict] | None = None,
               title: str = "", seconds: float | None = 10.0) -> None:
    """Display a spectrogram beside a small player (notebooks)."""
    from IPython.display import HTML, display  # IPython: optional, present only in notebooks

    display(HTML(audio_html(audio, sample_rate, sections, title, seconds)))



def table_markdown(rows: list[dict], digits: int = 3) -> str:
    """Rows (dicts; columns: the union of their keys, in order) as a Markdown table. Floats get `digits`
    decimals, integers thousands separators; a `|` inside a cell (as in prompts) is escaped."""
    columns = list(dict.fromkeys(k for row in rows for k in row))

    def cell(value) -> str:
        if isinstance(value, float):
            text = f"{value:.{digits}f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            text = f"{value:,}"
        else:
            text = str(value)
        return text.replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def show_table(rows: list[dict], digits: int = 3, title: str = "", note: str = "") -> None:
    """Display rows as a Markdown table in a notebook (`table_markdown`), with a bold title and a note below."""
    from IPython.display import Markdown, display  # IPython: optional, present only in notebooks
    parts = ([f"**{title}**"] if title else []) + [table_markdown(rows, digits)] + ([note] if note else [])
    display(Markdown("\n\n".join(parts)))

def figure1_song_lengths(curves: dict[str, list[float] | np.ndarray], windows: tuple[float, ...] = WINDOWS,
                         power: float = 3.0):
    """Paper 1 Figure 1: proportion of songs shorter than each length, windows marked.

    `curves` maps a label to song lengths in seconds (one curve each). The vertical axis is warped by
    y -> y**power (the paper warps it "with a power law for greater readability"). Returns (figure,
    numbers), the numbers giving for each curve the proportion of songs that fit within each window.
    """
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.set_yscale(FuncScale(ax, (lambda y: np.clip(y, 0, None) ** power, lambda y: np.clip(y, 0, None) ** (1 / power))))
    numbers, longest = {}, max(windows)
    for label, seconds in curves.items():
        lengths = np.sort(np.asarray(seconds, dtype=float))  # (songs,)
        if lengths.size == 0:
            raise ValueError(f"no song lengths for {label!r}: the metadata table has no usable 'seconds' values")
        proportion = np.arange(1, lengths.size + 1) / lengths.size  # P(length <= lengths[i])
        within = {f"{w:g}": float(np.mean(lengths <= w)) for w in windows}
        fits = ", ".join(f"{p:.0%} within {w} s" for w, p in within.items())
        ax.step(np.concatenate([[0], lengths]), np.concatenate([[0], proportion]), where="post",
                label=f"{label} ({lengths.size} songs): {fits}")
        numbers[label] = {"n_songs": int(lengths.size), "within_window": within,
                          "median_seconds": float(np.median(lengths)), "min_seconds": float(lengths[0]),
                          "max_seconds": float(lengths[-1])}
        longest = max(longest, lengths[-1])
    for w in windows:
        ax.axvline(w, ls=":", color="grey")
        ax.text(w, 0.5, f" {w:g} s", rotation=90, va="bottom", fontsize=8, color="grey")
    ax.set_xlim(0, longest * 1.05)
    ax.set_ylim(0, 1)
    ax.set_yticks([0.2, 0.4, 0.6, 0.8, 0.9, 1.0])
    ax.set_xlabel("song length (s)")
    ax.set_ylabel("proportion of songs shorter (power-law axis)")
    ax.set_title("Figure 1: cumulative histogram of song lengths")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7)
    return fig, {"curves": numbers, "windows_seconds": list(windows)}


def plot_tempo_recovery(result: dict):
    """Bar chart of the share of songs whose tempo librosa's tempo estimator recovers, per genre (data_prep.tempo)."""
    genres = list(result["per_genre"])
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(genres, [result["per_genre"][g] for g in genres], color="#66c2a5")
    ax.axhline(result["rate"], color="k", ls="--", lw=1, label=f"all songs: {result['rate']:.0%}")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("tempo recovered")
    ax.set_title(f"Beat tracking recovers the metadata BPM (within {result['tolerance']:.0%}, or half/double)")
    ax.tick_params(axis="x", rotation=45)
    ax.legend()
    fig.tight_layout()
    return fig



def short_count(n: float) -> str:
    """A parameter count as the paper prints it: 1.057B, 156.1M, 82k."""
    return f"{n / 1e9:.3f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def plot_table1(published: dict[str, float], counted: dict[str, int], parts: dict[str, dict[str, int]]):
    """Paper 1 Table 1 beside the counts of the paper preset (log scale), and the share of each part of the DiT
    per preset (samod.dit.parameter_table). published/counted: {"DiT", "AE", "CLAP", "Total"}; parts: preset ->
    part -> parameters."""
    fig, ax = plt.subplots(1, 2, figsize=(14, 4), gridspec_kw={"width_ratios": [1, 1.5]})
    keys = list(published)
    ax[0].bar([i - 0.2 for i in range(len(keys))], [published[k] for k in keys], 0.4, label="paper 1 Table 1")
    ax[0].bar([i + 0.2 for i in range(len(keys))], [counted[k] for k in keys], 0.4, label="counted (paper preset)")
    for i, k in enumerate(keys):
        ax[0].text(i + 0.2, counted[k] * 1.08, short_count(counted[k]), ha="center", fontsize=8)
    ax[0].set_xticks(range(len(keys)), keys)
    ax[0].set_yscale("log")
    ax[0].set_ylim(3e7, 4e9)
    ax[0].set_ylabel("parameters (log scale)")
    ax[0].legend(fontsize=8, loc="upper center")
    ax[0].set_title("Table 1: learnable parameters", fontsize=10)
    names = list(next(iter(parts.values())))
    for j, (preset, counts) in enumerate(parts.items()):
        total = sum(counts.values())
        ax[1].barh([i + 0.27 * (j - 1) for i in range(len(names))], [100 * counts[p] / total for p in names], 0.27,
                   label=f"{preset} ({short_count(total)})")
    ax[1].set_yticks(range(len(names)), names, fontsize=8)
    ax[1].invert_yaxis()
    ax[1].set_xlabel("share of the DiT's parameters (%)")
    ax[1].legend(fontsize=8)
    ax[1].set_title("where the DiT's parameters are", fontsize=10)
    plt.tight_layout()
    return fig

# paper 1 Figure 2 as boxes: (name in DiffusionModel.named_modules(), column, row, what it is)
FIGURE2_BOXES = [
    ("timing.seconds_start", 0, 0, "seconds_start"), ("timing.seconds_total", 0, 1, "seconds_total"),
    ("dit.cond_embed", 0, 3, "context MLP ([text; start; total])"), ("dit.global_embed", 0, 5, "global MLP ([start; total])"),
    ("dit.time_embed", 0, 6, "timestep MLP (Fourier features of t)"),
    ("dit.pre_conv", 1, 0, "x + conv1x1(x)"), ("dit.proj_in", 1, 1, "linear D -> W, then [g; h]"),
    ("dit.blocks.0.attn_norm", 1, 2.4, "LayerNorm"), ("dit.blocks.0.self_attn", 1, 3.2, "self-attention (rotary)"),
    ("dit.blocks.0.cross_norm", 1, 4.0, "LayerNorm"), ("dit.blocks.0.cross_attn", 1, 4.8, "cross-attention"),
    ("dit.blocks.0.mlp_norm", 1, 5.6, "LayerNorm"), ("dit.blocks.0.mlp", 1, 6.4, "gated MLP (SwiGLU)"),
    ("dit.proj_out", 1, 7.8, "drop g, linear W -> D"), ("dit.post_conv", 1, 8.8, "+ conv1x1: predicted v"),
]


def plot_dit_architecture(records: list[dict]):
    """Paper 1 Figure 2 drawn from a traced forward pass (samod.dit.trace_shapes of a DiffusionModel running
    `condition` and `forward`): one box per module, labelled with its name, class and the shape it returned.

    Returns (fig, boxes), boxes = [{"name", "type", "output", "label"}] in drawing order: every label is built
    from a record, so a module renamed or reshaped in the code changes the figure (or fails here).
    """
    found = {}
    for r in records:
        found.setdefault(r["name"], r)  # the first call of each module
    missing = [name for name, *_ in FIGURE2_BOXES if name not in found]
    if missing:
        raise ValueError(f"the trace has no call of {missing}: trace a DiffusionModel running condition() and "
                         f"forward() (samod.dit.trace_shapes)")
    depth = len({r["name"].split(".")[2] for r in records if r["name"].startswith("dit.blocks.")})
    fig, ax = plt.subplots(figsize=(13, 8.5))
    ax.set_xlim(-0.6, 2.5); ax.set_ylim(9.6, -0.8); ax.axis("off")
    xs, boxes, centre = (0.2, 1.6), [], {}
    for name, column, row, what in FIGURE2_BOXES:
        r = found[name]
        label = f"{what}\n{name} ({r['type']}) -> {tuple(r['output'])}"
        colour = "#fde0c5" if column == 0 else ("#c6dbef" if ".blocks.0." in name else "#e5f5e0")
        ax.text(xs[column], row, label, ha="center", va="center", fontsize=8.5, family="monospace",
                bbox=dict(boxstyle="round,pad=0.35", fc=colour, ec="0.3"))
        boxes.append({"name": name, "type": r["type"], "output": tuple(r["output"]), "label": label})
        centre[name] = (xs[column], row)
    arrow = dict(arrowstyle="->", color="0.3", lw=1.0)
    main = [n for n, column, *_ in FIGURE2_BOXES if column == 1]
    for a, b in zip(main, main[1:]):
        ax.annotate("", xy=(centre[b][0], centre[b][1] - 0.3), xytext=(centre[a][0], centre[a][1] + 0.3), arrowprops=arrow)
    side = dict(arrowstyle="->", color="0.3", lw=1.0, ls="--")
    ax.annotate("", xy=(0.93, centre["dit.blocks.0.cross_attn"][1]), xytext=(0.74, centre["dit.cond_embed"][1]),
                arrowprops=side)  # the context tokens reach every block's cross-attention
    for source in ("dit.global_embed", "dit.time_embed"):  # their sum is the global token g, prepended to h
        ax.annotate("", xy=(1.3, 1.5), xytext=(0.74, centre[source][1]), arrowprops=side)
    ax.text(1.25, 1.55, "g = global + timestep", fontsize=8, ha="right")
    for source in ("timing.seconds_start", "timing.seconds_total"):  # timing tokens join the text tokens
        ax.annotate("", xy=(-0.2, centre["dit.cond_embed"][1] - 0.25), xytext=(-0.2, centre[source][1] + 0.25),
                    arrowprops=side)
    ax.add_patch(plt.Rectangle((0.95, 2.0), 1.3, 4.8, fill=False, ls=":", ec="0.4"))
    ax.text(2.27, 2.0, f"x {depth} blocks\n(block 0 shown;\nresidual around\neach layer)", fontsize=8, va="top")
    ax.text(xs[0], 2.3, "+ CLAP text tokens (B, S, E)", ha="center", fontsize=8.5, style="italic")
    ax.set_title("Paper 1 Figure 2, drawn from a forward pass of this DiT (shapes as returned)", fontsize=10)
    return fig, boxes


def save_figure(fig, numbers: dict, name: str, folder: str | Path | None = None) -> Path:
    """Write <folder>/<name>.png and <folder>/<name>.json (the numbers, plus the profile that made them).

    `folder` defaults to the active profile's figures folder (`get_profile().figures_dir`).
    """
    folder = Path(folder) if folder is not None else get_profile().figures_dir
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
    payload = {"profile": get_profile().name, **numbers}
    (folder / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
    return folder / f"{name}.png"


def plot_history(history: list[dict], keys: list[str], title: str = "", ax=None, smooth: int = 1):
    """Training curves: each of `keys` over the steps where it was logged (moving average of `smooth`)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    for key in keys:
        points = [(h["step"], h[key]) for h in history if key in h and np.isfinite(h[key])]
        if not points:
            continue
        steps, values = map(np.asarray, zip(*points))
        if smooth > 1 and len(values) >= smooth:
            values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
            steps = steps[smooth - 1:]
        ax.plot(steps, values, label=key)
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return ax


def plot_peak_memory(measured: dict):
    """Peak memory of full vs chunked decoding against the audio length (autoencoder_evaluation.decode_peak_memory)."""
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(measured["seconds"], measured["full"], "o-", label="full decode")
    ax.plot(measured["seconds"], measured["chunked"], "s-", label="chunked decode (128 latents, overlap 32)")
    ax.set_xlabel("audio length (s)")
    ax.set_ylabel("extra peak memory (MB)")
    ax.set_title("Decoding memory grows with length only without chunks", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_compute_plan(cost: dict):
    """A100-hours per stage: samod's paper recipe at the plan's MFU beside the papers' (samod.plan.plan(...))."""
    stages = list(cost["stages"])
    samod_hours = [cost["stages"][s]["gpu_hours"]["A100"] for s in stages]
    bars = {"samod (counted FLOPs)": samod_hours}
    for paper, label in (("stable_audio_2", "Stable Audio 2 (paper 1)"), ("stable_audio_open", "Stable Audio Open")):
        bars[label] = [cost["stages"][s]["paper_a100_hours"].get(paper) or np.nan for s in stages]
    fig, ax = plt.subplots(figsize=(8, 3))
    width = 0.8 / len(bars)
    for i, (label, hours) in enumerate(bars.items()):
        ax.bar(np.arange(len(stages)) + (i - (len(bars) - 1) / 2) * width, hours, width, label=label)
    ax.set_xticks(range(len(stages)), [s.replace("_", "\n") for s in stages])
    ax.set_yscale("log")
    ax.set_ylabel("A100-hours")
    ax.set_title(f"Training cost of the {cost['profile']} profile", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_similarity(similarity, title: str = "text-audio similarity (held-out songs)"):
    """Heat map of a (texts, audio) similarity matrix: a bright diagonal means each text finds its song."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    image = ax.imshow(np.asarray(similarity), cmap="viridis")
    ax.set_xlabel("audio of song j")
    ax.set_ylabel("prompt of song i")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_projection(embeddings, labels: list[int], names: list[str], title: str = "audio embeddings, PCA"):
    """2-D PCA projection of embeddings (N, E), one colour per class; returns (figure, explained variance)."""
    x = np.asarray(embeddings, dtype=np.float64)
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T  # (N, 2)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for k, name in enumerate(names):
        idx = [i for i, label in enumerate(labels) if label == k]
        if idx:
            ax.scatter(xy[idx, 0], xy[idx, 1], color=plt.cm.tab20(k % 20), label=name, s=30)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    return fig, (s[:2] ** 2 / (s ** 2).sum()).tolist()


def plot_training_curve(curve: list[dict], live: dict | None = None, chance: float | None = None):
    """What longer training buys: a run's measurements against its steps (samod.reference's curve).

    Three panels: identification rate (with chance), the silence gap in dB, and the STFT and MEL
    distances with the same-size low-pass baseline dashed. `live`: one more point (e.g. a short run
    trained in the notebook), drawn as a star. The top axis gives the run's wall-clock minutes."""
    steps = [p["step"] for p in curve]
    minutes = [p["wall_minutes"] for p in curve]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
    panels = [("identification", "identification rate (16 held-out songs)", axes[0]),
              ("silence_gap_db", "decoded silence below decoded music (dB)", axes[1])]
    for key, title, ax in panels:
        ax.plot(steps, [p[key] for p in curve], "o-", label="reference run")
        if live is not None:
            ax.plot([live["step"]], [live[key]], "r*", ms=12, label="live run (this notebook)")
        ax.set_title(title, fontsize=10)
    if chance is not None:
        axes[0].axhline(chance, color="gray", ls=":", label=f"chance ({chance:.2f})")
    axes[0].set_ylim(0, 1.05)
    for key, colour in (("stft_distance", "C0"), ("mel_distance", "C1")):
        axes[2].plot(steps, [p[key] for p in curve], "o-", color=colour, label=key.replace("_", " "))
        axes[2].axhline(curve[-1][f"lowpass_{key}"], color=colour, ls="--", lw=1, label=f"low-pass {key.split('_')[0]}")
        if live is not None and key in live:
            axes[2].plot([live["step"]], [live[key]], "*", color=colour, ms=12)
    axes[2].set_title("Table 5 distances (lower is better)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("training step")
        ax.legend(fontsize=7)
        top = ax.secondary_xaxis("top", functions=(lambda s: np.interp(s, steps, minutes),
                                                   lambda m: np.interp(m, minutes, steps)))
        top.set_xlabel("wall-clock minutes (training and measuring)", fontsize=8)
    fig.tight_layout()
    return fig


def plot_curve_panels(curve: list[dict], panels: list[tuple[str, list[str], tuple[float, str] | None]],
                      live: dict | None = None):
    """A reference run's measurements against its steps, one panel per (title, keys, (value, label)).

    Each key of a panel is one line, shaded between <key>_low and <key>_high where the curve has them; the
    reference line (e.g. (1/13, "chance")) is dotted grey when given.
    `live`: the same keys for a short run trained in the notebook, drawn as stars at its step."""
    steps = [p["step"] for p in curve]
    minutes = [p["wall_minutes"] for p in curve]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.7 * len(panels), 3.4), squeeze=False)
    for ax, (title, keys, line) in zip(axes[0], panels):
        for k, key in enumerate(keys):
            ax.plot(steps, [p[key] for p in curve], "o-", color=f"C{k}", label=key.replace("_", " "))
            if f"{key}_low" in curve[0]:  # an interval measured with it: shaded
                ax.fill_between(steps, [p[f"{key}_low"] for p in curve], [p[f"{key}_high"] for p in curve],
                                color=f"C{k}", alpha=0.15, label="95 % interval")
            if live is not None and key in live:
                ax.plot([live["step"]], [live[key]], "*", color=f"C{k}", ms=12, label="live run (this notebook)")
        if line is not None:
            ax.axhline(line[0], color="gray", ls=":", label=f"{line[1]} ({line[0]:.2g})")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.legend(fontsize=7)
        if len(steps) > 1:
            top = ax.secondary_xaxis("top", functions=(lambda s: np.interp(s, steps, minutes),
                                                       lambda m: np.interp(m, minutes, steps)))
            top.set_xlabel("wall-clock minutes (training and measuring)", fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------
# Evaluation (samod.evaluation: Tables 2-3)
# ---------------------------------------------------------------------------------------------------

def plot_rows(rows: list[dict], title: str = ""):
    """The three metric columns as horizontal bars, one bar per row: (figure, numbers)."""
    labels = [f"{r['model']} ({r['seconds']:g} s)" for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.45 * len(rows) + 1.4), sharey=True)
    for ax, key in zip(axes, ("FD", "KL", "CLAP score")):
        ax.barh(range(len(rows)), [r[key] for r in rows], color=[f"C{i}" for i in range(len(rows))])
        ax.set_title(key + (" ↑" if key == "CLAP score" else " ↓"))
    axes[0].set_yticks(range(len(rows)), labels)
    axes[0].invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    return fig, {"rows": [{k: r[k] for k in ("model", "seconds", "FD", "KL", "CLAP score")} for r in rows]}


# ---------------------------------------------------------------------------------------------------
# Structure (samod.structure: paper 1 Figure 4)
# ---------------------------------------------------------------------------------------------------

def plot_ssm(ssm: dict, sections: list[dict] | None = None, title: str = "", ax=None):
    """A binary recurrence matrix in seconds (black = recurrent); section starts drawn as thin lines."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    times, hop = ssm["times"], ssm["hop_seconds"]
    extent = (times[0] - hop / 2, times[-1] + hop / 2, times[-1] + hop / 2, times[0] - hop / 2)
    ax.imshow(ssm["R"], cmap="gray_r", interpolation="nearest", extent=extent, vmin=0, vmax=1)
    for s in sections or []:
        if extent[0] < s["start"] < extent[1]:
            ax.axvline(s["start"], color="tab:red", lw=0.5, alpha=0.6)
            ax.axhline(s["start"], color="tab:red", lw=0.5, alpha=0.6)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)
    return ax


def plot_lag_profile(ssm: dict, config: StructureConfig | None = None, expected: list[float] | None = None,
                     title: str = "", ax=None):
    """The lag profile p(l) with its detected peaks (dots) and the expected lags of the section plan (dashed)."""
    config = config or StructureConfig()
    summary = structure_summary(ssm, config)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.5))
    ax.plot(summary["lags_seconds"], summary["profile"], color="k", lw=1)
    ax.axhline(config.peak_factor * summary["density"], color="grey", ls=":", lw=1, label="peak threshold")
    ax.plot(summary["peak_lags_seconds"], summary["peak_heights"], "o", color="tab:orange", label="detected peaks")
    for i, lag in enumerate(expected or []):
        ax.axvline(lag, color="tab:blue", ls="--", lw=1, label="expected (section plan)" if i == 0 else None)
    ax.set_xlabel("lag (s)")
    ax.set_ylabel("p(lag)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return ax, summary


def figure4_ssms(grid: dict[str, dict[str, dict]], config: StructureConfig | None = None):
    """Paper 1 Figure 4: binary SSMs, one row per source (real, generated), one column per genre.

    grid[row][genre] = {"ssm": self_similarity(...), "sections": [...] or None, "title": str}; every row
    names the same genres. Returns (figure, numbers): each cell's repetition strength, density, peaks.
    """
    config = config or StructureConfig()
    rows = list(grid)
    if not rows:
        raise ValueError("grid is empty: pass {row name: {genre: {'ssm': ..., 'sections': ..., 'title': ...}}}")
    genres = list(grid[rows[0]])
    for row in rows:
        if list(grid[row]) != genres:
            raise ValueError(f"row {row!r} has genres {list(grid[row])} but row {rows[0]!r} has {genres}; "
                             f"every row needs the same genres in the same order")
    fig, axes = plt.subplots(len(rows), len(genres), figsize=(3.0 * len(genres), 3.1 * len(rows)), squeeze=False)
    numbers: dict[str, dict] = {}
    for r, row in enumerate(rows):
        numbers[row] = {}
        for c, genre in enumerate(genres):
            cell = grid[row][genre]
            summary = structure_summary(cell["ssm"], config)
            plot_ssm(cell["ssm"], cell.get("sections"), cell.get("title", genre), ax=axes[r, c])
            numbers[row][genre] = {"title": cell.get("title", genre),
                                   "repetition_strength": summary["repetition_strength"],
                                   "density": summary["density"], "peak_lags_seconds": summary["peak_lags_seconds"],
                                   "frames": int(cell["ssm"]["R"].shape[0])}
            if c == 0:
                axes[r, c].set_ylabel(f"{row}\ntime (s)", fontsize=9)
            if r == len(rows) - 1:
                axes[r, c].set_xlabel("time (s)", fontsize=8)
    fig.suptitle("Figure 4: binary self-similarity matrices (columns: genres)", fontsize=10)
    fig.tight_layout()
    return fig, {"rows": rows, "genres": genres, "cells": numbers, "config": asdict(config)}


def plot_validation(result: dict, baseline: dict | None = None, ssm: dict | None = None,
                    sections: list[dict] | None = None, config: StructureConfig | None = None, title: str = ""):
    """Validation figure: hit rate vs chance (bars), lifts per song (histogram), optionally one lag profile.

    result is `validate`'s output for exact repeats; baseline (optional) its output for varied repeats.
    Returns (figure, numbers).
    """
    config = config or StructureConfig()
    panels = 3 if ssm is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.2), gridspec_kw={"width_ratios": [1, 1, 1.8][:panels]})
    bars = {"exact\nrepeats": result["hit_rate"], "chance\n(other songs)": result["chance_hit_rate"]}
    if baseline is not None:
        bars["varied\nrepeats"] = baseline["hit_rate"]
        bars["chance\n(varied)"] = baseline["chance_hit_rate"]
    axes[0].bar(range(len(bars)), list(bars.values()), color=["tab:green", "grey", "tab:olive", "silver"][:len(bars)])
    axes[0].set_xticks(range(len(bars)), list(bars), fontsize=7)
    axes[0].set_ylim(0, 1.05)
    axes[0].set_ylabel("expected lags found")
    axes[0].set_title(f"hit rate ({result['expected_lags']} lags, {result['n_songs']} songs)", fontsize=9)
    lifts = np.array([s["lift"] for s in result["per_song"]], dtype=float)
    lifts = lifts[np.isfinite(lifts)]
    axes[1].hist(np.log10(np.maximum(lifts, 1e-2)), bins=15, color="tab:green")
    axes[1].axvline(0, color="k", ls=":", lw=1)
    axes[1].set_xlabel("log10 lift (repeat diagonals vs all cells)")
    axes[1].set_ylabel("songs")
    axes[1].set_title(f"median lift {result['median_lift']:.1f}x", fontsize=9)
    numbers = {"hit_rate": result["hit_rate"], "chance_hit_rate": result["chance_hit_rate"],
               "n_songs": result["n_songs"], "expected_lags": result["expected_lags"],
               "median_lift": result["median_lift"],
               "median_recurrent_on_expected": result["median_recurrent_on_expected"], "config": asdict(config)}
    if baseline is not None:
        numbers["varied"] = {k: baseline[k] for k in ("hit_rate", "chance_hit_rate", "n_songs", "expected_lags",
                                                      "median_lift", "median_recurrent_on_expected")}
    if ssm is not None:
        expected = expected_lags(sections or [], config.tolerance_seconds)
        _, summary = plot_lag_profile(ssm, config, expected, title or "lag profile of one song", ax=axes[2])
        numbers["example"] = {"expected_lags_seconds": expected, "peak_lags_seconds": summary["peak_lags_seconds"]}
    fig.tight_layout()
    return fig, numbers


# ---------------------------------------------------------------------------------------------------
# Memorization (samod.memorization)
# ---------------------------------------------------------------------------------------------------

def plot_nearest_similarity(groups: dict[str, np.ndarray], threshold: float | None = None,
                            reference: dict[str, np.ndarray] | None = None):
    """Histograms of nearest-training-song cosine per group of generations: (figure, numbers)."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    everything = list(groups.values()) + list((reference or {}).values())
    bins = np.linspace(min(float(np.min(v)) for v in everything), 1.0, 30)
    for name, values in groups.items():
        ax.hist(values, bins=bins, alpha=0.6, label=f"{name} (n={len(values)})")
    for name, values in (reference or {}).items():
        ax.hist(values, bins=bins, histtype="step", lw=2, label=f"{name} (n={len(values)})")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", label=f"replica threshold {threshold:.3f}")
    ax.set_xlabel("cosine similarity to the nearest training song")
    ax.set_ylabel("songs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    numbers = {name: {"n": len(v), "median": float(np.median(v)), "max": float(np.max(v))}
               for name, v in {**groups, **(reference or {})}.items()}
    return fig, {"threshold": threshold, "nearest_similarity": numbers}
