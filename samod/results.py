"""The README's results table: what the tiny reference models can do, built from the committed figures/*.json.

`python -m samod.results` writes the table between the two marker comments of README.md; `--check` only
compares and exits 1 when README's table differs (tests/test_results_table.py runs the same comparison), so a
number in the table is never typed by hand and cannot go stale. Each row names the JSON file it reads; the
files are written by the notebooks and rebuilt with `make reference-figures`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from samod.profiles import REPO_ROOT, get_profile
from samod.weights import decoder_fine_tune_steps, promoted_campaign_step

FIGURES = REPO_ROOT / "figures"  # the tiny profile's reference run, committed
README = REPO_ROOT / "README.md"
BEGIN = "<!-- results table: written by `python -m samod.results` from figures/*.json, do not edit by hand -->"
END = "<!-- end of results table -->"
HEADER = ("| stage | measured on held-out songs | tiny reference | chance or baseline | from |\n"
          "|---|---|---|---|---|")


def _interval(value: float, low: float, high: float, digits: int = 3) -> str:
    return f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _autoencoder(d: dict) -> list[tuple[str, str, str, str]]:
    """table5_autoencoder.json: rows[0] the VAE, rows[1] the low-pass with as many numbers per second."""
    vae, lowpass = d["rows"][0], d["rows"][1]
    chance = f"chance {1 / vae['n_files']:.2f}"
    notes = (f"{vae['chroma_identification']:.2f}" if "chroma_identification" in vae
             else "not measured yet")  # written by notebook 01 once it measures chroma
    return [
        ("autoencoder", f"which of {vae['n_files']} songs a reconstruction is (identification)",
         f"{vae['identification']:.2f}", chance),
        ("autoencoder", "the same, by its notes (chroma identification)", notes,
         chance + "".join(f"; {r['model'].split(',')[0].split(' (')[0]} {r['chroma_identification']:.2f}"
                          for r in d["rows"][1:-1] if "chroma_identification" in r)),
        ("autoencoder", "STFT / MEL distance to the input (lower is better)",
         f"{vae['stft_distance']:.2f} / {vae['mel_distance']:.2f}",
         f"same-size low-pass {lowpass['stft_distance']:.2f} / {lowpass['mel_distance']:.2f}"),
        ("autoencoder", "decoded silence below decoded music", f"{d['notes']['silence_gap_db']:.0f} dB", "-")]


def _campaign(d: dict) -> list[tuple[str, str, str, str]]:
    """autoencoder_campaign.json: the campaign's last measured point (the weights it exports), and whether the
    shipped reference autoencoder is the campaign's (its provenance names the step it was promoted from)."""
    last, first = d["points"][-1], d["points"][0]
    rhythm = d.get("stand_ins", {}).get("rhythm only")
    profile = get_profile(d.get("profile", "tiny"))
    promoted, decoder = promoted_campaign_step(profile), decoder_fine_tune_steps(profile)
    state = (f"the reference autoencoder is its step {promoted}"
             + (f", decoder fine-tuned alone {decoder} steps more" if decoder else "") if promoted else
             "CLAP and the DiT not retrained on it yet")
    return [("autoencoder, campaign", f"chroma identification after {last['step']} more steps "
                                      f"({last['cpu_hours']:.1f} CPU-hours; {state})",
             f"{last['chroma_identification']:.2f}",
             f"the recipe's weights {first['chroma_identification']:.2f}"
             + (f"; rhythm only {rhythm['chroma_identification']:.2f}" if rhythm else ""))]


def _clap(d: dict) -> list[tuple[str, str, str, str]]:
    """clap_retrieval.json: retrieval and zero-shot genres of the reference CLAP."""
    return [
        ("CLAP", f"text-to-audio Recall@1 ({d['n_songs']} songs)", f"{d['text_to_audio_r1']:.2f}",
         f"chance {d['chance_r1']:.2f}"),
        ("CLAP", f"zero-shot genre accuracy ({d['n_genres']} genres)", f"{d['zero_shot_genre_accuracy']:.2f}",
         f"chance {d['chance_genre']:.2f}")]


