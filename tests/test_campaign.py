"""The campaign's measures and bookkeeping (samod/campaign.py); the training itself is the Trainer's, tested elsewhere."""
import json

import numpy as np
import pytest
import torch

from samod import campaign

SR = 44100


def test_frame_comb_share_sees_a_waveform_that_repeats_every_frame():
    rng = np.random.default_rng(0)
    grain = rng.standard_normal(2048)
    repeating = np.tile(grain, 100)[None].repeat(2, axis=0)  # (2, samples): one frame's waveform, again and again
    noise = rng.standard_normal((2, 204800))
    tone = np.sin(2 * np.pi * 440 * np.arange(204800) / SR)[None].repeat(2, axis=0)  # 440 Hz: between two harmonics
    assert campaign.frame_comb_share(repeating) > 0.95
    assert campaign.frame_comb_share(noise) == pytest.approx(2 * 0.5 / (SR / 2048), abs=0.01)  # the comb's width
    assert campaign.frame_comb_share(tone) < 0.01  # leakage of the cut-off sine only
    assert campaign.frame_comb_share(np.zeros((2, 4096))) == 0.0


def test_projection_needs_a_rising_curve():
    flat = [{"cpu_hours": h, "chroma_identification": 1 / 16} for h in (0.0, 0.5, 1.0)]
    assert campaign.projection(flat)["cpu_hours"] is None
    rising = [{"cpu_hours": h, "chroma_identification": c} for h, c in ((1.0, 0.2), (2.0, 0.3), (4.0, 0.4))]
    hours = campaign.projection(rising)["cpu_hours"]  # +0.1 per doubling: 0.8 is 4 doublings past 0.4
    assert hours == pytest.approx(64.0, rel=1e-6)
    creeping = [{"cpu_hours": h, "chroma_identification": c} for h, c in ((1.0, 0.10), (2.0, 0.101))]
    assert campaign.projection(creeping)["cpu_hours"] is None  # 0.8 only after ~10^200 hours: said, not returned
    falling = [{"cpu_hours": h, "chroma_identification": c} for h, c in ((1.0, 0.4), (2.0, 0.2))]
    assert campaign.projection(falling)["cpu_hours"] is None


def test_phases_start_in_order_and_each_changes_the_recipe():
    starts = [p.start for p in campaign.PHASES]
    assert starts[0] == 0 and starts == sorted(set(starts))
    assert all((a.recipe, a.precision) != (b.recipe, b.precision) for a, b in zip(campaign.PHASES, campaign.PHASES[1:]))
    assert campaign.phase_at(0) is campaign.PHASES[0] and campaign.phase_at(10 ** 9) is campaign.PHASES[-1]


def test_a_curve_without_its_checkpoint_is_refused(tmp_path):
    curve = tmp_path / "curve.json"
    curve.write_text('{"points": [{"step": 0}, {"step": 250}]}')
    with pytest.raises(FileNotFoundError, match="cannot continue where the curve ends"):
        campaign.run(segments=1, segment_steps=1, folder=tmp_path / "checkpoints", curve=curve)


def test_levers_change_one_thing_of_the_recipe():
    recipe = campaign.PHASES[0].recipe  # no semitone loss, the adversary on
    assert campaign.LEVERS["same"](recipe) == recipe
    semitone = campaign.LEVERS["semitone"](recipe)
    assert semitone.losses.semitone_weight == 1.0 and recipe.losses.semitone_weight == 0
    assert semitone.model == recipe.model and semitone.generator == recipe.generator
    assert campaign.LEVERS["semitone_x10"](recipe).losses.semitone_weight == 10.0
    assert campaign.LEVERS["no_adversary"](recipe).losses.discriminator_start > 10 ** 6
    long = campaign.LEVERS["long_crops"](recipe)
    assert long.crop_samples * long.batch_size == recipe.crop_samples * recipe.batch_size  # as many samples a step
    assert campaign.LEVERS["lr_x4"](recipe).generator.lr == 4 * recipe.generator.lr
    assert campaign.LEVERS["kl_div10"](recipe).losses.kl_weight == pytest.approx(recipe.losses.kl_weight / 10)


def test_a_trial_needs_a_known_lever_and_the_campaign_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="unknown lever"):
        campaign.trial("louder", 1, folder=tmp_path, curve=tmp_path / "curve.json")
    with pytest.raises(FileNotFoundError, match="no campaign checkpoint"):
        campaign.trial("semitone", 1, folder=tmp_path, curve=tmp_path / "curve.json")


def test_total_cpu_hours_counts_the_trials():
    curve = {"points": [{"cpu_hours": 0.0}, {"cpu_hours": 1.5}], "trials": [{"cpu_hours": 0.25}, {"cpu_hours": 0.5}]}
    assert campaign.total_cpu_hours(curve) == pytest.approx(2.25)
    assert campaign.total_cpu_hours({"points": [{"cpu_hours": 1.0}]}) == 1.0


