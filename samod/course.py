"""What a notebook will show at the active profile, said before it runs, from numbers measured at that profile.

Every notebook opens with `what_you_will_see("05")`: a short box of the measured results of that notebook
at the profile you run, so that no claim about the trained models is hand-written. The numbers come from
the JSON files the notebooks write beside their figures:

1. your own last run at this profile (`profile.figures_dir`: artifacts/<profile>/figures/, or $SAMOD_FIGURES);
2. otherwise, at the tiny profile, the committed reference run (figures/ in the repository, rebuilt with
   `make reference-figures` from the shipped reference weights);
3. otherwise the box says that nothing has been measured at this profile yet, and how to measure it.

Each notebook's facts are a list of `Fact`s: a JSON file and a function from its contents to one sentence.
A fact whose file is missing is left out, so a box never shows a number nobody measured.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from samod.chroma import HOLDS_NOTES, KEEPS_NOTES
from samod.profiles import REPO_ROOT, Profile, get_profile
from samod.weights import decoder_fine_tune_steps, promoted_campaign_step

REFERENCE_FIGURES = REPO_ROOT / "figures"  # the tiny profile's reference run, committed


@dataclass(frozen=True)
class Fact:
    file: str  # JSON file name in a figures folder
    sentence: Callable[[dict], str]  # its contents -> one sentence with the measured numbers
    committed: bool = False  # only the committed figures/ hold it (the campaign's curve): read from there


def _x(value: float, chance: float) -> str:
    return f"{value:.2f} (chance {chance:.2f}, {value / chance:.1f}x)"


def _table5(d: dict) -> str:
    vae, lowpass = d["rows"][0], d["rows"][1]
    return (f"The autoencoder's reconstructions follow their input: identification {vae['identification']:.2f} of "
            f"{vae['n_files']} held-out songs (chance {1 / vae['n_files']:.2f}), specificity ratio "
            f"{vae['specificity_ratio']:.2f} (1.0 = ignores its input); STFT distance {vae['stft_distance']:.2f} "
            f"and MEL distance {vae['mel_distance']:.2f}, against the same-size low-pass's "
            f"{lowpass['stft_distance']:.2f} and {lowpass['mel_distance']:.2f}; decoded silence "
            f"{d['notes'].get('silence_gap_db', float('nan')):.0f} dB below decoded music." + _notes(d))


def _notes(d: dict) -> str:
    """What the note measures of Table 5 (samod.chroma) say, when the table has them."""
    vae = d["rows"][0]
    if "chroma_identification" not in vae:
        return ""
    others = {r["model"]: r["chroma_identification"] for r in d["rows"][1:]}
    kept = ("It keeps the notes" if vae["chroma_identification"] >= KEEPS_NOTES else
            "It keeps rhythm and loudness but not the notes yet")
    return (f" {kept}: chroma identification {vae['chroma_identification']:.2f} (chance {1 / vae['n_files']:.2f}; "
            + ", ".join(f"{name} {value:.2f}" for name, value in others.items()) + ").")


def _campaign(d: dict) -> str:
    """The campaign's last measured point (figures/autoencoder_campaign.json): how far longer training got, and
    whether its weights became the reference autoencoder (the shipped provenance says from which step)."""
    last = d["points"][-1]
    rhythm = d.get("stand_ins", {}).get("rhythm only")
    profile = get_profile(d.get("profile", "tiny"))
    promoted, decoder = promoted_campaign_step(profile), decoder_fine_tune_steps(profile)
    return (f"The campaign (section 6) continued the recipe's autoencoder for {last['step']} steps "
            f"({last['cpu_hours']:.1f} CPU-hours): chroma identification {last['chroma_identification']:.2f}"
            + (f" (the rhythm-only stand-in {rhythm['chroma_identification']:.2f})" if rhythm else "")
            + (f". Its weights at step {promoted} are the reference autoencoder that the later notebooks use; CLAP "
               f"and the DiT were retrained on them" + (f", and then its decoder was fine-tuned alone for {decoder} "
                                                        f"steps (the latents unchanged)." if decoder else ".")
               if promoted else
               ". The later notebooks keep the recipe's weights until CLAP and the DiT are retrained on the new "
               "latents."))


def _clap(d: dict) -> str:
    return (f"The CLAP the later notebooks use (the reference, unless SAMOD_WEIGHTS=own), on {d['n_songs']} "
            f"held-out songs: text-to-audio Recall@1 "
            f"{_x(d['text_to_audio_r1'], d['chance_r1'])}, Recall@10 {d['text_to_audio_r10']:.2f} "
            f"(chance {d['chance_r10']:.2f}), zero-shot genre accuracy "
            f"{_x(d['zero_shot_genre_accuracy'], d['chance_genre'])}.")


def _clap_reference(d: dict) -> str:
    r = d["this_notebook"]
    return (f"This notebook's short live run ({d['this_notebook_steps']} steps): Recall@1 {r['text_to_audio_r1']:.2f}, "
            f"genre accuracy {r['zero_shot_genre_accuracy']:.2f}.")


def _timing(d: dict) -> str:
    t = d["timing_adherence"]
    return (f"Length: the audio after `seconds_total` is {-t['median_after_vs_before_db']:.0f} dB below the audio "
            f"before it (median of {t['prompts']} held-out prompts x lengths {t['lengths']} s; a model that "
            f"ignores the timing scores 0 dB).")


def _prompt(d: dict) -> str:
    p = d["prompt_adherence"]
    return (f"Prompt: over {p['prompts']} held-out prompts, CLAP similarity with the own prompt minus another "
            f"song's is {p['difference']:+.3f} (95 % interval {p['difference_low']:+.3f} to "
            f"{p['difference_high']:+.3f}); zero-shot genre accuracy of the renders "
            f"{_x(p['genre_accuracy'], p['genre_chance'])}"
            + (f", where naming the prompts' most frequent genre for every render would score {p['genre_majority']:.2f}"
               if "genre_majority" in p else "") + ".")


def _genre_generalization(d: dict) -> str:
    from samod.evaluation import GENRE_READINGS, genre_reading  # the reading notebook 06 prints

    held, seen = d["held-out songs' prompts"], d["training songs' prompts"]
    return (f"Genre of songs it trained on: renders of {seen['prompts']} prompts of training songs are named right "
            f"{_x(seen['genre_accuracy'], seen['genre_chance'])}, against {held['genre_accuracy']:.2f} for held-out "
            f"songs' prompts: it {GENRE_READINGS[genre_reading(seen, held)]}.")


def _sampling(d: dict) -> str:
    s, x = d["sampler_error_vs_reference"], d["length_example"]
    error = dict(zip(s["steps"], s["DPM-Solver++(2M)"]))
    return (f"On the trained DiT (CFG 3), DPM-Solver++(2M) lands {error[10]:.1%} from a 400-step reference after "
            f"10 steps and {error[50]:.2%} after 50; a generation asked to end at {x['seconds_total']:g} s is "
            f"{-x['after_vs_before_db']:.0f} dB quieter after that than before (0 dB: the timing ignored).")


def _demo_song(d: dict) -> str:
    inside = ", ".join(f"{k.replace('_', ' ')} {d['activity'][k]:.2f} ({'inside' if ok else 'outside'} the corpus "
                       f"range {d['corpus_bossa_nova_range'][k][0]:.2f}-{d['corpus_bossa_nova_range'][k][1]:.2f})"
                       for k, ok in d["inside_range"].items())
    return f"The demo song (seed {d['seed']}, {d['steps']} steps, CFG {d['cfg_scale']:g}): {inside}."


def _song_notes(d: dict) -> str:
    """What to expect to hear, from the autoencoder's note measures in Table 5 (a generation is decoded by it)."""
    vae = d["rows"][0]
    if "chroma_identification" not in vae:
        return ""
    if vae["chroma_identification"] >= KEEPS_NOTES:
        return f"The autoencoder keeps the notes (chroma identification {vae['chroma_identification']:.2f}): listen for them."
    return (f"Every generation is decoded by the autoencoder of notebook 01, which keeps rhythm and loudness but not "
            f"the notes yet (chroma identification {vae['chroma_identification']:.2f}, chance "
            f"{1 / vae['n_files']:.2f}): expect a beat and textures in the prompt's tempo, no melody or chords.")


