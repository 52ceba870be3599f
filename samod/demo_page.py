"""The demo page: a static web page of generations, like the paper's demo page, built by `make demo`.

Paper 1 (Stable Audio 2) and Stable Audio Open present their models with a page of players. This module
writes one from a pipeline: out_dir/index.html with the FLAC files and spectrogram PNGs next to it, every
link relative and nothing fetched from the network (no CDN, no remote fonts), so the folder can be opened
from disk, copied, or served by any static server. Its sections:

1. the model: the profile, the weights and their provenance (commit, steps, command where known);
2. text to music (§2): a player and a spectrogram per prompt, with its seconds, seed, sampler, steps, CFG;
3. variable length (§2.3): one prompt at a few lengths (seconds_total), each trimmed;
4. audio to audio (SAO §2): an input song, the output, the prompt and the noise level, when songs are given;
5. autoencoder reconstructions (§4.1, Table 5): original beside reconstruction when songs are given, with
   the STFT / MEL distances and SI-SDR measured here on their first 10 s (as Table 5), and any table passed in;
6. memorization (§4.5): each text-to-music generation beside its closest training songs, with their
   similarity and the replica threshold measured by a `samod.memorization.TrainingSetSearch`, or candidates
   passed in (for example notebook 08's). `training_search` reads the training songs' embeddings from the
   profile's shipped cache (samod/weights/<profile>/training_search.npz) for every file whose SHA-256 matches,
   and embeds the rest.

Only numbers measured by this function or passed in by the caller appear on the page. The pipeline is used
through `generate`, `encode`, `decode` and `window_seconds` only, so a Stable Audio Open pipeline
(samod.pretrained) builds a page too. `python -m samod.demo_page` builds artifacts/<profile>/demo/index.html
with the active profile's models and held-out corpus songs (`make demo` runs it after the notebooks).

Shapes (glossary): A audio channels, T samples. Taught in notebooks/05_sampling.ipynb (the pipeline it calls).
"""
from __future__ import annotations

import argparse
import html
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the page is built without a display
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from samod import chroma
from samod.audio import load_audio, save_audio
from samod.data import read_metadata, split_records
from samod.display import plot_spectrogram
from samod.embedders import CrepeEmbedder
from samod.evaluation import length_quartiles
from samod.generation import load_pipeline
from samod.memorization import FrameStatistics, TrainingSetSearch
from samod.metrics import PAPER_NUMBERS_PER_SECOND, lowpass_baseline, reconstruction_metrics
from samod.profiles import REPO_ROOT, SAMPLE_RATE, Profile, get_profile
from samod.weights import (WEIGHTS_DIR, autoencoder_weights, clap_weights, diffusion_training_records,
                           diffusion_weights, provenance, run_facts)

# The tiny profile's defaults: a handful of short generations with few solver steps, so that the page builds on a CPU
DEFAULT_PROMPTS = ("Genre: Jazz|Instruments: Piano, Double Bass|Moods: relaxed",
                   "Genre: Rock|Instruments: Electric Guitar, Drums|Moods: energetic",
                   "Genre: Bossa Nova|Instruments: Acoustic Guitar (nylon), Flute")
STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
.item{display:flex;gap:16px;align-items:center;margin:1em 0;flex-wrap:wrap}.item img{width:480px;height:auto}
.pair{display:flex;gap:24px;flex-wrap:wrap}.meta{font-size:13px}.meta code{white-space:pre-wrap}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
audio{width:320px}.note{color:#555;font-size:13px}"""


class _Page:
    """The folder being written: each clip becomes <name>.flac and <name>.png next to index.html."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.files: list[Path] = []
        self.players: dict[str, str] = {}  # name -> the HTML of a clip already written

    def clip(self, name: str, audio: np.ndarray, title: str = "") -> str:
        """Write (A, T) audio as FLAC and its spectrogram as PNG; the HTML of a player beside the picture.
        A name already written is not written again (its player is reused)."""
        if name in self.players:
            return self.players[name]
        audio = np.asarray(audio, dtype=np.float32)  # (A, T)
        save_audio(self.out_dir / f"{name}.flac", audio)
        fig, ax = plt.subplots(figsize=(6, 2.2))
        plot_spectrogram(audio, SAMPLE_RATE, title=title[:70], ax=ax, max_frames=500)  # 480 pixels wide
        fig.subplots_adjust(left=0.13, right=0.98, bottom=0.2, top=0.88)  # fixed margins: one draw, not two
        fig.savefig(self.out_dir / f"{name}.png", dpi=80)
        plt.close(fig)
        self.files += [self.out_dir / f"{name}.flac", self.out_dir / f"{name}.png"]
        seconds = audio.shape[-1] / SAMPLE_RATE
        self.players[name] = (f'<div><img src="{name}.png" alt="spectrogram of {html.escape(title)}"><br>'
                              f'<audio controls preload="metadata" src="{name}.flac"></audio>'
                              f'<div class="meta">{seconds:.2f} s</div></div>')
        return self.players[name]


def _meta(**fields) -> str:
    """Settings as escaped 'name: value' lines."""
    return "<div class='meta'>" + "<br>".join(f"<b>{html.escape(k)}</b>: {html.escape(str(v))}"
                                              for k, v in fields.items()) + "</div>"


def _table(rows: list[dict]) -> str:
    """A list of dicts as an HTML table (columns: the union of keys, in order of appearance)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_number(row.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _number(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def weights_rows(profile: Profile | None = None, stage: str = "finetune") -> list[dict]:
    """Which weights `load_pipeline` loads for a profile, with their provenance where the reference ships it."""
    profile = profile or get_profile()
    rows = []
    for name, choice in (("autoencoder", autoencoder_weights(profile)), ("clap", clap_weights(profile)),
                         (f"dit_{stage}", diffusion_weights(profile, stage))):
        path = choice.path.relative_to(REPO_ROOT) if choice.path.is_relative_to(REPO_ROOT) else choice.path
        row = {"stage": name, "file": str(path), "weights": "reference" if choice.reference else "own"}
        if choice.reference:
            info = provenance(name, profile)
            row.update({k: info[k] for k in ("commit", "steps", "command", "hardware") if k in info})
            row["wall minutes"] = round(info["wall_minutes"], 1)
        rows.append(row)
    return rows


def build_demo_page(pipeline, out_dir: str | Path, *, prompts: list[str] = DEFAULT_PROMPTS, seconds: float = 4.0,
                    lengths: list[float] = (2.0, 4.0), length_prompt: str | None = None,
                    songs: list[dict] = (), a2a_prompt: str | None = None, noise_level: float = 2.0,
                    reconstruction_table: list[dict] | None = None, reconstruction_note: str = "",
                    training_search=None, memorization: list[dict] | None = None, memorization_note: str = "",
                    neighbour_seconds: float = 10.0, reconstruction_seconds: float | None = 10.0,
                    steps: int = 8, cfg_scale: float | None = None, seed: int = 0, sampler: str = "dpmpp-3m-sde",
                    title: str = "samod demo", profile: str | None = None, weights: list[dict] | None = None,
                    progress: bool = True) -> Path:
    """Write out_dir/index.html (and its FLAC and PNG files) and return its path.

    prompts        text to music: one generation of `seconds` per prompt
    lengths        variable length: `length_prompt` (default: the first prompt) at each of these seconds_total
    songs          [{"name", "audio": (2, T) at 44.1 kHz}]: inputs of audio to audio (with `a2a_prompt`, default
                   the first prompt, at init_noise_level `noise_level`) and of the autoencoder reconstructions
    reconstruction_seconds  the first seconds of each song that the autoencoder reconstructs (Table 5's clips are
                   10 s; None: the whole song)
    reconstruction_table  rows (dicts) of numbers measured elsewhere, e.g. Table 5 rows, shown as given with
                   `reconstruction_note` saying where they come from
    training_search  a samod.memorization.TrainingSetSearch over the songs the model trained on: each
                   text-to-music generation is shown beside its three closest ones (`neighbour_seconds` of each)
    memorization   or candidates computed elsewhere, [{"prompt", "audio": (2, T) generation, "neighbours":
                   [{"name", "similarity", "audio"?}]}], shown as given with `memorization_note`
    steps, cfg_scale, seed, sampler  the sampling settings of every generation (few steps: a quick page; cfg_scale
                   None: the pipeline's, `pipeline.sampling`)
    profile, weights  named in the header: the profile and rows describing the weights (see `weights_rows`)
    """
    if not prompts:
        raise ValueError("pass at least one prompt for the text-to-music section")
    window = pipeline.window_seconds
    too_long = [s for s in [seconds, *lengths] if not 0 < s <= window + 1e-6]
    if too_long:
        raise ValueError(f"every length must be in (0, {window:.2f}] s, the model's window; got {too_long}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = _Page(out_dir)
    cfg_scale = pipeline.sampling.cfg_scale if cfg_scale is None else cfg_scale
    settings = dict(steps=steps, cfg_scale=cfg_scale, seed=seed, sampler=sampler)
    shown = {"sampler": sampler, "steps": steps, "cfg": cfg_scale, "seed": seed}
    started = time.perf_counter()
    work = len(prompts) + len(lengths) + 2 * len(songs) + (training_search is not None)
    bar = tqdm(total=work, desc="demo page", disable=not progress)
    sections = []

    # 1. the model
    header = [f"<h1>{html.escape(title)}</h1>",
              _meta(profile=profile or "not stated", window=f"{window:.2f} s (longest generation)")]
    if weights:
        header.append(_table(weights))
    sections.append("\n".join(header))

    # 2. text to music
    t0 = time.perf_counter()
    renders = pipeline.generate(list(prompts), seconds=seconds, progress=False, **settings)  # [(2, T)], one batch
    made = (time.perf_counter() - t0) / len(prompts)
    items = []
    for k, (prompt, audio) in enumerate(zip(prompts, renders)):
        made_in = {"made in": f"{made:.1f} s each (one batch of {len(prompts)})"}
        items.append(f"<div class='item'>{page.clip(f'text_to_music_{k}', audio, prompt)}"
                     f"{_meta(prompt=prompt, seconds=seconds, **shown, **made_in)}</div>")
        bar.update()
    sections.append("<h2>Text to music</h2>\n" + "\n".join(items))

    # 3. variable length
    if lengths:
        prompt = length_prompt or prompts[0]
        items = []
        for k, length in enumerate(lengths):
            if prompt in prompts and length == seconds:  # made above with the same settings: its render is reused
                audio = renders[list(prompts).index(prompt)]
            else:
                audio = pipeline.generate(prompt, seconds=length, progress=False, **settings)  # (2, length * 44100)
            items.append(page.clip(f"length_{k}", audio, f"seconds_total = {length:g}"))
            bar.update()
        sections.append(f"<h2>Variable length</h2>\n<p class='note'>One prompt, several seconds_total; the model "
                        f"generates its whole window and the silence after seconds_total is trimmed. A length the "
                        f"text-to-music section already made with this prompt shows that render.</p>"
                        f"{_meta(prompt=prompt, seconds=', '.join(f'{s:g}' for s in lengths), **shown)}"
                        f"<div class='pair'>{''.join(items)}</div>")

    # 4. audio to audio
    if songs:
        prompt = a2a_prompt or prompts[0]
        items = []
        for k, song in enumerate(songs):
            source = np.asarray(song["audio"], dtype=np.float32)  # (2, T)
            length = min(source.shape[-1] / SAMPLE_RATE, window)
            audio = pipeline.generate(prompt, seconds=length, init_audio=source, init_noise_level=noise_level,
                                      progress=False, **settings)  # (2, T)
            items.append(f"<div class='pair'>{page.clip(f'a2a_input_{k}', source, 'input: ' + song['name'])}"
                         f"{page.clip(f'a2a_output_{k}', audio, 'output')}"
                         f"{_meta(input=song['name'], prompt=prompt, **{'noise level': noise_level}, **shown)}</div>")
            bar.update()
        sections.append("<h2>Audio to audio</h2>\n<p class='note'>The input's latents are noised to the noise "
                        "level (sigma) and denoised with the prompt.</p>" + "\n".join(items))

    # 5. autoencoder reconstructions
    if songs:
        items, references, outputs = [], [], []
        for k, song in enumerate(songs):
            source = np.asarray(song["audio"], dtype=np.float32)  # (2, T)
            if reconstruction_seconds is not None:
                source = source[:, :round(reconstruction_seconds * SAMPLE_RATE)]  # (2, <= T)
            decoded = pipeline.decode(pipeline.encode(torch.from_numpy(source)[None]))  # (1, 2, >= T)
            decoded = decoded[0, :, :source.shape[-1]].float().cpu().numpy()  # (2, T)
            references.append(source)
            outputs.append(decoded)
            items.append(f"<div class='pair'>{page.clip(f'original_{k}', source, 'original: ' + song['name'])}"
                         f"{page.clip(f'reconstruction_{k}', decoded, 'reconstruction')}</div>")
            bar.update()
        measured = reconstruction_metrics(references, outputs, progress=False)
        rows = []
        for k, (s, source, decoded) in enumerate(zip(songs, references, outputs)):
            own = chroma.chroma(source)  # the notes: chroma of the original beside each version's (samod.chroma)
            row = {"song": s["name"], **{m: measured["per_file"][m][k] for m in ("stft_distance", "mel_distance", "si_sdr")},
                   "chroma cosine: reconstruction": chroma.chroma_similarity(chroma.chroma(decoded), own),
                   "same-size low-pass": chroma.chroma_similarity(chroma.chroma(lowpass_baseline(source, PAPER_NUMBERS_PER_SECOND)), own),
                   "rhythm only": chroma.chroma_similarity(chroma.chroma(chroma.rhythm_only(source)), own)}
            rows.append(row)
        extra = ""
        if reconstruction_table:
            extra = (f"<p class='note'>{html.escape(reconstruction_note or 'Numbers passed in by the caller.')}</p>"
                     + _table(reconstruction_table))
        sections.append("<h2>Autoencoder reconstructions</h2>\n" + "\n".join(items)
                        + "<p class='note'>Measured on these "
                        + (f"{reconstruction_seconds:g}-s clips" if reconstruction_seconds is not None else "songs")
                        + " (Table 5's metrics, samod.metrics): STFT and MEL distance (lower is closer), "
                          "SI-SDR in dB (higher is closer); and the notes (samod.chroma): the mean frame cosine "
                          "between the chroma (pitch classes) of the original and of the reconstruction, of a "
                          "low-pass with as many numbers per second as the latent, and of noise shaped by the "
                          "song's band envelopes (its rhythm, no notes). 1 is the same notes.</p>"
                        + _table(rows) + extra)

    # 6. memorization
    threshold = None
    if training_search is not None:
        nearest = training_search.nearest(renders, k=3)  # per generation: its 3 closest training songs
        excerpts = {n["index"]: load_audio(n["path"], start=0.0, seconds=neighbour_seconds)
                    for row in nearest for n in row}  # a training song near several generations is read once
        memorization = [{"prompt": prompt, "audio": audio, "clip": f"text_to_music_{k}", "neighbours": [
                            {**n, "audio": excerpts[n["index"]], "clip": f"training_song_{n['index']}"} for n in row]}
                        for k, (prompt, audio, row) in enumerate(zip(prompts, renders, nearest))]
        threshold = training_search.threshold
        memorization_note = (
            f"Each text-to-music generation above beside its three closest training songs (the first "
            f"{neighbour_seconds:g} s of each): cosine similarity of {training_search.embedder.name} embeddings, "
            f"centred on the training mean (samod.memorization, notebook 08)"
            + (f"; {training_search.reused} of the {len(training_search.paths)} training songs' embeddings read from "
               f"{' and '.join(c.name for c in training_search.caches)}, matched by their files' SHA-256. "
               if getattr(training_search, "reused", 0) else ". ")
            + (f"Replicas planted in the training set (-3 dB, 10 ms later) are all above {threshold:.3f} and "
               f"every pair of different training songs below it: a neighbour above it would be a copy."
               if threshold is not None else "This embedding does not separate planted replicas from different "
               "songs, so a high similarity here is not evidence of a copy."))
        bar.update()
    if memorization:
        items = []
        for k, candidate in enumerate(memorization):
            neighbours = []
            for j, n in enumerate(candidate["neighbours"]):
                name = n.get("clip", f"memorization_{k}_neighbour_{j}")  # a training song is written once
                player = page.clip(name, n["audio"], n["name"]) if "audio" in n else ""
                fields = {"song": n["name"], "similarity": f"{n['similarity']:.3f}"}
                if threshold is not None:
                    fields["as close as a replica"] = "yes" if n["similarity"] >= threshold else "no"
                neighbours.append(f"<div>{player}{_meta(**fields)}</div>")
            generation = page.clip(candidate.get("clip", f"memorization_{k}"), candidate["audio"], "generation")
            asked = _meta(prompt=candidate["prompt"])
            items.append(f"<div class='pair'>{generation}{asked}{''.join(neighbours)}</div>")
        sections.append("<h2>Memorization candidates</h2>\n<p class='note'>"
                        + html.escape(memorization_note or "Generations beside their closest training songs "
                                      "(cosine similarity of embeddings), as passed in.")
                        + "</p>" + "\n".join(items))

    bar.close()
    built = time.perf_counter() - started
    footer = f"<p class='note'>Built in {built:.0f} s by samod.demo_page.</p>"
    index = out_dir / "index.html"
    index.write_text("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                     "<link rel='icon' href='data:,'>"
                     f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
                     + "\n".join(sections) + f"\n{footer}\n</body></html>\n", encoding="utf-8")
    return index


def notes_rows(path: Path) -> tuple[list[dict] | None, str]:
    """Table 5's rows with the note measures, from a written table5_autoencoder.json, and a plain sentence
    on whether the autoencoder keeps the notes; (None, "") when the file or its note columns are missing."""
    if not path.exists():
        return None, ""
    rows = json.loads(path.read_text())["rows"]
    if "chroma_identification" not in rows[0]:
        return None, ""
    keys = ("model", "identification", "chroma_identification", "chroma_motion", "midi_agreement")
    table = [{k: r.get(k) for k in keys} for r in rows]
    vae, chance = rows[0], 1 / rows[0]["n_files"]
    verdict = ("It keeps the notes." if vae["chroma_identification"] >= chroma.KEEPS_NOTES else
               "It keeps each song's rhythm and loudness but not yet its notes, so the generations above have "
               "rhythm and timbre without melody or chords.")
    return table, (f"Table 5 of this autoencoder on {vae['n_files']} held-out songs ({path.name}): which song a "
                   f"reconstruction is, by its band envelopes (identification) and by its notes (chroma "
                   f"identification {vae['chroma_identification']:.2f}, chance {chance:.2f}). {verdict}")


def held_out_songs(profile: Profile | None = None, n: int = 2, seconds: float = 4.0) -> list[dict]:
    """The first `seconds` of `n` held-out corpus songs (samod.data.split_records), from their start + 5 s."""
    profile = profile or get_profile()
    _, held_out = split_records(read_metadata(profile.corpus_dir / "metadata.jsonl"))
    return [{"name": f"{r.get('id', Path(r['audio_path']).stem)} ({r.get('genre', '')})",
             "audio": load_audio(r["audio_path"], start=5.0, seconds=seconds)} for r in held_out[:n]]


def training_search(profile: Profile | None = None, save_to: str | Path | None = None):
    """A TrainingSetSearch over the songs the profile's fine-tuned DiT trained on, in the space notebook 08 uses at
    tiny (the mean and std of CREPE's frames: samod's tiny CLAP maps different songs almost onto each other).

    Songs already embedded are read from samod/weights/<profile>/training_search.npz (shipped with the reference
    weights) or from <profile root>/cache/training_search.npz (an earlier page), matched by their files' SHA-256;
    the rest are embedded, and then the profile's cache is written. save_to: also write the search there."""
    profile = profile or get_profile()
    records = diffusion_training_records(profile)
    own_cache = profile.root / "cache" / SEARCH_CACHE
    search = TrainingSetSearch(FrameStatistics(CrepeEmbedder()), [r["audio_path"] for r in records],
                               [f"{r['id']} ({r['genre']})" for r in records],
                               caches=[WEIGHTS_DIR / profile.name / SEARCH_CACHE, own_cache])
    info = {"profile": profile.name, "songs": len(records), **run_facts(),
            "command": f"SAMOD_PROFILE={profile.name} python -m samod.demo_page"
                       + (f" --save-search {save_to}" if save_to else "")}
    if search.reused < len(records):
        search.save(own_cache, info)
    if save_to:
        search.save(save_to, info)
    return search


SEARCH_CACHE = "training_search.npz"  # the training songs' embeddings for the memorization section


def main(argv: list[str] | None = None) -> Path | None:
    parser = argparse.ArgumentParser(description="Build the demo page of the active profile "
                                                 "(artifacts/<profile>/demo/index.html).")
    parser.add_argument("--out", type=Path, default=None, help="folder of the page (default: <profile root>/demo)")
    parser.add_argument("--steps", type=int, default=8, help="solver steps of every generation")
    parser.add_argument("--seconds", type=float, default=None, help="length of the text-to-music generations "
                        "(default: the shorter of the lengths below)")
    parser.add_argument("--lengths", type=float, nargs="*", default=None,
                        help="seconds_total of the variable-length section (default: the quartiles of the "
                             "training songs' lengths, which the DiT learned to end at; none given: no section)")
    parser.add_argument("--songs", type=int, default=2, help="held-out corpus songs for reconstructions and "
                                                              "audio to audio (0: none)")
    parser.add_argument("--no-memorization", action="store_true", help="leave out the memorization section "
                        "(it embeds every song the DiT trained on with CREPE's frame statistics, as notebook 08)")
    parser.add_argument("--save-search", type=Path, default=None, metavar="PATH",
                        help="embed the training songs for the memorization section, write them to PATH and stop "
                             f"(make weights writes samod/weights/<profile>/{SEARCH_CACHE}, which the page reuses)")
    args = parser.parse_args(argv)
    profile = get_profile()
    if args.save_search:
        search = training_search(profile, save_to=args.save_search)
        print(f"{len(search.paths)} training songs ({search.reused} already embedded) written to {args.save_search}")
        return None
    pipeline = load_pipeline(profile)
    if args.lengths is None:  # lengths the model was trained to end at (a shorter one asks it to extrapolate)
        training, _ = split_records(read_metadata(profile.corpus_dir / "metadata.jsonl"))
        args.lengths = length_quartiles(training, pipeline.window_seconds)
    args.seconds = args.seconds or min(args.lengths, default=pipeline.window_seconds / 3)
    weights = weights_rows(profile)
    table, note = None, ""
    if weights[0]["weights"] == "reference":  # the reference autoencoder's Table 5, as its notebook measured it
        table, note = notes_rows(REPO_ROOT / "figures" / "table5_autoencoder.json")
    songs = held_out_songs(profile, args.songs, args.seconds) if args.songs else []
    search = None if args.no_memorization else training_search(profile)
    if search is not None:
        print(f"memorization section: {search.reused} of the {len(search.paths)} training songs' embeddings read from "
              f"{', '.join(str(c) for c in search.caches) or 'no cache'} (matched by SHA-256), "
              f"{len(search.paths) - search.reused} embedded now")
    index = build_demo_page(pipeline, args.out or profile.root / "demo", seconds=args.seconds, lengths=args.lengths,
                            songs=songs, steps=args.steps, profile=profile.name, weights=weights,
                            reconstruction_table=table, reconstruction_note=note, training_search=search,
                            title=f"samod demo: the {profile.name} profile")
    print(f"demo page: {index}")
    return index


if __name__ == "__main__":
    main()