def _dit(d: dict) -> list[tuple[str, str, str, str]]:
    """adherence.json: notebook 06's timing and prompt adherence of the fine-tuned DiT, default guidance."""
    t, p = d["timing_adherence"], d["prompt_adherence"]
    lengths = " and ".join(f"{s:g}" for s in t["lengths"])
    return [
        ("DiT", f"audio after `seconds_total` below the audio before it ({t['prompts']} prompts, {lengths} s)",
         f"{-t['median_after_vs_before_db']:.1f} dB", "0 dB: length ignored"),
        ("DiT", f"CLAP similarity, own prompt minus another song's ({p['prompts']} prompts, 95 % interval)",
         _interval(p["difference"], p["difference_low"], p["difference_high"]), "0: prompt ignored")]


def _genre(d: dict) -> list[tuple[str, str, str, str]]:
    """genre_generalization.json: notebook 06's genre of the renders, of held-out and of training songs' prompts."""
    held, seen = d["held-out songs' prompts"], d["training songs' prompts"]
    return [("DiT", f"genre of the renders of held-out songs' prompts, named by CLAP ({held['prompts']} prompts)",
             f"{held['genre_accuracy']:.2f}", f"chance {held['genre_chance']:.2f}; one genre for all "
             f"{held['genre_majority']:.2f}; training songs' prompts {seen['genre_accuracy']:.2f}")]


def _harmony(d: dict) -> list[tuple[str, str, str, str]]:
    """harmony.json: notebook 06's chroma clarity and movement of the renders against the corpus's songs."""
    r, stand_in, decoded = d["renders"], d["rhythm_only"], d.get("reconstructions")

    def pair(placed: dict) -> str:
        return f"{placed['chroma_clarity']['inside']:.2f} / {placed['chroma_movement']['inside']:.2f}"

    return [("DiT", f"renders inside the 10-90 % range of {d['corpus_songs']} training songs' chroma clarity / movement "
                    f"({d['rendered_prompts']} prompts): notes that stand out and move", pair(r),
             f"held-out songs {pair(d['held_out_songs'])}; "
             + (f"their reconstructions {pair(decoded)}; " if decoded else "") + f"rhythm only {pair(stand_in)}")]


def _finetune(d: dict) -> list[tuple[str, str, str, str]]:
    """finetune_style.json: notebook 10's rank-r LoRA on a style the corpus lacks."""
    control = _interval(d["control_difference"], d["control_low"], d["control_high"], 2)
    return [("LoRA", f"similarity to held-out {d['style']} songs, after minus before {d['steps']} steps "
                     f"({d['held_out_songs']} prompts, 95 % interval)",
             _interval(d["difference"], d["difference_low"], d["difference_high"], 2),
             f"control, to held-out corpus songs {control}")]


SOURCES = {"table5_autoencoder.json": _autoencoder, "autoencoder_campaign.json": _campaign,
           "clap_retrieval.json": _clap, "adherence.json": _dit, "genre_generalization.json": _genre,
           "harmony.json": _harmony,
           "finetune_style.json": _finetune}


def results_table(figures: Path = FIGURES) -> str:
    """The Markdown table, one row per measure, each naming the file its numbers come from."""
    lines = [HEADER]
    for name, rows in SOURCES.items():
        numbers = json.loads((figures / name).read_text())
        lines += [f"| {stage} | {measure} | {value} | {baseline} | `figures/{name}` |"
                  for stage, measure, value, baseline in rows(numbers)]
    return "\n".join(lines)


def with_table(text: str, table: str) -> str:
    """README's text with the part between the markers replaced by `table`."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"README must hold the results table between one {BEGIN!r} and one {END!r} line")
    before, rest = text.split(BEGIN)
    return before + BEGIN + "\n" + table + "\n" + END + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when README's table differs")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--figures", type=Path, default=FIGURES)
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    new = with_table(text, results_table(args.figures))
    if new == text:
        print(f"{args.readme}: the results table matches {args.figures}")
        return 0
    if args.check:
        print(f"{args.readme}: the results table differs from {args.figures}; run `python -m samod.results`")
        return 1
    args.readme.write_text(new)
    print(f"{args.readme}: results table written from {args.figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