def _diffusion_training(d: dict) -> str:
    return (f"The live run's v-loss falls from {d['pretrain_mse_first20']:.2f} to {d['pretrain_mse_last20']:.2f} in "
            f"{d['steps']['pretrain']} pre-training steps ({d['finetune_mse_first20']:.2f} to "
            f"{d['finetune_mse_last20']:.2f} in {d['steps']['finetune']} fine-tuning steps): the mechanics, not a "
            f"model that generates music.")


def _dit_curve(d: dict) -> str:
    last = d["curve"][-1]
    return (f"The reference DiT after {last['step']} steps ({last['wall_minutes']:.0f} CPU minutes): "
            f"timing {last['timing_median_db']:.0f} dB after the end, prompt difference "
            f"{last['prompt_difference']:+.3f} (interval {last['prompt_difference_low']:+.3f} to "
            f"{last['prompt_difference_high']:+.3f}), genre accuracy {_x(last['prompt_genre_accuracy'], last['prompt_genre_chance'])}"
            f" (CLAP hearing {last.get('prompt_clip_seconds', 5):g} s of each render).")


def _evaluation(d: dict) -> str:
    rows = {r["model"]: r for r in d["rows"]}
    parts = []
    for label in ("pre-trained", "fine-tuned"):
        shuffled = rows.get(f"{label}, shuffled prompts")
        right = shuffled and rows.get(f"{label}, {shuffled['seconds']:.0f} s")  # the same length, right prompts
        if right:
            parts.append(f"{label}: CLAP score {right['CLAP score']:.2f} with the right prompts vs "
                         f"{shuffled['CLAP score']:.2f} shuffled, KL {right['KL']:.2f} vs {shuffled['KL']:.2f}")
    return "Tables 2-3 (stand-in embedders, few prompts: read the intervals in the notebook): " + "; ".join(parts) + "."