def test_tone_following_tells_a_pass_through_from_a_fixed_oscillator():
    class PassThrough(torch.nn.Module):
        def encode(self, audio, sample=True):
            return audio

        def decode(self, latents, samples=None):
            return latents[..., :samples]

    class FixedOscillator(PassThrough):  # plays 603 Hz whatever the input, at the input's level
        def decode(self, latents, samples=None):
            t = torch.arange(latents.shape[-1]) / SR
            return latents.std() * torch.sin(2 * torch.pi * 603 * t)[None, None].repeat(1, 2, 1)[..., :samples]

    passing = campaign.tone_following(PassThrough())
    assert passing["tone_following"] > 0.95 and passing["tone_following_chance"] < 0.1
    fixed = campaign.tone_following(FixedOscillator())
    assert abs(fixed["tone_following"] - fixed["tone_following_chance"]) < 0.2 and fixed["tone_following"] < 0.5
    assert campaign.harmonic_share(np.zeros((2, 4096)), 220.0) == 0.0


def test_loss_preferences_ranks_outputs_song_by_song():
    t = torch.arange(16384) / SR
    references = [0.3 * torch.sin(2 * torch.pi * f * t)[None].repeat(2, 1) for f in (220.0, 330.0)]
    outputs = {"same": references, "a semitone up": [0.3 * torch.sin(2 * torch.pi * f * 2 ** (1 / 12) * t)[None].repeat(2, 1)
                                                     for f in (220.0, 330.0)]}
    values = campaign.loss_preferences(references, outputs)
    assert set(values) == set(campaign.training_losses())
    for name, by_kind in values.items():
        assert len(by_kind["same"]) == 2
        assert all(a < b for a, b in zip(by_kind["same"], by_kind["a semitone up"])), name


def test_the_plot_draws_the_rhythm_only_level_when_the_curve_has_it():
    import matplotlib
    matplotlib.use("Agg")
    point = {"step": 0, "cpu_hours": 0.0, "chroma_identification": 0.0625, "probe_identification": 0.0625,
             "envelope_identification": 1.0, "chroma_motion": 0.3, "silence_gap_db": 50.0, "chroma_margin": 0.0}
    curve = {"chance": 1 / 16, "points": [point, dict(point, step=250, cpu_hours=0.1)],
             "stand_ins": {"rhythm only": {"chroma_identification": 0.19, "chroma_margin": 0.02}}}
    fig = campaign.plot_campaign(curve)
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert "rhythm-only stand-in's chroma identification" in labels and "rhythm-only stand-in (no notes)" in labels


def test_export_writes_the_measured_checkpoint_and_a_new_machine_continues_from_it(tmp_path, monkeypatch):
    import shutil

    from samod import weights
    from samod.train import CHECKPOINT_NAME, load_weights
    tiny = tmp_path / "weights" / "tiny"
    tiny.mkdir(parents=True)
    for suffix in (".safetensors", ".json"):  # the shipped autoencoder, which the campaign starts from
        shutil.copy(weights.reference_file("autoencoder", weights.get_profile("tiny")).with_suffix(suffix), tiny)
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setenv("SAMOD_PROFILE", "tiny")
    state = weights.load_reference("autoencoder")
    name = next(k for k, v in state.items() if v.numel() > 1)
    state[name] = state[name] * 1.5  # weights that differ from the shipped ones
    weights.save_reference(campaign.EXPORT, state, {"step": 250})

    folder = tmp_path / "checkpoints"
    campaign._seed_from_export(folder, 250)  # what run() does on a machine without the checkpoint
    assert campaign._checkpoint_step(folder / CHECKPOINT_NAME) == 250
    seeded = load_weights(folder / CHECKPOINT_NAME, "autoencoder", ema=True)
    assert torch.allclose(seeded[name], state[name].half().float())

    curve = tmp_path / "curve.json"
    curve.write_text(json.dumps({"points": [{"step": 0, "cpu_hours": 0.0}, {"step": 200, "cpu_hours": 0.1}]}))
    with pytest.raises(ValueError, match="measured first"):
        campaign.export(folder, curve)
    curve.write_text(json.dumps({"points": [{"step": 0, "cpu_hours": 0.0},
                                            {"step": 250, "cpu_hours": 0.1, "phase": "x", "chroma_identification": 0.5}]}))
    path = campaign.export(folder, curve)
    info = weights.provenance(campaign.EXPORT)
    assert path.parent == tiny and info["steps"] == 250 and info["final"]["chroma_identification"] == 0.5
    assert torch.allclose(weights.load_reference(campaign.EXPORT)[name], state[name].half().float())
