"""`make weights`: train a profile's reference weights from scratch and ship them in samod/weights/.

A notebook trains its own stage live for a few CPU minutes: enough to watch the mechanics and a
falling loss, not enough to make music. So that every later stage has models that work, samod ships
the EMA weights of longer runs of the same recipes, trained with the same code, in
samod/weights/<profile>/<stage>.safetensors (float16), each with <stage>.json: where they came from
(commit, command, seed, steps, audio hours seen, wall time, hardware) and their measured numbers.
Which weights a stage loads (the shipped ones or the profile's own: SAMOD_WEIGHTS) and loading them
is samod/weights.py.

`python -m samod.reference autoencoder` (then clap, then diffusion) retrains them: it trains with the
profile's recipe in segments (the Trainer resumes exactly, so a segmented run equals an uninterrupted
one), measures the model after each segment, and exports the EMA weights with their provenance.
`python -m samod.reference autoencoder --from-campaign` makes the campaign's weights (samod/campaign.py) the
reference instead; with `--decoder-steps N`, with their decoder fine-tuned alone for N steps (the latents unchanged).

Taught in notebooks/01_autoencoder.ipynb (the first stage that ships them).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from data_prep.encode import encode_corpus, reconstruct_corpus
from samod import chroma
from samod.autoencoder_evaluation import table5
from samod.autoencoder_training import AutoencoderRecipe, train_autoencoder
from samod.campaign import DECODER, EXPORT, PHASES, Evaluation, load_exported, train_decoder
from samod.clap_evaluation import RETRIEVAL_NUMBERS, evaluate_clap, evaluation_prompt
from samod.clap_training import HOLDOUT_EVERY, ClapRecipe, train_clap
from samod.data import read_metadata, split_records
from samod.diffusion import CONFIG_NAME, STAGES
from samod.diffusion_training import DiffusionRecipe, train_diffusion
from samod.evaluation import length_quartiles, prompt_adherence, timing_adherence
from samod.generation import Pipeline, SamplingConfig
from samod.profiles import Profile, get_profile
from samod.train import CHECKPOINT_NAME
from samod.weights import (autoencoder_checkpoint, encoder_sha256, load_autoencoder, load_clap, provenance,
                           reference_file, run_facts, save_reference, stage_dir)


def train_in_segments(folder: Path, steps: int, evaluate_every: int, train_to, measure, audio_hours) -> tuple:
    """Train to `steps` in segments of `evaluate_every`, measuring the model after each; resumable.

    `train_to(step)` trains (or resumes) the run in `folder` up to `step` and returns the EMA model;
    `measure(model)` returns a dict of numbers; `audio_hours(step)` the audio seen by then. The curve
    (step, wall minutes, audio hours, measurements) is kept in <folder>/curve.json, so an interrupted
    run continues where it stopped and its wall time keeps counting. Returns (model, curve).
    """
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "curve.json"
    curve = json.loads(log_path.read_text()) if log_path.exists() else []
    start = time.time() - (curve[-1]["wall_minutes"] * 60 if curve else 0.0)
    done = curve[-1]["step"] if curve else 0
    model = None
    for target in [*range(done + evaluate_every, steps, evaluate_every), steps]:
        if target <= done:
            continue
        model = train_to(target)
        point = {"step": target, "wall_minutes": (time.time() - start) / 60, "audio_hours": audio_hours(target),
                 **measure(model)}
        curve.append(point)
        log_path.write_text(json.dumps(curve, indent=1) + "\n")
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in point.items()}), flush=True)
    if model is None:  # nothing left to train: load the finished run
        model = train_to(steps)
    return model, curve


def _info(stage: str, profile: Profile, facts: dict, recipe, steps: int, curve: list[dict], **extra) -> dict:
    return {"stage": stage, "profile": profile.name, **facts, "seed": profile.seed, "steps": steps,
            "audio_hours": curve[-1]["audio_hours"], "wall_minutes": curve[-1]["wall_minutes"],
            "recipe": json.loads(json.dumps(asdict(recipe))), "weights": "EMA, float16", **extra,
            "final": curve[-1], "curve": curve}


def train_reference_autoencoder(steps: int | None = None, evaluate_every: int = 250, files: int = 16,
                                profile: Profile | None = None) -> Path:
    """Train the profile's VAE recipe for `steps`, measure it every `evaluate_every` steps on `files`
    held-out songs (Table 5 with identification, specificity and the silence gap), export the EMA weights.

    Checkpoints go to <profile>/checkpoints/reference/autoencoder/ (apart from the notebook's own run):
    rerunning resumes where it stopped.
    """
    facts = run_facts()  # the code that trains, not the code that is checked out when it ends
    profile = profile or get_profile()
    folder = profile.checkpoint_dir / "reference" / "autoencoder"
    recipe = AutoencoderRecipe.for_profile(profile.name)
    recipe = replace(recipe, steps=steps or recipe.steps)
    _, held_out = split_records(read_metadata(profile.corpus_dir / "metadata.jsonl"))

    model, curve = train_in_segments(
        folder, recipe.steps, evaluate_every,
        lambda step: train_autoencoder(replace(recipe, steps=step), profile, progress=True, folder=folder)[0],
        lambda model: _autoencoder_measures(model, held_out[:files]),
        lambda step: step * recipe.batch_size * recipe.crop_samples / recipe.model.sample_rate / 3600)
    info = _info("autoencoder", profile, facts, recipe, recipe.steps, curve, held_out_files=files)
    return save_reference("autoencoder", model.state_dict(), info, profile)


def promote_campaign(files: int = 16, profile: Profile | None = None, decoder_steps: int = 0,
                     evaluate_every: int = 250) -> Path:
    """Make the autoencoder campaign's exported weights (samod/weights/<profile>/autoencoder_campaign.*) the
    profile's reference autoencoder, measured as `train_reference_autoencoder` measures its runs.

    The campaign (samod/campaign.py) continues the reference recipe's run with the phases that brought the
    notes through; CLAP and the DiT then train on these weights' reconstructions and latents. The provenance
    keeps the recipe run it started from ("base") and the campaign's own ("campaign"): steps count both.

    With `decoder_steps`, the decoder is then fine-tuned alone for that many steps (`campaign.train_decoder`, in
    <profile>/checkpoints/reference/decoder/, measured every `evaluate_every` steps: "decoder" in the provenance).
    The encoder, and so every latent, stays the same, so CLAP and the DiT trained after the plain promotion
    stay valid: `make weights` promotes, trains them, then promotes again with the decoder fine-tuned.
    """
    facts = run_facts()
    profile = profile or get_profile()
    if not reference_file(EXPORT, profile).exists():
        raise FileNotFoundError(f"{reference_file(EXPORT, profile)} is missing: run the campaign and export it "
                                f"first (`python -m samod.campaign --segments N`, then `--export`)")
    campaign = provenance(EXPORT, profile)
    shipped = provenance("autoencoder", profile)
    base = shipped.get("base", shipped)  # promoting again keeps the recipe run the campaign started from
    model = load_exported(profile)
    _, held_out = split_records(read_metadata(profile.corpus_dir / "metadata.jsonl"))
    steps = base["steps"] + campaign["steps"]
    # the campaign trains on one thread and keeps its CPU time, which stands for its wall time here
    minutes = base["wall_minutes"] + campaign["cpu_hours"] * 60
    audio_hours = base["audio_hours"] + campaign["audio_hours"]
    notes = {k: v for k, v in campaign["final"].items() if k not in ("step", "stft_distance", "mel_distance",
                                                                     "silence_gap_db")}
    decoder = None
    if decoder_steps:
        model, decoder = _fine_tune_decoder(decoder_steps, evaluate_every, profile)
        steps, minutes, audio_hours = steps + decoder_steps, minutes + decoder["wall_minutes"], \
            audio_hours + decoder["audio_hours"]
        notes = {k: v for k, v in decoder["final"].items() if k not in ("step", "wall_minutes", "audio_hours")}
    final = {"step": steps, "wall_minutes": minutes, "audio_hours": audio_hours,
             **_autoencoder_measures(model, held_out[:files]), **notes}
    info = {"stage": "autoencoder", "profile": profile.name, **facts,
            "hardware": f"{base['hardware']} (the recipe), {campaign['hardware']} (the campaign)",
            "seed": profile.seed, "steps": steps, "audio_hours": final["audio_hours"], "wall_minutes": minutes,
            "wall_minutes_note": "the recipe's wall time plus the campaign's CPU time on one thread",
            "cpu_hours": campaign["cpu_hours"], "recipe": campaign["recipe"], "weights": "EMA, float16",
            "held_out_files": files, "final": final,
            "curve": [*base["curve"], final],
            "base": {k: v for k, v in base.items() if k not in ("stage",)},
            "campaign": {k: campaign[k] for k in ("commit", "command", "steps", "audio_hours", "cpu_hours",
                                                   "cpu_hours_with_trials", "phase", "final")}}
    if decoder:
        info["decoder"] = decoder
        info["wall_minutes_note"] += ", then the decoder fine-tune's wall time"
        info["hardware"] += f", {decoder['hardware']} (the decoder)"
    print(f"reference autoencoder: {base['steps']} steps of the recipe, then {campaign['steps']} of the campaign"
          f"{f', then {decoder_steps} of the decoder alone' if decoder else ''}; "
          f"chroma identification {final['chroma_identification']:.2f}, Table 5 identification "
          f"{final['identification']:.2f}", flush=True)
    return save_reference("autoencoder", model.state_dict(), info, profile)


def _fine_tune_decoder(steps: int, evaluate_every: int, profile: Profile) -> tuple:
    """The exported campaign weights with their decoder fine-tuned `steps` steps (resumable), measured every
    `evaluate_every` steps as the campaign measures its points, plus the chroma clarity and movement of the
    reconstructions against the corpus's range (samod.chroma.harmony); returns (model, provenance section)."""
    facts = run_facts()
    folder = profile.checkpoint_dir / "reference" / "decoder"
    training, _ = split_records(read_metadata(profile.corpus_dir / "metadata.jsonl"))
    measure = Evaluation(corpus_harmony=chroma.corpus_harmony(training))  # every training song's range
    model, curve = train_in_segments(folder, steps, evaluate_every,
                                     lambda step: train_decoder(step, folder, evaluate_every), measure,
                                     lambda step: step * DECODER.batch_size * DECODER.crop_samples
                                     / DECODER.model.sample_rate / 3600)
    if encoder_sha256(folder / CHECKPOINT_NAME) != encoder_sha256(reference_file(EXPORT, profile)):
        raise RuntimeError(f"the decoder fine-tune in {folder} changed the encoder: its latents are not the "
                           f"campaign's any more (delete the folder and train again)")
    return model, {"commit": facts["commit"], "command": facts["command"], "hardware": facts["hardware"],
                   "steps": steps, "wall_minutes": curve[-1]["wall_minutes"], "audio_hours": curve[-1]["audio_hours"],
                   "recipe": json.loads(json.dumps(asdict(DECODER))), "precision": PHASES[-1].precision,
                   "started_from": f"the campaign's exported weights ({EXPORT})", "final": curve[-1], "curve": curve}


def _autoencoder_measures(model, records: list[dict]) -> dict:
    """Table 5's numbers of a reference autoencoder run (with identification, specificity, the silence gap)."""
    rows, details = table5(model, records, progress=False)
    vae, lowpass = rows[0], rows[1]
    return {"identification": vae["identification"], "specificity_ratio": vae["specificity_ratio"],
            "silence_gap_db": details[vae["model"]]["silence_gap_db"],
            "stft_distance": vae["stft_distance"], "mel_distance": vae["mel_distance"],
            "lowpass_stft_distance": lowpass["stft_distance"], "lowpass_mel_distance": lowpass["mel_distance"]}


def train_reference_clap(steps: int | None = None, evaluate_every: int = 500, profile: Profile | None = None) -> Path:
    """Train the profile's CLAP recipe for `steps` on the training songs and on the reference
    autoencoder's reconstructions of them (every generation reaches CLAP through that decoder), measure
    retrieval and zero-shot genre accuracy on the held-out songs and on their reconstructions every
    `evaluate_every` steps, export the EMA weights and the tokenizer
    (samod/weights/<profile>/clap.safetensors, clap.json, clap_tokenizer/)."""
    facts = run_facts()
    profile = profile or get_profile()
    if not reference_file("autoencoder", profile).exists():
        raise FileNotFoundError(f"the reference CLAP also trains on the reference autoencoder's reconstructions, "
                                f"and {reference_file('autoencoder', profile)} is missing: "
                                f"run `python -m samod.reference autoencoder` first")
    folder = profile.checkpoint_dir / "reference" / "clap"
    recipe = ClapRecipe.for_profile(profile.name)
    recipe = replace(recipe, steps=steps or recipe.steps)
    metadata = profile.corpus_dir / "metadata.jsonl"
    reconstructions = reconstruct_corpus(load_autoencoder(profile, source="reference"),
                                         autoencoder_checkpoint(profile, "reference"), metadata,
                                         profile.checkpoint_dir / "reference" / "reconstructions")
    records = read_metadata(metadata)
    _, held_out = split_records(records, every=HOLDOUT_EVERY)
    by_id = {r["id"]: r for r in reconstructions}
    held_out_decoded = [by_id[r["id"]] for r in held_out]
    genres = sorted({r["genre"] for r in records})

    def measure(encoder) -> dict:
        result = evaluate_clap(encoder, held_out, recipe.crop_seconds, genres)
        decoded = evaluate_clap(encoder, held_out_decoded, recipe.crop_seconds, genres)  # same chance levels
        return {**{k: v for k, v in result.items() if isinstance(v, (int, float))},
                **{f"reconstruction_{k}": decoded[k] for k in RETRIEVAL_NUMBERS}}

    model, curve = train_in_segments(
        folder, recipe.steps, evaluate_every,
        lambda step: train_clap(replace(recipe, steps=step), profile, progress=True, folder=folder,
                                reconstructions=reconstructions)[0],
        measure, lambda step: step * recipe.batch_size * recipe.crop_seconds / 3600)
    info = _info("clap", profile, facts, recipe, recipe.steps, curve, held_out_files=len(held_out),
                 tokenizer="clap_tokenizer/",
                 reconstructions="every training song twice: as rendered and as the reference autoencoder "
                                 "reconstructs it (same prompts)")
    path = save_reference("clap", model.state_dict(), info, profile)
    model.tokenizer.save_pretrained(path.with_name("clap_tokenizer"))
    return path


def measure_diffusion(pipeline: Pipeline, held_out: list[dict], training: list[dict], genres: list[str],
                      profile: Profile) -> dict:
    """What the reference DiT's run measures along its training (notebook 04 §8 plots it): the timing adherence
    of 8 held-out songs' prompts at the lower and upper quartiles of the training songs' lengths, then the prompt
    adherence and zero-shot genre accuracy of one render for each held-out song's prompt (`samod.evaluation`)."""
    prompts = [evaluation_prompt(r) for r in held_out]
    lengths = length_quartiles(training, pipeline.window_seconds)
    timing = timing_adherence(pipeline, prompts[:8], lengths, steps=10)
    labels = [genres.index(r["genre"]) for r in held_out]
    adherence = prompt_adherence(pipeline, prompts, lengths[0], steps=10, labels=labels, genres=genres,
                                 clip_seconds=ClapRecipe.for_profile(profile.name).crop_seconds)
    return {"timing_median_db": timing["median_after_vs_before_db"], "timing_lengths": timing["lengths"],
            **{f"prompt_{k}": v for k, v in adherence.items() if k not in ("steps", "differences")}}


def train_reference_diffusion(steps: dict[str, int] | None = None, evaluate_every: int = 250,
                              profile: Profile | None = None) -> list[Path]:
    """Train both DiT stages of the profile's recipe on the reference autoencoder's latents with the
    reference CLAP, measure length and prompt adherence of generations every `evaluate_every` steps,
    and export each stage's EMA weights (samod/weights/<profile>/dit_pretrain and dit_finetune).

    The latent cache covers every training song (<profile>/checkpoints/reference/latents/), not only
    the profile's `diffusion_songs` that a notebook encodes in minutes.
    """
    facts = run_facts()
    profile = profile or get_profile()
    for needed in ("autoencoder", "clap"):
        if not reference_file(needed, profile).exists():
            raise FileNotFoundError(f"the reference DiT trains on the reference {needed}, and "
                                    f"{reference_file(needed, profile)} is missing: "
                                    f"run `python -m samod.reference {needed}` first")
    root = profile.checkpoint_dir / "reference"
    autoencoder = load_autoencoder(profile, source="reference")
    clap = load_clap(profile, source="reference")
    metadata = profile.corpus_dir / "metadata.jsonl"
    cache = root / "latents"
    encode_corpus(autoencoder, autoencoder_checkpoint(profile, "reference"), metadata, cache, split="train")
    recipe = DiffusionRecipe.for_profile(profile.name)
    recipe = replace(recipe, steps={**recipe.steps, **(steps or {})})
    records = read_metadata(metadata)
    genres = sorted({r["genre"] for r in records})
    _, held_out = split_records(records)  # the songs the DiT never sees
    training = read_metadata(cache / "index.jsonl")  # timing is measured at lengths these songs have
    paths = []
    for stage in STAGES:
        def train_to(step: int, stage=stage):
            stage_recipe = replace(recipe, steps={**recipe.steps, stage: step})
            return train_diffusion(stage, stage_recipe, profile, clap, progress=True, root=root, cache=cache)[0]

        def measure(model, stage=stage) -> dict:
            description = json.loads((stage_dir(profile, stage, root) / CONFIG_NAME).read_text())
            pipeline = Pipeline(autoencoder, model, clap, description["window_frames"], description,
                                SamplingConfig.for_profile(profile.name))
            return measure_diffusion(pipeline, held_out, training, genres, profile)

        window_seconds = profile.pretrain_seconds if stage == "pretrain" else profile.finetune_seconds
        folder = stage_dir(profile, stage, root)
        model, curve = train_in_segments(folder, recipe.steps[stage], evaluate_every, train_to, measure,
                                         lambda step: step * recipe.batch_size * window_seconds / 3600)
        info = _info(f"dit_{stage}", profile, facts, recipe, recipe.steps[stage], curve,
                     held_out_prompts=len(held_out), training_songs=len(training),
                     description=json.loads((folder / CONFIG_NAME).read_text()))
        paths.append(save_reference(f"dit_{stage}", model.state_dict(), info, profile))
    return paths


def _reference_diffusion(steps: int | None = None, finetune_steps: int | None = None, **kwargs) -> Path:
    """CLI form: --steps N trains N steps in each stage (--finetune-steps M: M in the second)."""
    chosen = {k: v for k, v in {"pretrain": steps, "finetune": finetune_steps or steps}.items() if v}
    return train_reference_diffusion(chosen, **kwargs)[-1]


TRAINERS = {"autoencoder": train_reference_autoencoder, "clap": train_reference_clap, "diffusion": _reference_diffusion}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train a profile's reference weights from scratch "
                                                 "(or resume) and export them to samod/weights/<profile>/.")
    parser.add_argument("stage", choices=list(TRAINERS))
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    parser.add_argument("--finetune-steps", type=int, default=None, help="diffusion: steps of the second stage "
                                                                          "(default: --steps)")
    parser.add_argument("--evaluate-every", type=int, default=None, help="steps between measurements")
    parser.add_argument("--decoder-steps", type=int, default=0,
                        help="with --from-campaign: then fine-tune the decoder alone for this many steps")
    parser.add_argument("--from-campaign", action="store_true",
                        help="autoencoder: promote the campaign's exported weights instead of training "
                             "(samod/campaign.py)")
    args = parser.parse_args(argv)
    if args.decoder_steps and not args.from_campaign:
        parser.error("--decoder-steps fine-tunes the promoted campaign weights' decoder: use it with --from-campaign")
    if args.from_campaign:
        if args.stage != "autoencoder":
            parser.error("--from-campaign is for the autoencoder stage only")
        path = promote_campaign(decoder_steps=args.decoder_steps, evaluate_every=args.evaluate_every or 250)
        print(f"wrote {path} and {path.with_suffix('.json').name}")
        return
    kwargs = {"evaluate_every": args.evaluate_every} if args.evaluate_every else {}
    if args.finetune_steps:
        if args.stage != "diffusion":
            parser.error("--finetune-steps is for the diffusion stage only")
        kwargs["finetune_steps"] = args.finetune_steps
    path = TRAINERS[args.stage](args.steps, **kwargs)
    print(f"wrote {path} and {path.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