def _structure(d: dict) -> str:
    return (f"The self-similarity measure finds the planned repeats in {d['hit_rate']:.0%} of {d['n_songs']} "
            f"corpus songs (chance {d['chance_hit_rate']:.0%}).")


def _memorization(d: dict) -> str:
    above = d["generations_above_threshold"]
    return (f"Planted replicas found: {d['planted_replicas_found']}; replicas inside the training set: "
            f"{d['replicas_in_training_set']}; generations above the replica threshold: "
            + ", ".join(f"{k} {v}" for k, v in above.items()) + ".")


def _tempo(d: dict) -> str:
    return (f"Beat tracking recovers the written tempo (within {d['tolerance']:.0%}, octave errors allowed) "
            f"for {d['rate']:.0%} of the corpus, in {d['genres_recovered']} of {d['n_genres']} genres.")


def _parameters(d: dict) -> str:
    return "Parameters counted: " + "; ".join(
        f"{name} {counts['Total'] / 1e6:.1f} M" for name, counts in d["counted"].items()) + "."


def _harmony(d: dict) -> str:
    r = d["renders"]
    short = [name for key, name in (("chroma_clarity", "stand out"), ("chroma_movement", "move"))
             if r[key]["inside"] < HOLDS_NOTES]
    return (f"Notes in the renders: {r['chroma_clarity']['inside']:.2f} of {d['rendered_prompts']} lie inside the "
            f"{d['corpus_songs']} training songs' 10-90 % range of chroma clarity and {r['chroma_movement']['inside']:.2f} "
            f"inside that of chroma movement (the rhythm-only stand-in: {d['rhythm_only']['inside_both']:.2f} inside "
            f"both); " + (f"their notes do not yet {' and '.join(short)} as the songs' do." if short else
                          "their notes stand out and move as the songs' do."))


def _finetune(d: dict) -> str:
    return (f"A rank-{d['rank']} LoRA adapter trains {d['trainable_ratio']:.1%} of the DiT's parameters, saved in "
            f"{d['adapter_bytes'] / 1e3:.0f} kB; after {d['steps']} steps on {d['training_songs']} {d['style']} songs "
            f"the generations' CLAP similarity to held-out {d['style']} songs changes by {d['difference']:+.2f} "
            f"(95 % interval {d['difference_low']:+.2f} to {d['difference_high']:+.2f}, {d['held_out_songs']} prompts; "
            f"towards held-out corpus songs {d['control_difference']:+.2f}).")


FACTS: dict[str, list[Fact]] = {
    "00": [Fact("tempo_recovery.json", _tempo)],
    "01": [Fact("table5_autoencoder.json", _table5), Fact("autoencoder_campaign.json", _campaign, committed=True)],
    "02": [Fact("clap_retrieval.json", _clap), Fact("clap_training_curve.json", _clap_reference)],
    "03": [Fact("table1_parameters.json", _parameters)],
    "04": [Fact("diffusion_training.json", _diffusion_training), Fact("dit_training_curve.json", _dit_curve)],
    "05": [Fact("generation_checks.json", _sampling)],
    "05-song": [Fact("demo_song.json", _demo_song), Fact("table5_autoencoder.json", _song_notes)],  # before the song
    "06": [Fact("adherence.json", _timing), Fact("adherence.json", _prompt),
           Fact("genre_generalization.json", _genre_generalization), Fact("harmony.json", _harmony),
           Fact("evaluation.json", _evaluation)],
    "07": [Fact("structure_validation.json", _structure)],
    "08": [Fact("memorization.json", _memorization)],
    "10": [Fact("finetune_style.json", _finetune)],
}


def _profile_of(numbers: dict) -> str | None:
    """The profile a figure's JSON was measured at (a figure names it at the top, a table in its notes)."""
    return numbers.get("profile") or numbers.get("notes", {}).get("profile")


def measured_facts(notebook: str, profile: Profile | None = None) -> tuple[list[str], str]:
    """The sentences of a notebook's box and where their numbers come from (empty when nothing was measured)."""
    if notebook not in FACTS:
        raise ValueError(f"no facts for notebook {notebook!r}: known are {sorted(FACTS)}")
    profile = profile or get_profile()
    reference = (REFERENCE_FIGURES, "the tiny profile's reference run (figures/, `make reference-figures`)")
    folders = [(profile.figures_dir, f"your last run at the {profile.name} profile ({profile.figures_dir})")]
    if profile.name == "tiny":
        same = profile.figures_dir.resolve() == REFERENCE_FIGURES.resolve()
        folders = [reference] if same else folders + [reference]
    sentences, where = [], ""
    for folder, source in folders:
        numbers = {fact.file: json.loads((folder / fact.file).read_text())
                   for fact in FACTS[notebook] if not fact.committed and (folder / fact.file).exists()}
        found = [fact for fact in FACTS[notebook] if _profile_of(numbers.get(fact.file, {})) == profile.name]
        if found:
            sentences, where = [_sentence(fact, numbers[fact.file]) for fact in found], source
            break
    for fact in FACTS[notebook]:  # the campaign's curve exists in figures/ only
        path = REFERENCE_FIGURES / fact.file
        numbers = json.loads(path.read_text()) if fact.committed and path.exists() else {}
        if _profile_of(numbers) == profile.name:
            sentences.append(_sentence(fact, numbers))
            where = "; ".join(filter(None, [where, f"{fact.file} in figures/"]))
    return sentences, where


def _sentence(fact: Fact, numbers: dict) -> str:
    """A fact's sentence; a file written by an older version of its notebook says so instead of failing."""
    try:
        return fact.sentence(numbers)
    except (KeyError, IndexError, TypeError) as missing:
        return f"({fact.file} lacks {missing}: it comes from an older run; rerun the notebook to measure it again)"


def what_you_will_see(notebook: str, profile: Profile | None = None):
    """A Markdown box for the top of a notebook: its measured results at the active profile."""
    from IPython.display import Markdown  # IPython: optional, present only in notebooks
    profile = profile or get_profile()
    sentences, source = measured_facts(notebook, profile)
    if not sentences:
        body = (f"Nothing has been measured at the **{profile.name}** profile yet: this notebook's run writes its "
                f"numbers to {profile.figures_dir}, and the next time this box shows them.")
    else:
        body = "\n".join(f"- {s}" for s in sentences) + f"\n\n<small>Numbers from {source}.</small>"
    return Markdown(f"> **What you will see at the {profile.name} profile**\n>\n"
                    + "\n".join(f"> {line}" for line in body.split("\n")))


WORDS_PER_MINUTE = 150  # prose read per minute (the course guide's rate)
CODE_LINES_PER_MINUTE = 15  # lines of code read per minute (the course guide's rate)


def reading_counts(cells: list[dict]) -> tuple[int, int]:
    """(words of prose, lines of code) in a notebook's cells: words are whitespace-separated tokens of the
    markdown cells, code lines the non-blank lines of the code cells (comments included: a reader reads them)."""
    words = lines = 0
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            words += len(source.split())
        elif cell["cell_type"] == "code":
            lines += sum(1 for line in source.splitlines() if line.strip())
    return words, lines


def reading_minutes(path) -> float:
    """Minutes to read a notebook at the course guide's rates: words / 150 + code lines / 15."""
    words, lines = reading_counts(json.loads(Path(path).read_text())["cells"])
    return words / WORDS_PER_MINUTE + lines / CODE_LINES_PER_MINUTE
